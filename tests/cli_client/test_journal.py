"""The resume journal's files: a snapshot plus an append-only log of events (client/journal.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from client.journal import Identity, Journal, JournalFile, JournalStore, JournalWriter, SentPart


def _journal(n: int = 3) -> Journal:
    files = [
        JournalFile(path=f"/data/f{i}", name=f"f{i}", size=10, mtime_ns=1, file_id=f"id{i}", kind="put")
        for i in range(n)
    ]
    files.append(
        JournalFile(
            path="/data/big",
            name="big",
            size=30,
            mtime_ns=1,
            file_id="big",
            kind="multipart",
            upload_id="u",
            part_size=10,
            part_count=3,
        )
    )
    return Journal("j_1", Identity("http://api", ("/data",), "zstd", None), 1.0, files)


def _writer(tmp_path: Path, n: int = 3) -> tuple[JournalStore, JournalWriter]:
    store = JournalStore(tmp_path / "uploads", warn=lambda message: None)
    writer = JournalWriter(store, _journal(n), warn=lambda message: None)
    writer.save()
    return store, writer


def test_events_are_appended_not_rewritten(tmp_path: Path) -> None:
    store, writer = _writer(tmp_path, n=200)
    snapshot = store.path("j_1").read_bytes()

    for i in range(200):
        writer.file_done(f"id{i}")
    writer.part_sent("big", SentPart(2, "crc2", 10, '"e2"'))

    assert store.path("j_1").read_bytes() == snapshot  # one line per event, the snapshot untouched
    lines = store.log_path("j_1").read_bytes().splitlines()
    assert len(lines) == 201 and json.loads(lines[0]) == ["done", "id0"]
    assert json.loads(lines[-1]) == ["part", "big", 2, "crc2", 10, '"e2"']
    loaded = store.load("j_1")
    assert loaded is not None and loaded.left == [loaded.file("big")]
    assert loaded.file("big").parts == {2: SentPart(2, "crc2", 10, '"e2"')}


def test_a_line_torn_by_a_kill_is_ignored_and_the_next_event_starts_a_new_line(tmp_path: Path) -> None:
    store, writer = _writer(tmp_path)
    writer.file_done("id0")
    writer.part_sent("big", SentPart(1, "crc1", 10, None))
    writer.release()
    log = store.log_path("j_1")
    whole = log.read_bytes()
    log.write_bytes(whole[: len(whole) - 7])  # killed in the middle of writing the part's line

    loaded = store.load("j_1")
    assert loaded is not None
    assert loaded.file("id0").done and loaded.file("big").parts == {}  # the torn line is not half-applied

    again = JournalWriter(store, loaded, warn=lambda message: None)  # a resume that logs before a snapshot
    again.file_done("id1")
    reloaded = store.load("j_1")
    assert reloaded is not None and reloaded.file("id1").done and reloaded.file("id0").done


def test_lines_that_do_not_parse_or_name_no_file_are_skipped(tmp_path: Path) -> None:
    store, writer = _writer(tmp_path)
    writer.release()
    store.log_path("j_1").write_bytes(b'garbage\n["done","nobody"]\n["what",1]\n["done","id2"]\n')

    loaded = store.load("j_1")

    assert loaded is not None and [f.file_id for f in loaded.files if f.done] == ["id2"]


def test_a_snapshot_takes_the_events_and_empties_the_log(tmp_path: Path) -> None:
    store, writer = _writer(tmp_path)
    writer.file_done("id0")
    writer.part_sent("big", SentPart(1, "crc1", 10, None))

    writer.flush()

    assert store.log_path("j_1").read_bytes() == b""
    saved = json.loads(store.path("j_1").read_bytes())
    assert [f["done"] for f in saved["files"]] == [True, False, False, False]
    assert saved["files"][-1]["parts"] == [[1, "crc1", 10, None]]
    writer.file_done("id1")  # the log goes on from empty
    assert store.log_path("j_1").read_bytes() == b'["done","id1"]\n'
    assert os.stat(store.log_path("j_1")).st_mode & 0o777 == 0o600


def test_replaying_events_a_snapshot_already_holds_changes_nothing(tmp_path: Path) -> None:
    """Killed between writing the snapshot and emptying the log: the log's events are replayed onto it."""
    store, writer = _writer(tmp_path)
    writer.file_done("id0")
    writer.part_sent("big", SentPart(1, "crc1", 10, None))
    events = store.log_path("j_1").read_bytes()
    writer.flush()
    store.log_path("j_1").write_bytes(events)

    loaded = store.load("j_1")

    assert loaded is not None
    assert [f.done for f in loaded.files] == [True, False, False, False]
    assert loaded.file("big").parts == {1: SentPart(1, "crc1", 10, None)}


def test_remove_takes_the_log_too(tmp_path: Path) -> None:
    store, writer = _writer(tmp_path)
    writer.file_done("id0")

    writer.remove()

    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_log_that_cannot_be_written_warns_once_and_the_upload_goes_on(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = JournalStore(tmp_path / "uploads")
    writer = JournalWriter(store, _journal(), warn=warnings.append)
    writer.save()
    store.log_path("j_1").mkdir()  # not a file: opening it for appending fails

    writer.file_done("id0")
    writer.file_done("id1")

    assert len(warnings) == 1 and "cannot write the resume journal" in warnings[0]
    assert writer.journal.file("id1").done  # the run itself still knows


def test_journal_paths_are_resolved_as_path_resolve_does(tmp_path: Path, monkeypatch) -> None:
    from client.upload_job import _resolved

    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_bytes(b"a")
    (tmp_path / "elsewhere.txt").write_bytes(b"b")
    (tmp_path / "linked").symlink_to(real)
    (real / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    monkeypatch.chdir(tmp_path)

    for path in (Path("linked/a.txt"), Path("real/../linked/a.txt"), tmp_path / "linked" / "link.txt"):
        assert _resolved(path) == str(path.resolve())
