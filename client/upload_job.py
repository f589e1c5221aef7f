"""``squeezer upload`` between the terminal and the uploader: a new job, or the rest of an interrupted one.

    start    create the job, write its journal, hand every file to the uploader
    resume   read the journal, ask the server what it has (file states, the
             parts storage holds), refuse files changed since, hand over the rest
    run      upload, keep the journal current, remove it once every file is
             sent; Ctrl-C keeps it and raises UploadInterrupted

The server is the authority on what arrived: the journal says which job and
files a command belongs to, and keeps the parts' CRC64NVME, so that the
whole file's value is combined without reading sent parts again.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .api import ApiClient
from .errors import ApiError, SqueezerCliError, UploadInterrupted
from .jobs import pair_files
from .journal import Identity, Journal, JournalFile, JournalStore, JournalWriter
from .multipart_upload import JobApi, MultipartState, api_failure
from .output import human_size, printable
from .progress import Progress
from .transfer import TransferFailed
from .uploader import FileUpload, LocalFile, Uploader, UploadResult


class JobGone(SqueezerCliError):
    """The journal names a job the API does not know (expired, deleted, or another tenant's)."""


class JobBusy(SqueezerCliError):
    """Another squeezer process is uploading the job right now."""


class OverLimit(SqueezerCliError):
    """The files break a limit the API publishes (GET /): said before anything is hashed or sent."""

    exit_code = 2


# When GET / does not say (an older API): what POST /jobs took in one request.
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class Limits:
    max_files_per_job: int | None
    max_files_per_request: int
    max_file_size: int | None


def check_limits(api: ApiClient, files: list[LocalFile]) -> Limits:
    """The API's limits (GET /), checked against the files' count and sizes before any hashing."""
    published = _published_limits(api)
    limits = Limits(
        max_files_per_job=_positive(published.get("max_files_per_job")),
        max_files_per_request=_positive(published.get("max_files_per_request")) or DEFAULT_BATCH,
        max_file_size=_positive(published.get("max_file_size")),
    )
    if limits.max_files_per_job is not None and len(files) > limits.max_files_per_job:
        raise OverLimit(
            f"{len(files):,} files is more than the {limits.max_files_per_job:,} one job may hold: "
            "upload the folders in several commands"
        )
    if limits.max_file_size is not None:
        too_big = [f for f in files if f.size > limits.max_file_size]
        if too_big:
            first = too_big[0]
            others = f" (and {len(too_big) - 1:,} more)" if len(too_big) > 1 else ""
            raise OverLimit(
                f"{printable(str(first.path))} is {human_size(first.size)}, more than the "
                f"{human_size(limits.max_file_size)} a file may be{others}: nothing was sent"
            )
    return limits


def _published_limits(api: ApiClient) -> dict[str, Any]:
    """GET /'s limits; none from an API that does not answer GET / (a test double, an older API)."""
    try:
        limits = api.index().get("limits")
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return limits if isinstance(limits, dict) else {}


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass
class Prepared:
    """A job ready to upload: what to send, and what nothing is sent for (done before, or refused)."""

    job: dict[str, Any]  # job_id, algorithm, level
    writer: JournalWriter
    items: list[FileUpload]
    settled: dict[str, UploadResult] = field(default_factory=dict)  # by file id
    refused: list[str] = field(default_factory=list)  # file ids changed since the journal: never sent
    resumed: bool = False
    # Files still to be added to the job (POST /jobs/{id}/files), a batch at a
    # time while the batch before uploads; the last batch closes the job.
    batches: list[list[LocalFile]] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.job["job_id"])


def start(
    api: ApiClient,
    store: JournalStore,
    identity: Identity,
    files: list[LocalFile],
    *,
    level: int | None,
    clock_now: float,
    batch_size: int = DEFAULT_BATCH,
) -> Prepared:
    """Create the job (with its first batch of files) and its journal; every file is to be sent.

    More files than one request takes: the job is created open for more
    (``more_files``) and the rest wait in ``batches`` (and in the journal),
    added by ``run`` while the batch before uploads.
    """
    batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    first = batches[0]
    created = api.create_job(
        [f.spec() for f in first], algorithm=identity.algorithm, level=level, more_files=len(batches) > 1
    )
    pairs = pair_files(first, created)
    journal = Journal(
        job_id=created["job_id"],
        identity=identity,
        created_at=clock_now,
        files=[_journal_file(local, entry) for local, entry in pairs],
        unadded=[_unadded(local) for batch in batches[1:] for local in batch],
    )
    writer = JournalWriter(store, journal, lock=_lock(store, journal.job_id))
    writer.save()
    prepared = Prepared(job=created, writer=writer, items=[], batches=batches[1:])
    prepared.items = _items(prepared, pairs)
    return prepared


