"""The heartbeat of a file being compressed.

While a delivery compresses a file, a thread renews its claim in the job
store and keeps its SQS message hidden, every ``interval`` seconds. A
renewal the store refuses means the claim is gone (the job was cancelled,
or the claim expired and another delivery took the file): the heartbeat
then raises a flag that the compression loop checks between chunks, so the
work stops within about one interval. It raises the same flag when the
invocation is about to run out of time.

    Heartbeat.check()  raises Interrupted(reason) once the flag is up
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable

from .codecs import Source
from .keys import FileRef
from .ports import JobStore, WorkQueue

log = logging.getLogger("squeezer.heartbeat")


class StopReason(str, enum.Enum):
    CLAIM_LOST = "claim_lost"  # cancelled, or taken over after the claim expired
    DEADLINE = "deadline"  # the invocation is about to time out


class Interrupted(Exception):
    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Heartbeat:
    """Renews one claim and one message's visibility on a thread; see the module docstring."""

    def __init__(
        self,
        store: JobStore,
        queue: WorkQueue | None,
        ref: FileRef,
        *,
        token: str,
        receipt_handle: str | None,
        interval: float,
        lease_seconds: int,
        remaining_ms: Callable[[], float] | None = None,
        stop_margin_ms: int = 0,
        clock: Callable[[], float] = time.time,
        renew: Callable[[float], bool] | None = None,
        label: str | None = None,
    ) -> None:
        """``renew(lease_until)`` renews another claim than the file's (a range's); False once it is lost."""
        self._store = store
        self._renew = renew
        self._label = label or f"file {ref.job_id}/{ref.file_id}"
        self._queue = queue
        self._ref = ref
        self._token = token
        self._receipt_handle = receipt_handle
        self._interval = interval
        self._lease_seconds = lease_seconds
        self._remaining_ms = remaining_ms
        self._stop_margin_ms = stop_margin_ms
        self._clock = clock
        self._done = threading.Event()
        self._reason: StopReason | None = None
        self._thread: threading.Thread | None = None
        self.beats = 0

    @property
    def reason(self) -> StopReason | None:
        return self._reason

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> None:
        """Raise Interrupted if the work should stop."""
        if self._reason is not None:
            raise Interrupted(self._reason)

    def guard(self, source: Source) -> Source:
        """``source`` whose every read first checks the flag."""
        return _CheckedSource(source, self)

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            if self._deadline_near():
                self._stop(StopReason.DEADLINE)
                return
            if not self._beat():
                return

    def _deadline_near(self) -> bool:
        return (
            self._stop_margin_ms > 0 and self._remaining_ms is not None and self._remaining_ms() < self._stop_margin_ms
        )

    def _beat(self) -> bool:
        """One renewal; False once the claim is known to be lost."""
        ref = self._ref
        until = self._clock() + self._lease_seconds
        try:
            if self._renew is not None:
                held = self._renew(until)
            else:
                held = self._store.renew_claim(ref.job_id, ref.file_id, token=self._token, lease_until=until)
        except Exception:  # noqa: BLE001 - a missed beat; the lease outlives several
            log.warning("heartbeat of %s could not renew its claim", self._label, exc_info=True)
            return True
        if not held:
            self._stop(StopReason.CLAIM_LOST)
            return False
        self.beats += 1
        if self._queue is not None and self._receipt_handle:
            try:
                # Hidden until a little after the lease: if this worker dies, the
                # message comes back only once its claim can be taken over.
                self._queue.delay(self._receipt_handle, math.ceil(self._lease_seconds + self._interval))
            except Exception:  # noqa: BLE001 - the claim still guards the file
                log.warning("heartbeat of %s could not extend its message's visibility", self._label, exc_info=True)
        return True

    def _stop(self, reason: StopReason) -> None:
        log.info("%s: stopping (%s)", self._label, reason.value)
        self._reason = reason


class _CheckedSource:
    def __init__(self, source: Source, heartbeat: Heartbeat) -> None:
        self._source = source
        self._heartbeat = heartbeat

    def read(self, size: int = -1) -> bytes:
        self._heartbeat.check()
        return self._source.read(size)
