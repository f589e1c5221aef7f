"""The resume journal: what an upload has sent, so an interrupted one can go on.

Per job, in :func:`journal_dir` (files mode 0600, in a folder made 0700):

``<job id>.json``
    the snapshot, written atomically (and synced) through
    :func:`client.files.atomic_file` when the job is created, when a batch of
    files joins it, at a resume and when the upload ends or is interrupted.
    It holds the API URL (never the token), the job id, the command's
    identity (resolved input paths, algorithm, level) and per file: local
    path, size, mtime, file id, kind (``put`` or ``multipart``), whether it
    is done and, for a multipart file, its upload id, part plan and the parts
    sent with their CRC64NVME, length and ETag.
``<job id>.log``
    what happened since the snapshot, one JSON line per event, appended as it
    happens: ``["done", file_id]`` and ``["part", file_id, number,
    crc64nvme, length, etag]``. An event costs one small ``write``, whatever
    the job's size (rewriting the snapshot per finished file made an upload
    of 1,000 small files spend most of its time here). Each snapshot includes
    every event before it and then empties the log; replaying a line twice
    changes nothing, so a kill between the two is harmless.

Reading a journal replays its log onto its snapshot. A ``kill -9`` in the
middle of an append leaves a last line without its newline: it is ignored
(as is any line that does not parse), and the next snapshot drops it. Lines
are not synced one by one: a killed process loses nothing (the data is in the
kernel), a crash of the machine may lose the last events, which costs a
resume nothing but time: it asks the server which files arrived and which
parts storage holds, so those are not sent twice.

Parts are stored as ``[number, crc64nvme, length, etag]``: a 10,000-part
file keeps its journal near 500 KB.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .files import atomic_file

STATE_ENV = "SQUEEZER_STATE_DIR"
VERSION = 1
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

Warn = Callable[[str], None]


def journal_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SQUEEZER_STATE_DIR/uploads``, else ``$XDG_STATE_HOME/squeezer/uploads``, else ``~/.local/state/squeezer/uploads``."""
    env = os.environ if env is None else env
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser() / "uploads"
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative XDG_STATE_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "squeezer" / "uploads"


@dataclass(frozen=True)
class Identity:
    """What makes two ``squeezer upload`` commands the same upload: the same API, inputs, algorithm and level."""

    api_url: str
    paths: tuple[str, ...]  # resolved, absolute, as given
    algorithm: str
    level: int | None  # as given (None: the algorithm's default)

    @classmethod
    def of(cls, api_url: str, paths: Sequence[str | os.PathLike[str]], algorithm: str, level: int | None) -> Identity:
        return cls(api_url, tuple(str(Path(p).resolve()) for p in paths), algorithm, level)

    def matches(self, other: Identity) -> bool:
        return (
            config.same_api(self.api_url, other.api_url)
            and sorted(self.paths) == sorted(other.paths)
            and (self.algorithm, self.level) == (other.algorithm, other.level)
        )


@dataclass(frozen=True)
class SentPart:
    """A part storage holds: its number, base64 CRC64NVME, length and ETag (if known)."""

    number: int
    crc64nvme: str
    size: int
    etag: str | None = None


@dataclass
class JournalFile:
    path: str
    name: str
    size: int
    mtime_ns: int | None
    file_id: str
    kind: str  # "put" | "multipart"
    done: bool = False
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None
    parts: dict[int, SentPart] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": self.path,
            "name": self.name,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "file_id": self.file_id,
            "kind": self.kind,
            "done": self.done,
        }
        if self.kind == "multipart":
            entry.update(
                upload_id=self.upload_id,
                part_size=self.part_size,
                part_count=self.part_count,
                parts=[[p.number, p.crc64nvme, p.size, p.etag] for _, p in sorted(self.parts.items())],
            )
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> JournalFile:
        parts = {int(n): SentPart(int(n), str(crc), int(size), etag) for n, crc, size, etag in entry.get("parts", [])}
        return cls(
            path=str(entry["path"]),
            name=str(entry["name"]),
            size=int(entry["size"]),
            mtime_ns=entry.get("mtime_ns"),
            file_id=str(entry["file_id"]),
            kind=str(entry["kind"]),
            done=bool(entry.get("done", False)),
            upload_id=entry.get("upload_id"),
            part_size=entry.get("part_size"),
            part_count=entry.get("part_count"),
            parts=parts,
        )


