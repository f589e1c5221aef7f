"""Progress on stderr: tqdm bars on a terminal, plain lines everywhere else.

tqdm rather than a hand-written bar: it already handles rate and ETA
smoothing, terminal width and resizing, thread-safe redraws from the upload
workers, and printing a line above a live bar (``tqdm.write``) without
tearing it; a home-made bar would have to redo each of those.

When stderr is not a terminal (CI logs, pipes, ``CliRunner``) no bar is drawn:
only one line per finished file and per change in a job's progress, so logs
stay readable.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import click
from tqdm import tqdm


class Progress:
    """Chooses bars or lines once; hands out tasks and prints notes."""

    def __init__(self, *, bars: bool | None = None) -> None:
        self.bars = _stderr_is_terminal() if bars is None else bars
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
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
        with self._lock:
            self._bar = tqdm(file=sys.stderr, dynamic_ncols=True, leave=True, **kwargs)
            return self._bar

    def _close_bar(self, bar: tqdm | None) -> None:
        if bar is None:
            return
        with self._lock:
            bar.close()
            if self._bar is bar:
                self._bar = None


class _BytesTask:
    """Bytes moved (uploads, downloads, checksums). Negative advances roll back a failed try."""

    def __init__(self, progress: Progress, description: str, total: int) -> None:
        self._progress = progress
        self._bar = progress._open_bar(desc=description, total=total, unit="B", unit_scale=True, unit_divisor=1024)
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        if self._bar is not None and nbytes:
            with self._lock:
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
        self._bar = progress._open_bar(desc=description, total=total, unit="file")

    def update(self, done: int, detail: str = "") -> None:
        if (done, detail) == self._last:
            return
        self._last = (done, detail)
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(detail, refresh=False)
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
