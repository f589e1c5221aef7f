"""What the job commands do between the API and the terminal: wait, download, judge.

Kept out of cli.py so the commands stay a few lines each, and out of
api.py so the API client stays a plain adapter.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from chalicelib.domain import Algorithm
from chalicelib.errors import ValidationError
from chalicelib.validation import check_name

from .api import ApiClient
from .errors import ApiError, FilesFailed, SqueezerCliError
from .output import human_size, printable
from .polling import Patience, patiently
from .progress import Progress
from .safe_download import Existing, OnExisting, WouldOverwrite, compare, restore_metadata
from .summary import Summary
from .transfer import RetryPolicy, ThreadSessions, TransferFailed, download_to
from .uploader import LocalFile

FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Poll:
    """Backoff between status polls: 0.5 s growing by half each time, up to 5 s."""

    first: float = 0.5
    factor: float = 1.5
    cap: float = 5.0
    sleep: Callable[[float], None] = time.sleep


DEFAULT_POLL = Poll()


def pair_files(files: list[LocalFile], created: dict[str, Any]) -> list[tuple[LocalFile, dict[str, Any]]]:
    """Match the local files with the API's entries (and upload URLs) by name."""
    by_name = {entry["name"]: entry for entry in created.get("files", [])}
    missing = [f.name for f in files if f.name not in by_name]
    if missing:
        raise ApiError(201, "bad_response", f"the new job does not list {missing[0]!r}")
    return [(f, by_name[f.name]) for f in files]


# Up to this many files, every poll fetches the full status so each finished
# file gets its own line as it finishes; bigger jobs poll the one-item summary
# and fetch the full status when it changes, at most every LIST_EVERY seconds.
LIVE_LIST_LIMIT = 200
LIST_EVERY = 30.0