@dataclass
class Journal:
    job_id: str
    identity: Identity
    created_at: float
    files: list[JournalFile]
    # Files of a job open for more (POST /jobs/{id}/files) not added yet: a
    # resume adds them. Each: path, name, size, mtime_ns, mode, content_type, sha256.
    unadded: list[dict[str, Any]] = field(default_factory=list)

    _by_id: dict[str, JournalFile] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def left(self) -> list[JournalFile]:
        return [f for f in self.files if not f.done]

    def file(self, file_id: str) -> JournalFile:
        """The file with ``file_id`` (KeyError if none): a dict look-up, rebuilt when ``files`` changed."""
        found = self._by_id.get(file_id)
        if found is None or len(self._by_id) != len(self.files):
            self._by_id = {f.file_id: f for f in self.files}
            found = self._by_id[file_id]
        return found

    def replay(self, line: bytes) -> bool:
        """Apply one event line of the log; False if it is not one (torn by a kill, or for another file)."""
        try:
            event = json.loads(line)
            if event[0] == "done":
                self.file(str(event[1])).done = True
            elif event[0] == "part":
                _, file_id, number, crc, size, etag = event
                self.file(str(file_id)).parts[int(number)] = SentPart(int(number), str(crc), int(size), etag)
            else:
                return False
        except (ValueError, KeyError, TypeError, IndexError):
            return False
        return True

    def as_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "job_id": self.job_id,
            "api_url": self.identity.api_url,
            "created_at": self.created_at,
            "command": {
                "paths": list(self.identity.paths),
                "algorithm": self.identity.algorithm,
                "level": self.identity.level,
            },
            "files": [f.as_json() for f in self.files],
            "unadded": self.unadded,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Journal:
        if document.get("version") != VERSION:
            raise ValueError(f"journal version {document.get('version')!r}, expected {VERSION}")
        command = document["command"]
        identity = Identity(
            str(document["api_url"]), tuple(command["paths"]), str(command["algorithm"]), command.get("level")
        )
        files = [JournalFile.from_json(f) for f in document["files"]]
        unadded = [dict(f) for f in document.get("unadded") or []]
        return cls(str(document["job_id"]), identity, float(document["created_at"]), files, unadded)