def _items(prepared: Prepared, pairs: list[tuple[LocalFile, dict[str, Any]]]) -> list[FileUpload]:
    items = []
    for local, entry in pairs:
        try:
            items.append(FileUpload.from_entry(local, entry))
        except TransferFailed as exc:
            prepared.settled[entry["file_id"]] = UploadResult(local, entry["file_id"], exc.code, exc.message)
    return items


def _unadded(local: LocalFile) -> dict[str, Any]:
    return {
        "path": _resolved(local.path),
        "name": local.name,
        "size": local.size,
        "mtime_ns": local.mtime_ns,
        "mode": local.mode,
        "content_type": local.content_type,
        "sha256": local.sha256,
    }


@functools.lru_cache(maxsize=4096)
def _resolved_folder(folder: Path) -> Path:
    return folder.resolve()


def _resolved(path: Path) -> str:
    """``path.resolve()``, its folder resolved once for all its files (a symlinked file itself: in full).

    ``resolve`` walks every component (an ``lstat`` each); for 1,000 files of
    one folder that walk cost more than the journal's writes.
    """
    if path.is_symlink():
        return str(path.resolve())
    return str(_resolved_folder(path.absolute().parent) / path.name)


def _local(entry: dict[str, Any]) -> LocalFile:
    return LocalFile(
        path=Path(entry["path"]),
        name=str(entry["name"]),
        size=int(entry["size"]),
        content_type=entry.get("content_type"),
        sha256=entry.get("sha256"),
        mtime_ns=entry.get("mtime_ns"),
        mode=entry.get("mode"),
    )


def add_batch(job_api: JobApi, prepared: Prepared, batch: list[LocalFile], *, last: bool) -> list[FileUpload]:
    """Add ``batch`` to the open job (the last closes it); the journal learns its files; their uploads."""
    added = job_api.add_files([f.spec() for f in batch], more_files=not last)
    pairs = pair_files(batch, added)
    prepared.writer.files_added([_journal_file(local, entry) for local, entry in pairs])
    return _items(prepared, pairs)


def _lock(store: JournalStore, job_id: str) -> int | None:
    """The job's lock; None if the state folder cannot hold one (the journal warns). JobBusy if it is taken."""
    try:
        fd = store.lock(job_id)
    except OSError:
        return None
    if fd is None:
        raise JobBusy(f"job {job_id} is being uploaded by another squeezer process right now")
    return fd


def _journal_file(local: LocalFile, entry: dict[str, Any]) -> JournalFile:
    plan = entry.get("multipart") or {}
    return JournalFile(
        path=_resolved(local.path),
        name=local.name,
        size=local.size,
        mtime_ns=local.mtime_ns,
        file_id=entry["file_id"],
        kind="multipart" if plan else "put",
        upload_id=plan.get("upload_id"),
        part_size=plan.get("part_size"),
        part_count=plan.get("part_count"),
    )


def resume(api: ApiClient, store: JournalStore, journal: Journal, progress: Progress) -> Prepared:
    """What is left of an interrupted job, as the server sees it."""
    writer = JournalWriter(store, journal, lock=_lock(store, journal.job_id))
    try:
        return _resume(api, writer, progress)
    except KeyboardInterrupt:
        writer.release()
        raise UploadInterrupted(journal.job_id) from None
    except BaseException:
        writer.release()
        raise


