"""Waiting through a bad moment: API calls retried with backoff while a command waits on a job.

The API client already retries each GET a few times within a couple of
seconds. A command that waits on a job (``upload --wait``, ``status
--watch``, ``download --wait``) can afford more: an API restarting, a
dropped Wi-Fi, a burst of 5xx. :func:`patiently` retries connection errors
and 5xx answers with growing pauses, saying each time what it is waiting
for, and gives up after ``Patience.give_up_after`` seconds with the last
error. Any other answer (4xx: a wrong token, an unknown job) is final at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import ApiError, ApiUnreachable, SqueezerCliError
from .progress import Progress

T = TypeVar("T")


@dataclass(frozen=True)
class Patience:
    """Pauses of 1, 2, 4, 8, 15, 15 ... s; give up once ``give_up_after`` seconds went by without an answer."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 15.0
    give_up_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


DEFAULT_PATIENCE = Patience()


def transient(exc: SqueezerCliError) -> bool:
    """Whether waiting may fix it: no answer at all, or a 5xx."""
    if isinstance(exc, ApiUnreachable):
        return True
    return isinstance(exc, ApiError) and exc.status >= 500


def patiently(call: Callable[[], T], *, progress: Progress, waiting_for: str, patience: Patience | None = None) -> T:
    """``call()``, retried on connection errors and 5xx for up to ``patience.give_up_after`` seconds."""
    patience = patience or DEFAULT_PATIENCE
    started: float | None = None
    delay = patience.first
    while True:
        try:
            return call()
        except (ApiUnreachable, ApiError) as exc:
            if not transient(exc):
                raise
            now = patience.clock()
            started = now if started is None else started
            if now - started >= patience.give_up_after:
                if isinstance(exc, ApiUnreachable):
                    raise ApiUnreachable(
                        exc.api_url, f"{_reason(exc)}; gave up after {now - started:.0f} s waiting for {waiting_for}"
                    ) from None
                raise
            progress.note(f"{_reason(exc)}; waiting for {waiting_for}: trying again in {delay:.0f} s")
            patience.sleep(delay)
            delay = min(patience.cap, delay * patience.factor)


def _reason(exc: SqueezerCliError) -> str:
    if isinstance(exc, ApiUnreachable):
        return f"cannot reach the API at {exc.api_url} ({exc.reason})"
    return exc.message