class JournalStore:
    """The journals in one folder: ``<job id>.json``."""

    def __init__(self, folder: Path, *, warn: Warn = config.warn_on_stderr) -> None:
        self.folder = folder
        self._warn = warn

    @classmethod
    def default(cls) -> JournalStore:
        return cls(journal_dir())

    def path(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / f"{job_id}.json"

    def log_path(self, job_id: str) -> Path:
        return self.path(job_id).with_suffix(".log")

    def save(self, journal: Journal) -> None:
        """Write ``journal``'s snapshot atomically (0600; the folder is made 0700 if missing), then empty its log."""
        target = self.path(journal.job_id)
        config.make_private_dirs(self.folder)
        data = json.dumps(journal.as_json(), separators=(",", ":")).encode("utf-8")
        with atomic_file(target, durable=True, mode=config.FILE_MODE) as out:
            out.write(data)
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.log_path(journal.job_id), 0)

    def load(self, job_id: str) -> Journal | None:
        """The journal of ``job_id``, or None if there is none (or it cannot be read: a warning says why)."""
        try:
            path = self.path(job_id)
        except ValueError:
            return None
        try:
            journal = Journal.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._warn(f"ignoring the resume journal {path}: {exc}")
            return None
        try:
            log = self.log_path(job_id).read_bytes()
        except FileNotFoundError:
            log = b""
        except OSError as exc:
            self._warn(f"ignoring the events of the resume journal {path} ({exc}): the server says what arrived")
            log = b""
        *lines, _torn_or_empty = log.split(b"\n")  # a last line without its newline was cut by a kill
        for line in lines:
            journal.replay(line)
        return journal

    def all(self) -> list[Journal]:
        """Every readable journal, oldest first."""
        try:
            names = sorted(p.stem for p in self.folder.glob("*.json"))
        except OSError:
            return []
        found = [j for j in (self.load(name) for name in names) if j is not None]
        return sorted(found, key=lambda j: j.created_at)

    def find(self, identity: Identity) -> Journal | None:
        """The newest journal of the same command, if any."""
        matching = [j for j in self.all() if j.identity.matches(identity)]
        return matching[-1] if matching else None

    def remove(self, job_id: str) -> None:
        for suffix in (".json", ".log", ".lock"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.path(job_id).with_suffix(suffix).unlink()

    def lock(self, job_id: str) -> int | None:
        """Lock the job for this process (a descriptor, held until it is closed or the process ends); None if taken.

        Two processes resuming the same job would send its parts twice; the
        lock goes with the process, so a killed one leaves nothing to clear.
        """
        config.make_private_dirs(self.folder)
        fd = os.open(self.path(job_id).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, config.FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


class JournalWriter:
    """Keeps one job's journal up to date: an appended line per event, a snapshot at the milestones.

    Called from the thread that collects results. A journal that cannot be
    written costs the ability to resume, not the upload: one warning, then
    the upload goes on.
    """

    def __init__(
        self,
        store: JournalStore,
        journal: Journal,
        *,
        lock: int | None = None,
        warn: Warn = config.warn_on_stderr,
    ) -> None:
        self.store = store
        self.journal = journal
        self._lock_fd = lock
        self._warn = warn
        self._log_fd: int | None = None
        self._dirty = False
        self._broken = False
        self._lock = threading.Lock()

    def part_sent(self, file_id: str, part: SentPart) -> None:
        with self._lock:
            self.journal.file(file_id).parts[part.number] = part
            self._append(["part", file_id, part.number, part.crc64nvme, part.size, part.etag])

    def files_added(self, files: list[JournalFile]) -> None:
        """A batch joined the job (POST /jobs/{id}/files): its files move from ``unadded`` to ``files``."""
        names = {f.name for f in files}
        with self._lock:
            self.journal.files.extend(files)
            self.journal.unadded = [entry for entry in self.journal.unadded if entry.get("name") not in names]
            self._save()

    def file_done(self, file_id: str) -> None:
        with self._lock:
            self.journal.file(file_id).done = True
            self._append(["done", file_id])

    def flush(self) -> None:
        """Fold the events logged since the last snapshot into a new one."""
        with self._lock:
            if self._dirty:
                self._save()

    def save(self) -> None:
        with self._lock:
            self._save()

    def remove(self) -> None:
        with self._lock:
            self._close_log()
            self.store.remove(self.journal.job_id)
            self.release()

    def release(self) -> None:
        """Let another process resume the job (also done by this process ending)."""
        self._close_log()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _append(self, event: list[Any]) -> None:
        self._dirty = True
        if self._broken:
            return
        line = json.dumps(event, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            if self._log_fd is None:
                self._log_fd = self._open_log()
            written = os.write(self._log_fd, line)
            if written != len(line):  # a full disk: the line is torn, which a reader ignores; stop here
                raise OSError(f"wrote {written} of {len(line)} bytes")
        except OSError as exc:
            self._give_up(exc)

    def _open_log(self) -> int:
        path = self.store.log_path(self.journal.job_id)
        config.make_private_dirs(self.store.folder)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, config.FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as log:
                    log.seek(size - 1)
                    if log.read(1) != b"\n":
                        os.write(fd, b"\n")  # end a line a kill tore: the next event starts a line of its own
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _close_log(self) -> None:
        if self._log_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._log_fd)
            self._log_fd = None

    def _save(self) -> None:
        self._dirty = False
        if self._broken:
            return
        try:
            self.store.save(self.journal)
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        self._broken = True
        self._warn(
            f"cannot write the resume journal in {self.store.folder} ({exc.strerror or exc}): "
            f"if interrupted, job {self.journal.job_id} cannot be resumed"
        )