def _resume(api: ApiClient, writer: JournalWriter, progress: Progress) -> Prepared:
    journal = writer.journal
    progress.note(f"resuming job {journal.job_id} ({len(journal.left)} of {len(journal.files)} files left)")
    try:
        status = api.get_job(journal.job_id)
    except ApiError as exc:
        if exc.status == 404:
            raise JobGone(
                f"the API at {journal.identity.api_url} does not know job {journal.job_id} any more "
                f"({exc.code}): it expired, or belongs to another tenant's token"
            ) from None
        raise
    prepared = Prepared(job=status, writer=writer, items=[], resumed=True)
    _adopt_added(journal, status)
    remote = {f.get("file_id"): f for f in status.get("files", [])}
    job_api = JobApi(api, journal.job_id)
    for jf in journal.files:
        local = LocalFile(path=Path(jf.path), name=jf.name, size=jf.size, mtime_ns=jf.mtime_ns)
        state = (remote.get(jf.file_id) or {}).get("state")
        if state is None:
            prepared.settled[jf.file_id] = UploadResult(
                local, jf.file_id, "file_not_found", "the job no longer lists it"
            )
        elif jf.done or state != "pending":
            jf.done = True  # arrived (or final) on the server: nothing to send
            prepared.settled[jf.file_id] = UploadResult(local, jf.file_id)
        elif (changed := _changed(jf)) is not None:
            prepared.refused.append(jf.file_id)
            prepared.settled[jf.file_id] = UploadResult(local, jf.file_id, "file_changed", changed)
        elif jf.kind == "put":
            prepared.items.append(FileUpload(local, jf.file_id))  # a fresh URL first: the old one may have expired
        else:
            item_or_result = _resume_multipart(job_api, jf, local)
            if isinstance(item_or_result, FileUpload):
                prepared.items.append(item_or_result)
            else:
                prepared.settled[jf.file_id] = item_or_result
    if journal.unadded or status.get("more_files"):
        size = _positive(_published_limits(api).get("max_files_per_request")) or DEFAULT_BATCH
        rest = [_local(entry) for entry in journal.unadded]
        # an open job with nothing left to add still needs its closing (empty) batch
        prepared.batches = [rest[i : i + size] for i in range(0, len(rest), size)] or [[]]
    writer.save()
    return prepared


def _adopt_added(journal: Journal, status: dict[str, Any]) -> None:
    """Files of ``unadded`` that the job lists: a batch that landed though its answer was lost. Now journal files."""
    by_name = {f.get("name"): f for f in status.get("files", [])}
    adopted = [entry for entry in journal.unadded if entry.get("name") in by_name]
    for entry in adopted:
        journal.files.append(_journal_file(_local(entry), by_name[entry["name"]]))
    if adopted:
        names = {entry["name"] for entry in adopted}
        journal.unadded = [entry for entry in journal.unadded if entry["name"] not in names]


def _changed(jf: JournalFile) -> str | None:
    """Why the file can no longer go on with its upload, or None."""
    try:
        stat = os.stat(jf.path)
    except OSError as exc:
        return f"{jf.path} cannot be read any more ({exc.strerror or exc}): start a new upload"
    if stat.st_size != jf.size:
        return (
            f"{jf.path} changed size since the upload started ({jf.size} -> {stat.st_size} bytes): start a new upload"
        )
    if jf.mtime_ns is not None and stat.st_mtime_ns != jf.mtime_ns:
        return f"{jf.path} was modified since the upload started: start a new upload"
    return None


def _resume_multipart(job_api: JobApi, jf: JournalFile, local: LocalFile) -> FileUpload | UploadResult:
    """The file with the parts storage holds; the journal fills in a checksum storage does not give."""
    try:
        answer = job_api.list_parts(jf.file_id)
        state = MultipartState.from_answer(jf.size, answer)
    except TransferFailed as exc:
        return UploadResult(local, jf.file_id, exc.code, exc.message)
    except SqueezerCliError as exc:
        if isinstance(exc, ApiError) and exc.status == 409 and _no_longer_pending(job_api, jf.file_id):
            jf.done = True  # completed just before the interruption, seen as pending a moment ago
            return UploadResult(local, jf.file_id)
        failed = api_failure(exc)
        return UploadResult(local, jf.file_id, failed.code, f"resuming the upload: {failed.message}")
    for entry in answer.get("parts") or []:
        number = entry.get("part_number") if isinstance(entry, dict) else None
        kept = jf.parts.get(number) if isinstance(number, int) else None
        if kept is not None and number not in state.sent and entry.get("size") == kept.size:
            state.sent[kept.number] = kept
    jf.upload_id, jf.part_size, jf.part_count = state.upload_id, state.plan.part_size, state.plan.count
    jf.parts = dict(state.sent)
    return FileUpload(local, jf.file_id, multipart=state)


