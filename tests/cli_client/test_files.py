"""client.files.atomic_file: the one way the client writes a file (downloads, compress, decompress)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from client.files import NEW_FILE_MODE, atomic_file


@pytest.mark.parametrize("durable", [False, True])
def test_the_target_appears_whole_with_the_mode_open_would_give(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "out.bin"

    with atomic_file(target, durable=durable) as out:
        out.write(b"part one, ")
        assert not target.exists()  # nothing under the target's name until the block ends
        out.write(b"part two")

    assert target.read_bytes() == b"part one, part two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == NEW_FILE_MODE == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.bin"]


def test_an_error_inside_the_block_leaves_the_old_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    with pytest.raises(KeyboardInterrupt), atomic_file(target) as out:
        out.write(b"new but incomplete")
        raise KeyboardInterrupt

    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_bare_file_name_is_written_in_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    with atomic_file(Path("here.txt")) as out:
        out.write(b"x")

    assert (tmp_path / "here.txt").read_bytes() == b"x"
