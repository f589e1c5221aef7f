"""Stream helpers for the worker: read ahead on a background thread.

Reading the S3 body (socket receive, TLS, botocore's checksum) and
compressing can overlap: the codecs release the GIL, so on two vCPUs the
next chunks arrive while the current one is compressed. Memory stays
bounded by ``depth`` chunks.
"""

from __future__ import annotations

import queue
import threading

from .codecs import Source

_DONE = object()


class ReadAhead:
    """Wrap a source; a thread reads ``chunk_size`` pieces up to ``depth`` ahead.

    ``read(n)`` returns at most the next buffered chunk (a short read, which
    every caller here handles). Errors of the underlying source are raised
    from ``read``. Call ``close()`` if you stop reading early.
    """

    def __init__(self, source: Source, *, chunk_size: int, depth: int = 4) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pending = b""
        self._finished = False
        self._thread = threading.Thread(target=self._pump, name="read-ahead", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._source.read(self._chunk_size)
                self._put(chunk if chunk else _DONE)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            data = self._pending if size < 0 else self._pending[:size]
            self._pending = self._pending[len(data) :]
            return data
        if self._finished:
            return b""
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            return b""
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        assert isinstance(item, bytes)
        if 0 <= size < len(item):
            self._pending = item[size:]
            return item[:size]
        return item

    def close(self) -> None:
        """Stop reading ahead and close the source (its connection goes back to the pool)."""
        self._stop.set()
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
        self._thread.join(timeout=5)
