"""Files the client writes: complete or not at all.

Downloads and the offline ``compress``/``decompress`` write through
:func:`atomic_file`: the data goes to a temporary file beside the target and
is renamed into place only when it is complete, so an error, Ctrl-C or a
failed retry never leaves a partial file under the target's name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _new_file_mode() -> int:
    # Read the umask once, at import, before any worker thread exists:
    # os.umask() can only be read by setting it.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


NEW_FILE_MODE = _new_file_mode()


@contextlib.contextmanager
def atomic_file(target: Path, *, durable: bool = False, mode: int | None = None) -> Iterator[BinaryIO]:
    """A new file written under a temporary name beside ``target``, renamed into place when the block ends.

    An error or interrupt inside the block removes the temporary file and
    leaves ``target`` as it was. ``durable`` syncs the data before the rename.
    The file gets the mode ``open()`` would give it (0666 less the umask), or
    ``mode``: a private file (0600) is private from its first byte, since
    mkstemp creates the temporary file 0600 and nobody else can open it.
    """
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
    try:
        os.fchmod(fd, NEW_FILE_MODE if mode is None else mode)  # mkstemp's 0600 would outlive the rename
        with os.fdopen(fd, "wb") as out:
            yield out
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
