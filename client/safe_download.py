"""Downloads that never clobber: what to do with a result already on disk.

    same        size == ``compressed_size`` and CRC64NVME == ``result_crc64nvme``:
                skipped, nothing is fetched
    different   a file is there but is not (provably) this result: an error
                listing every such file (the default), overwritten with
                ``--force``, kept with ``--no-clobber``
    absent      fetched

A result whose status carries no ``result_crc64nvme`` (an older server)
cannot be proven identical, so an existing file is "different". After a
download the file gets the original's permission bits and mtime when the
status has them (``mode``, ``mtime``).
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chalicelib import multipart

from .errors import SqueezerCliError
from .output import printable

READ_SIZE = 1024 * 1024
SHOWN_CLASHES = 10


class OnExisting(enum.Enum):
    """What to do with an existing file that differs from the result."""

    REFUSE = "refuse"
    FORCE = "force"
    KEEP = "keep"


class Existing(enum.Enum):
    ABSENT = "absent"
    SAME = "same"
    DIFFERENT = "different"


class WouldOverwrite(SqueezerCliError):
    """Existing files differ from the results: nothing was downloaded (exit 1)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        lines = [
            f"{len(self.paths)} file(s) already exist and differ from the results; nothing was downloaded "
            "(pass --force to overwrite them, or --no-clobber to keep them and download the rest):"
        ]
        lines += [f"  {printable(str(p))}" for p in self.paths[:SHOWN_CLASHES]]
        if len(self.paths) > SHOWN_CLASHES:
            lines.append(f"  ... and {len(self.paths) - SHOWN_CLASHES} more")
        super().__init__("\n".join(lines))


def file_crc64nvme(path: Path) -> str:
    """The base64 CRC64NVME of a file's bytes (the form S3 and the API use), read in 1 MiB blocks."""
    crc = 0
    with open(path, "rb") as source:
        while block := source.read(READ_SIZE):
            crc = multipart.crc64nvme(block, crc)
    return multipart.encode(crc)


def compare(path: Path, f: dict[str, Any]) -> Existing:
    """Whether the result of file entry ``f`` is already at ``path``."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return Existing.ABSENT
    except NotADirectoryError:
        return Existing.DIFFERENT  # a file sits where a folder on the way should be
    if not stat.S_ISREG(found.st_mode):
        return Existing.DIFFERENT
    expected_crc = f.get("result_crc64nvme")
    if expected_crc is None or found.st_size != f.get("compressed_size"):
        return Existing.DIFFERENT
    try:
        same = file_crc64nvme(path) == expected_crc
    except OSError:
        return Existing.DIFFERENT
    return Existing.SAME if same else Existing.DIFFERENT


def restore_metadata(path: Path, f: dict[str, Any]) -> None:
    """Give the result the original file's permission bits and mtime, when the status has them.

    Only the permission bits (0o777): a setuid bit from a server is not ours to set.
    """
    mode = f.get("mode")
    if isinstance(mode, int) and not isinstance(mode, bool):
        os.chmod(path, mode & 0o777)
    mtime = f.get("mtime")
    if isinstance(mtime, int | float) and not isinstance(mtime, bool):
        os.utime(path, (os.stat(path).st_atime, float(mtime)))
