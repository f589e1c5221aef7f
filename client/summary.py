"""The one line a command ends with, and the same totals for ``--json``.

    316 files, 204.1 MiB → 41.3 MiB (79.8% saved) in 12.4 s, 16.5 MiB/s

Bytes in and out count the files that completed; the throughput is bytes
in over the command's elapsed time. Downloads add what happened to the
results (``; 12 downloaded, 304 already up to date``), and failures how
many failed: every part is left out when its count is zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .output import human_size


@dataclass
class Summary:
    files: int = 0  # files of the job this command dealt with
    bytes_in: int = 0  # original bytes of the files that completed (or were sent, without --wait)
    bytes_out: int | None = None  # their compressed bytes; None when not known (no --wait)
    failed: int = 0
    cancelled: int = 0
    not_uploaded: int = 0
    downloaded: int | None = None  # None: no download was asked for
    up_to_date: int = 0
    kept: int = 0
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    elapsed: float | None = None

    def stop(self) -> Summary:
        if self.elapsed is None:
            self.elapsed = max(0.0, self.clock() - self.started)
        return self

    @property
    def saved(self) -> float | None:
        """Share of bytes saved (0.798 for 79.8%), None when unknown."""
        if self.bytes_out is None or not self.bytes_in:
            return None
        return 1 - self.bytes_out / self.bytes_in

    @property
    def throughput(self) -> float | None:
        elapsed = self.stop().elapsed or 0.0
        return self.bytes_in / elapsed if elapsed > 0 else None

    def line(self) -> str:
        elapsed = self.stop().elapsed or 0.0
        head = f"{self.files} file{'' if self.files == 1 else 's'}, {human_size(self.bytes_in)}"
        if self.bytes_out is not None:
            saved = self.saved
            share = f" ({saved * 100:.1f}% saved)" if saved is not None else ""
            head += f" → {human_size(self.bytes_out)}{share}"
        head += f" in {elapsed:.1f} s"
        if self.throughput is not None:
            head += f", {human_size(int(self.throughput))}/s"
        counts = [
            (self.failed, "failed"),
            (self.cancelled, "cancelled"),
            (self.not_uploaded, "not uploaded"),
        ]
        tail = [f"{n} {what}" for n, what in counts if n]
        if self.downloaded is not None:
            parts = [f"{self.downloaded} downloaded"] if self.downloaded or not (self.up_to_date or self.kept) else []
            if self.up_to_date:
                everything = self.up_to_date == self.files and not self.downloaded and not self.kept
                parts.append(f"{'all ' if everything and self.files > 1 else ''}{self.up_to_date} already up to date")
            if self.kept:
                parts.append(f"{self.kept} existing kept (--no-clobber)")
            tail.append(", ".join(parts))
        return head + ("; " + "; ".join(tail) if tail else "")

    def as_json(self) -> dict[str, Any]:
        self.stop()
        return {
            "files": self.files,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "saved": None if self.saved is None else round(self.saved, 4),
            "elapsed_seconds": round(self.elapsed or 0.0, 3),
            "bytes_per_second": None if self.throughput is None else round(self.throughput),
            "failed": self.failed,
            "cancelled": self.cancelled,
            "not_uploaded": self.not_uploaded,
            "downloaded": self.downloaded,
            "up_to_date": self.up_to_date,
            "kept": self.kept,
        }

    def add_status(self, status: dict[str, Any], file_ids: set[str] | None = None) -> None:
        """Bytes and counts from a job's status (only ``file_ids`` when given)."""
        watched = [f for f in status.get("files", []) if file_ids is None or f.get("file_id") in file_ids]
        self.files = max(self.files, len(watched))
        done = [f for f in watched if f.get("state") == "completed"]
        self.bytes_in = sum(int(f.get("size") or 0) for f in done)
        self.bytes_out = sum(int(f.get("compressed_size") or 0) for f in done)
        self.failed += sum(1 for f in watched if f.get("state") == "failed")
        self.cancelled += sum(1 for f in watched if f.get("state") == "cancelled")
