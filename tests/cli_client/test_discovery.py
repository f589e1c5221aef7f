"""Which files ``squeezer upload`` picks up, and under which names."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from client.uploader import discover


def tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def found(paths, skipped=None):
    notes = [] if skipped is None else skipped
    return {f.name: f for f in discover(paths, on_skip=notes.append)}


def test_recurses_and_names_files_relative_to_the_folder_argument(tmp_path: Path) -> None:
    tree(tmp_path / "data", {"a.txt": b"a", "sub/b.json": b"{}", "sub/deeper/c.bin": b"ccc"})

    files = found([tmp_path / "data"])

    assert sorted(files) == ["data/a.txt", "data/sub/b.json", "data/sub/deeper/c.bin"]
    assert files["data/sub/deeper/c.bin"].size == 3
    assert files["data/a.txt"].content_type == "text/plain"
    assert files["data/sub/deeper/c.bin"].content_type == "application/octet-stream"


def test_dot_adds_no_prefix_and_files_keep_their_base_name(tmp_path: Path, monkeypatch) -> None:
    tree(tmp_path, {"x/one.txt": b"1", "two.txt": b"2"})
    monkeypatch.chdir(tmp_path / "x")
    assert sorted(found(["."])) == ["one.txt"]
    assert sorted(found([tmp_path / "two.txt"])) == ["two.txt"]


def test_symlinks_leaving_the_tree_are_skipped_with_a_message(tmp_path: Path) -> None:
    tree(tmp_path, {"outside/secret.txt": b"s", "data/real.txt": b"r", "data/sub/x.txt": b"x"})
    data = tmp_path / "data"
    (data / "inside-link.txt").symlink_to(data / "real.txt")
    (data / "escape.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    (data / "escape-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)
    (data / "broken").symlink_to(tmp_path / "nowhere")
    skipped: list[str] = []

    files = found([data], skipped)

    assert sorted(files) == ["data/inside-link.txt", "data/real.txt", "data/sub/x.txt"]
    text = "\n".join(skipped)
    assert "escape.txt: symlink points outside" in text
    assert "escape-dir: symlink to a folder, not followed" in text
    assert "loop: symlink to a folder" in text
    assert "broken: broken symlink" in text


def test_non_ascii_names_are_kept(tmp_path: Path) -> None:
    tree(tmp_path / "données", {"résumé.txt": b"cv", "日本/ファイル.csv": b"a,b"})
    assert sorted(found([tmp_path / "données"])) == ["données/résumé.txt", "données/日本/ファイル.csv"]


def test_names_the_api_would_refuse_are_skipped(tmp_path: Path) -> None:
    tree(tmp_path / "d", {"ok.txt": b"ok", "back\\slash.txt": b"b"})
    undecodable = os.fsencode(tmp_path / "d") + b"/caf\xe9.txt"
    with open(undecodable, "wb") as handle:
        handle.write(b"latin-1 name")
    skipped: list[str] = []

    assert sorted(found([tmp_path / "d"], skipped)) == ["d/ok.txt"]
    assert len(skipped) == 2
    backslash, latin1 = sorted(skipped, key=lambda note: "UTF-8" in note)
    # The API's own rule (chalicelib.validation.check_name) decides, and its reason is shown as it is.
    assert backslash.endswith(
        "back\\slash.txt: the API would refuse the name: name contains a backslash; use '/' between folders: "
        "'d/back\\\\slash.txt'"
    ), backslash
    assert latin1.endswith("caf\udce9.txt: the name is not valid UTF-8"), latin1


@pytest.mark.parametrize(
    "guessed, sent",
    [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("text/plain ", None),  # a trailing space: the API refuses it (RFC 9110: not part of the value)
        ("text/plain\tx", None),
        ("texte/é", None),
        ("plain", None),
        (None, None),
    ],
)
def test_a_guessed_content_type_is_sent_only_if_the_api_accepts_it(
    tmp_path: Path, monkeypatch, guessed: str | None, sent: str | None
) -> None:
    import mimetypes

    from chalicelib.validation import is_media_type

    tree(tmp_path, {"f.txt": b"x"})
    monkeypatch.setattr(mimetypes, "guess_type", lambda name, strict=True: (guessed, None))

    (local,) = found([tmp_path / "f.txt"]).values()

    assert local.content_type == sent
    assert sent is None or is_media_type(sent)


def test_the_same_name_twice_is_a_usage_error(tmp_path: Path) -> None:
    tree(tmp_path, {"a/same.txt": b"1", "b/same.txt": b"2"})
    with pytest.raises(click.UsageError, match="same.txt"):
        found([tmp_path / "a" / "same.txt", tmp_path / "b" / "same.txt"])
