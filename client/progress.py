"""Progress on stderr: tqdm bars on a terminal, plain lines everywhere else.

tqdm rather than a hand-written bar: it already handles terminal width and
resizing, thread-safe redraws from the upload workers, and printing a line
above a live bar (``tqdm.write``) without tearing it; a home-made bar would
have to redo each of those. The rate and ETA are ours, though
(:class:`SlidingRate`): tqdm's exponential smoothing follows the last few
updates, so a poll that finds 100 files done at once shows "10553 file/s".

What is printed depends on the verbosity (``-q``/``-v`` on the root group):

    QUIET     errors only (no bars, no notes); the command's summary still prints
    NORMAL    bars, notes (job created, retries) and errors
    VERBOSE   also one line per file (uploaded, compressed, saved, skipped)

When stderr is not a terminal (CI logs, pipes, ``CliRunner``) no bar is drawn:
only one line per change in a job's progress, so logs stay readable.
"""

from __future__ import annotations

import collections
import enum
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tqdm import tqdm


class Verbosity(enum.IntEnum):
    QUIET = -1
    NORMAL = 0
    VERBOSE = 1


class SlidingRate:
    """Units per second over the last ``window`` seconds (at least ``floor`` seconds of span).

    The floor keeps a burst (100 files seen done by one poll) from reading
    as thousands per second: the rate is the work done over the time it
    took, never over the few milliseconds between two updates.
    """

    def __init__(self, *, window: float = 10.0, floor: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._window = window
        self._floor = floor
        self._clock = clock
        self._start = clock()
        self._samples: collections.deque[tuple[float, float]] = collections.deque([(self._start, 0.0)])

    def record(self, total: float) -> None:
        """``total``: the running count (bytes, files) now."""
        now = self._clock()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Units per second, or None before anything moved."""
        first_t, first_n = self._samples[0]
        last_t, last_n = self._samples[-1]
        if last_n <= first_n:
            return None if last_n == 0 else 0.0
        span = max(self._clock() - first_t, self._floor)
        return (last_n - first_n) / max(span, 1e-9)


class Progress:
    """Chooses bars or lines once; hands out tasks and prints notes, details and errors."""

    def __init__(self, *, bars: bool | None = None, verbosity: Verbosity = Verbosity.NORMAL) -> None:
        self.verbosity = verbosity
        quiet = verbosity <= Verbosity.QUIET
        self.bars = False if quiet else (_stderr_is_terminal() if bars is None else bars)
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        """A line for the user (job created, a retry): hidden by ``-q``."""
        if self.verbosity >= Verbosity.NORMAL:
            self._write(message)

    def detail(self, message: str) -> None:
        """A per-file line (uploaded, compressed, saved): shown with ``-v`` only."""
        if self.verbosity >= Verbosity.VERBOSE:
            self._write(message)

    def error(self, message: str) -> None:
        """Something that failed: always shown."""
        self._write(message)

    def _write(self, message: str) -> None:
        """One line on stderr, above the live bar if there is one."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(message, file=sys.stderr)
            else:
                click.echo(message, err=True)

    def bytes(self, description: str, total: int) -> _BytesTask:
        return _BytesTask(self, description, total)

    def files(self, description: str, total: int) -> _FilesTask:
        return _FilesTask(self, description, total)

    # bars -----------------------------------------------------------------
    def _open_bar(self, **kwargs: Any) -> tqdm | None:
        if not self.bars:
            return None
        from tqdm import tqdm  # only when a bar is drawn: it costs a command without one ~5 ms

        with self._lock:
            # The rate and ETA come from SlidingRate, through the postfix.
            self._bar = tqdm(
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                **kwargs,
            )
            return self._bar

    def _close_bar(self, bar: tqdm | None) -> None:
        if bar is None:
            return
        with self._lock:
            bar.close()
            if self._bar is bar:
                self._bar = None


def _rate_postfix(rate: SlidingRate, done: float, total: float, unit: str, fmt: Callable[[float], str]) -> str:
    speed = rate.rate()
    if speed is None:
        return ""
    eta = ""
    if speed > 0 and total > done:
        eta = f", {_clock_text((total - done) / speed)} left"
    return f", {fmt(speed)}{unit}/s{eta}"


def _clock_text(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _scaled(value: float) -> str:
    from tqdm import tqdm

    return str(tqdm.format_sizeof(value, divisor=1024))


class _BytesTask:
    """Bytes moved (uploads, downloads, checksums). Negative advances roll back a failed try."""

    def __init__(self, progress: Progress, description: str, total: int) -> None:
        self._progress = progress
        self._total = total
        self._bar = progress._open_bar(desc=description, total=total, unit="B", unit_scale=True, unit_divisor=1024)
        self._lock = threading.Lock()
        self._done = 0
        self._rate = SlidingRate()
        self._shown = 0.0

    def advance(self, nbytes: int) -> None:
        if self._bar is not None and nbytes:
            with self._lock:
                self._done += nbytes
                self._rate.record(self._done)
                now = time.monotonic()
                if now - self._shown >= 0.2:  # the postfix at most five times a second
                    self._shown = now
                    self._bar.set_postfix_str(
                        _rate_postfix(self._rate, self._done, self._total, "B", _scaled).lstrip(", "), refresh=False
                    )
                self._bar.update(nbytes)

    def close(self) -> None:
        self._progress._close_bar(self._bar)

    def __enter__(self) -> _BytesTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FilesTask:
    """Files that reached a final state out of the total (compression progress)."""

    def __init__(self, progress: Progress, description: str, total: int) -> None:
        self._progress = progress
        self._description = description
        self._total = total
        self._last: tuple[int, str] | None = None
        self._rate = SlidingRate(window=30.0, floor=2.0)
        self._bar = progress._open_bar(desc=description, total=total, unit="file")

    def update(self, done: int, detail: str = "") -> None:
        if (done, detail) == self._last:
            return
        self._last = (done, detail)
        self._rate.record(done)
        if self._bar is not None:
            self._bar.n = done
            speed = _rate_postfix(self._rate, done, self._total, " file", lambda v: f"{v:.1f}")
            self._bar.set_postfix_str(", ".join(p for p in (speed.lstrip(", "), detail) if p), refresh=False)
            self._bar.refresh()
        else:
            suffix = f" ({detail})" if detail else ""
            self._progress.note(f"{self._description}: {done}/{self._total} files done{suffix}")

    def close(self) -> None:
        self._progress._close_bar(self._bar)

    def __enter__(self) -> _FilesTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