def wait_for_job(
    api: ApiClient,
    job_id: str,
    *,
    progress: Progress,
    file_ids: Iterable[str] | None = None,
    poll: Poll | None = None,
    clock: Callable[[], float] = time.monotonic,
    patience: Patience | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Poll until every watched file is final; return the last full status.

    ``file_ids`` limits the wait to some files (an upload that failed leaves
    its file pending until its upload URL expires). Connection errors and
    5xx are waited out (:mod:`client.polling`). Files never uploaded (still
    pending once every other file is final) are waited for while their
    upload may still be running, with a note saying how to resume it; once
    the job is older than UPLOAD_WINDOW they are given up on, and the status
    is returned with them pending.
    """
    poll = poll or DEFAULT_POLL
    wanted = set(file_ids) if file_ids is not None else None
    status = patiently(lambda: api.get_job(job_id), progress=progress, waiting_for=f"job {job_id}", patience=patience)
    watched = _watched(status, wanted)
    unwatched = len(status.get("files", [])) - len(watched)
    live = len(status.get("files", [])) <= LIVE_LIST_LIMIT
    # Even a summary reads every file record: poll big jobs less often (10 s at 1,000 files).
    cap = max(poll.cap, len(status.get("files", [])) / 100)
    reported: set[str] = set()
    interval = poll.first
    listed_at, listed_done = clock(), -1
    waiting_for = f"job {job_id}"
    told_pending = False
    with progress.files("compress", len(watched)) as task:
        while True:
            final = [f for f in watched if f["state"] in FINAL_STATES]
            for f in final:
                if f["file_id"] not in reported:
                    reported.add(f["file_id"])
                    (progress.error if f["state"] == "failed" else progress.detail)(_final_line(f))
            failed = sum(1 for f in final if f["state"] != "completed")
            stalled = [f for f in watched if f["state"] == "pending"]
            details = [f"{failed} failed" if failed else "", f"{len(stalled)} not uploaded" if stalled else ""]
            task.update(len(final), ", ".join(d for d in details if d))
            if len(final) == len(watched):
                return status
            waiting_for = f"job {job_id} ({len(watched) - len(final)} of {len(watched)} files left)"
            if stalled and len(final) + len(stalled) == len(watched):
                if upload_window_over(status, wall_clock()):
                    progress.note(
                        f"job {job_id}: {len(stalled)} file(s) were never uploaded and their upload window is over: "
                        "not waiting for them"
                    )
                    return status
                if not told_pending:
                    told_pending = True
                    progress.note(
                        f"job {job_id}: waiting for {len(stalled)} file(s) that are not uploaded yet; if their upload "
                        f"was interrupted, resume it with 'squeezer upload --resume {job_id}'"
                    )
            while True:
                poll.sleep(interval)
                interval = min(cap, interval * poll.factor)
                if live:
                    break
                summary = patiently(
                    lambda: api.get_summary(job_id), progress=progress, waiting_for=waiting_for, patience=patience
                )
                done = summary["counts"]["completed"] + summary["counts"]["failed"] + summary["counts"]["cancelled"]
                task.update(min(done, len(watched)), "")
                finished = summary["counts"]["open"] <= unwatched
                if finished or (done != listed_done and clock() - listed_at >= LIST_EVERY):
                    listed_done = done
                    break
            status = patiently(
                lambda: api.get_job(job_id), progress=progress, waiting_for=waiting_for, patience=patience
            )
            listed_at = clock()
            watched = _watched(status, wanted)


def _watched(status: dict[str, Any], wanted: set[str] | None) -> list[dict[str, Any]]:
    return [f for f in status.get("files", []) if wanted is None or f["file_id"] in wanted]


def _final_line(f: dict[str, Any]) -> str:
    name = printable(f["name"])
    if f["state"] == "completed":
        ratio = f.get("ratio")
        share = f" ({ratio * 100:.1f}%)" if ratio is not None else ""
        return f"compressed {name}: {human_size(f['size'])} -> {human_size(f.get('compressed_size'))}{share}"
    error = f.get("error") or {}
    return f"{f['state']} {name}: {error.get('code', f['state'])}: {error.get('message', '')}".rstrip(": ")


def failures(
    status: dict[str, Any], file_ids: Iterable[str] | None = None, *, states: Iterable[str] = ("failed", "cancelled")
) -> list[tuple[str, str | None, str | None]]:
    """(name, code, message) of every watched file in one of ``states`` (by default: that did not complete)."""
    wanted = set(file_ids) if file_ids is not None else None
    counted = set(states)
    found: list[tuple[str, str | None, str | None]] = []
    for f in _watched(status, wanted):
        if f["state"] in counted:
            error = f.get("error") or {}
            found.append((f["name"], error.get("code", f["state"]), error.get("message", f"the file was {f['state']}")))
    return found


def open_files(status: dict[str, Any]) -> list[str]:
    return [f["name"] for f in status.get("files", []) if f["state"] not in FINAL_STATES]


# How long a new job's files may take to arrive: the API's default upload URL
# lifetime (SQUEEZER_UPLOAD_URL_TTL). A file still pending after that was never uploaded.
UPLOAD_WINDOW = 3600.0


def upload_window_over(status: dict[str, Any], now: float) -> bool:
    created = status.get("created_at")
    return isinstance(created, int | float) and now - created > UPLOAD_WINDOW


def not_uploaded(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Files the server has not received: pending, never queued."""
    return [f for f in status.get("files", []) if f.get("state") == "pending"]


def not_uploaded_hint(status: dict[str, Any], *, resumable: bool, now: float) -> str | None:
    """What ``status`` says about files never uploaded, and how to send them; None if there are none."""
    missing = not_uploaded(status)
    if not missing:
        return None
    job_id = status.get("job_id")
    first = printable(missing[0].get("name"))
    head = f"{len(missing)} of {len(status.get('files', []))} file(s) were never uploaded (first: {first})"
    if upload_window_over(status, now):
        head += ", and their upload window is over"
        if resumable:
            return f"{head}: 'squeezer upload --resume {job_id}' asks for new upload links and sends them"
        return f"{head}: upload them again in a new job"
    if resumable:
        return f"{head}: if their upload was interrupted, resume it with 'squeezer upload --resume {job_id}'"
    return f"{head}: an upload may still be running on another machine; if it was interrupted there, resume it there"


def result_path(out_dir: Path, f: dict[str, Any]) -> Path:
    """Where a file's result goes: its relative name plus .zst/.br/.gz, under ``out_dir``.

    The name comes from the server: it is checked with the API's own rules
    (no absolute path, no '..', no control characters or NUL) so that a bad
    answer can never write outside ``out_dir``.
    """
    try:
        name = PurePosixPath(check_name(f.get("name"), where="not a safe file name"))
    except ValidationError as exc:
        raise TransferFailed("unsafe_name", str(exc)) from None
    try:
        extension = Algorithm(f.get("algorithm")).extension
    except ValueError:
        raise TransferFailed(
            "unknown_algorithm", f"the server names no known algorithm: {f.get('algorithm')!r}"
        ) from None
    return out_dir.joinpath(*name.parts[:-1], name.name + extension)


def _plan(out_dir: Path, files: list[dict[str, Any]]) -> dict[int, Path | TransferFailed]:
    """Each file's target, or why it cannot be saved.

    A file cannot be saved if its name is unsafe, or if its target is taken
    by an earlier file of the list: the same path (two equal names), or a
    path that one file needs as a folder and another as a file (``a`` saved
    as ``a.gz`` next to ``a.gz/b``). Deciding this before any download makes
    the outcome the same whatever order the parallel downloads finish in.
    """
    plan: dict[int, Path | TransferFailed] = {}
    files_at: dict[tuple[str, ...], str] = {}  # target -> the name saved there
    folders_at: dict[tuple[str, ...], str] = {}  # folder a target needs -> the first name needing it
    for index, f in enumerate(files):
        try:
            path = result_path(out_dir, f)
        except TransferFailed as exc:
            plan[index] = exc
            continue
        parts = path.relative_to(out_dir).parts
        folders = [parts[:n] for n in range(1, len(parts))]
        clash = _clash(parts, folders, files_at, folders_at)
        if clash is not None:
            plan[index] = TransferFailed(
                "duplicate_name", f"would be saved as {printable(str(path))}, {clash}; not overwritten"
            )
            continue
        files_at[parts] = f["name"]
        for folder in folders:
            folders_at.setdefault(folder, f["name"])
        plan[index] = path
    return plan


def _clash(
    parts: tuple[str, ...],
    folders: list[tuple[str, ...]],
    files_at: dict[tuple[str, ...], str],
    folders_at: dict[tuple[str, ...], str],
) -> str | None:
    """Why an earlier file of the download already has this target, or None."""
    if parts in files_at:
        return f"where {printable(files_at[parts])} is saved"
    if parts in folders_at:
        return f"a folder {printable(folders_at[parts])} is saved in"
    for folder in folders:
        if folder in files_at:
            return f"inside {printable('/'.join(folder))}, where {printable(files_at[folder])} is saved as a file"
    return None


@dataclass(frozen=True)
class Downloaded:
    """One result: ``outcome`` SAVED (fetched), UP_TO_DATE (identical file there), KEPT (--no-clobber) or FAILED."""

    name: str
    path: Path
    error_code: str | None = None
    error_message: str | None = None
    outcome: str = "saved"


SAVED, UP_TO_DATE, KEPT, FAILED = "saved", "up_to_date", "kept", "failed"
SHOWN_PER_CODE = 3  # download errors printed one by one per error code; the rest are counted


def download_results(
    status: dict[str, Any],
    out_dir: Path,
    *,
    progress: Progress,
    parallel: int = 8,
    timeout: tuple[float, float] = (5.0, 120.0),
    policy: RetryPolicy = RetryPolicy(),
    on_existing: OnExisting = OnExisting.REFUSE,
) -> list[Downloaded]:
    """Download every completed file of ``status`` under ``out_dir``, in parallel.

    A result already there and identical is not fetched again; a different
    file there raises WouldOverwrite before anything is fetched, unless
    ``on_existing`` says to overwrite (FORCE) or keep (KEEP) it
    (:mod:`client.safe_download`). Saved files get the original's mode and
    mtime when the status has them.
    """
    ready = [f for f in status.get("files", []) if f.get("state") == "completed" and f.get("download_url")]
    plan = _plan(out_dir, ready)
    done: list[Downloaded] = []
    fetch_list: list[tuple[int, dict[str, Any]]] = []
    clashes: list[Path] = []
    for index, f in enumerate(ready):
        path = plan[index]
        if isinstance(path, TransferFailed):
            fetch_list.append((index, f))  # reported as failed by fetch()
            continue
        existing = compare(path, f)
        if existing is Existing.SAME:
            done.append(Downloaded(f["name"], path, outcome=UP_TO_DATE))
            progress.detail(f"up to date {path}")
        elif existing is Existing.DIFFERENT and on_existing is OnExisting.KEEP:
            done.append(Downloaded(f["name"], path, outcome=KEPT))
            progress.detail(f"kept {path}: it exists and differs (--no-clobber)")
        elif existing is Existing.DIFFERENT and on_existing is OnExisting.REFUSE:
            clashes.append(path)
        else:
            fetch_list.append((index, f))
    if clashes:
        raise WouldOverwrite(clashes)
    sessions = ThreadSessions()
    cancel = threading.Event()
    errors_by_code: Counter[str] = Counter()
    with progress.bytes("download", sum(f.get("compressed_size") or 0 for _, f in fetch_list)) as task:

        def fetch(index: int, f: dict[str, Any]) -> Downloaded:
            path = plan[index]
            if isinstance(path, TransferFailed):
                return Downloaded(str(f.get("name")), out_dir, path.code, path.message, FAILED)
            try:
                download_to(
                    sessions.get(),
                    f["download_url"],
                    path,
                    policy=policy,
                    timeout=timeout,
                    expected_size=f.get("compressed_size"),
                    on_bytes=task.advance,
                    cancel=cancel,
                    on_retry=lambda n, exc, wait: progress.note(
                        f"retrying {printable(f['name'])} in {wait:.1f}s: {exc.message}"
                    ),
                )
                restore_metadata(path, f)
            except TransferFailed as exc:
                code, message = _download_refusal(exc, status.get("job_id"))
                return Downloaded(f["name"], out_dir, code, message, FAILED)
            except OSError as exc:
                return Downloaded(
                    f["name"], out_dir, "write_failed", f"{exc.filename or out_dir}: {exc.strerror or exc}", FAILED
                )
            return Downloaded(f["name"], path)

        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="squeezer-download")
        try:
            for future in as_completed([pool.submit(fetch, i, f) for i, f in fetch_list]):
                result = future.result()
                done.append(result)
                if result.error_code:
                    errors_by_code[result.error_code] += 1
                    if errors_by_code[result.error_code] <= SHOWN_PER_CODE:
                        progress.error(
                            f"download failed: {printable(result.name)}: {result.error_code}: {result.error_message}"
                        )
                else:
                    progress.detail(f"saved {result.path}")
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            sessions.close()
    for code, count in errors_by_code.items():
        if count > SHOWN_PER_CODE:
            progress.error(f"... and {count - SHOWN_PER_CODE} more downloads failed with {code}")
    order = {str(f.get("name")): i for i, f in enumerate(ready)}
    return sorted(done, key=lambda d: order.get(d.name, len(order)))