def _no_longer_pending(job_api: JobApi, file_id: str) -> bool:
    try:
        return job_api.file_state(file_id) not in (None, "pending")
    except SqueezerCliError:
        return False


def run(prepared: Prepared, uploader: Uploader, progress: Progress) -> list[UploadResult]:
    """Send what is left; one result per file of the job, in the journal's order.

    The journal goes once every file is sent (or can never be: changed
    files, whose multipart uploads are aborted); a file that failed to
    upload keeps it, and the same command sends it again.
    """
    writer = prepared.writer
    try:
        sent = _upload_in_batches(prepared, uploader, progress)
    except BaseException as exc:
        writer.flush()
        writer.release()
        if isinstance(exc, KeyboardInterrupt):
            raise UploadInterrupted(prepared.job_id) from None
        raise
    by_id = {**prepared.settled, **{r.file_id: r for r in sent}}
    results = [by_id[f.file_id] for f in writer.journal.files]
    for file_id in prepared.refused:
        _abort(uploader, writer.journal.file(file_id), progress)
    if any(not r.ok for r in sent):
        progress.note(
            f"job {prepared.job_id}: {sum(1 for r in sent if not r.ok)} file(s) not uploaded; to send them again, "
            f"run the same command or 'squeezer upload --resume {prepared.job_id}'"
        )
        writer.flush()  # the snapshot takes the events logged; the journal stays for the next run
        writer.release()
    else:
        writer.remove()
    return results


def _upload_in_batches(prepared: Prepared, uploader: Uploader, progress: Progress) -> list[UploadResult]:
    """Upload the items; meanwhile add the next batch to the job, so the uploads never wait for the API."""
    job_api = uploader.api
    items, sent = prepared.items, []
    batches = list(prepared.batches)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="add-files") as adder:
        while True:
            following: Future[list[FileUpload]] | None = None
            if batches:
                if job_api is None:
                    raise SqueezerCliError("files are left to add to the job but the uploader has no API client")
                batch = batches.pop(0)
                following = adder.submit(add_batch, job_api, prepared, batch, last=not batches)
            try:
                sent += uploader.upload_all(items, events=prepared.writer)
            finally:
                if following is not None and not following.done():
                    following.cancel()
            if following is None:
                return sent
            items = following.result()
            prepared.batches = batches
            progress.note(
                f"job {prepared.job_id}: {len(prepared.writer.journal.files):,} files added"
                + ("" if batches else " (all)")
            )


def _abort(uploader: Uploader, jf: JournalFile, progress: Progress) -> None:
    if jf.kind != "multipart" or uploader.api is None:
        return
    try:
        uploader.api.abort(jf.file_id)
    except SqueezerCliError as exc:
        progress.note(f"could not abort the upload of {printable(jf.name)}: {exc.message}")
    else:
        progress.note(f"aborted the upload of {printable(jf.name)}: it changed since the upload started")


def resumable_text(journals: list[Journal]) -> str:
    """One line per journal: job id, files left, API and inputs."""
    if not journals:
        return "no resumable uploads"
    lines = []
    for j in journals:
        paths = " ".join(printable(p) for p in j.identity.paths)
        level = "" if j.identity.level is None else f" -l {j.identity.level}"
        lines.append(
            f"{j.job_id}  {len(j.left)} of {len(j.files)} files left  {j.identity.api_url}  "
            f"-a {j.identity.algorithm}{level} {paths}"
        )
    return "\n".join(lines)


def resumable_json(j: Journal) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "api_url": j.identity.api_url,
        "paths": list(j.identity.paths),
        "algorithm": j.identity.algorithm,
        "level": j.identity.level,
        "files": len(j.files),
        "files_left": len(j.left),
    }


def find_journal(store: JournalStore, job_id: str, api_url: str) -> Journal:
    """The journal of ``job_id`` for this API; a clear error listing the resumable jobs otherwise."""
    journal = store.load(job_id)
    if journal is None:
        known = store.all()
        listing = ", ".join(j.job_id for j in known) if known else "none"
        raise SqueezerCliError(
            f"no resumable upload of job {printable(job_id)} in {store.folder} (resumable: {listing})"
        )
    if not config.same_api(journal.identity.api_url, api_url):
        raise SqueezerCliError(
            f"job {job_id} was started on {journal.identity.api_url}, not {api_url}: "
            f"resume it with --api-url {journal.identity.api_url}"
        )
    return journal