def _download_refusal(exc: TransferFailed, job_id: object) -> tuple[str, str]:
    """Storage's 403/404 on a result said in the user's terms (not "check your AWS Secret Access Key")."""
    if exc.status == 404:
        return "result_missing", "the result is no longer in storage (deleted or expired)"
    if exc.status == 403:
        return (
            "result_unavailable",
            f"storage refused the download link ({exc.storage_code or '403'}): the link expired or the result "
            f"was removed; run 'squeezer download {job_id} -o DIR' again for fresh links",
        )
    return exc.code, exc.message


def download_summary(status: dict[str, Any], saved: Sequence[Downloaded], summary: Summary) -> None:
    """Add what happened to the results to ``summary``."""
    summary.downloaded = sum(1 for d in saved if d.outcome == SAVED)
    summary.up_to_date = sum(1 for d in saved if d.outcome == UP_TO_DATE)
    summary.kept = sum(1 for d in saved if d.outcome == KEPT)


def with_states(api: ApiClient, listed: list[dict[str, Any]], *, parallel: int = 4) -> list[dict[str, Any]]:
    """Jobs of a listing with ``state``, ``ratio`` and ``bytes_out`` (from each job's summary if the listing lacks them).

    A summary that cannot be read leaves the job as listed (shown as '-').
    """
    todo = [j for j in listed if "state" not in j]
    if not todo:
        return listed

    def add(job: dict[str, Any]) -> dict[str, Any]:
        try:
            summary = api.get_summary(job["job_id"])
        except SqueezerCliError:
            return job
        totals = summary.get("totals") or {}
        return {
            **job,
            "state": summary.get("state"),
            "ratio": totals.get("ratio"),
            "bytes_out": totals.get("bytes_out"),
        }

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="squeezer-summary") as pool:
        done = dict(zip([id(j) for j in todo], pool.map(add, todo), strict=True))
    return [done.get(id(j), j) for j in listed]


def raise_if_failed(problems: Sequence[tuple[str, str | None, str | None]], total: int) -> None:
    if problems:
        raise FilesFailed(problems, total)
