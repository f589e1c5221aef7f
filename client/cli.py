"""The ``squeezer`` command: Click commands, each a few lines over the modules that do the work.

Exit codes: 0 every file completed; 1 at least one file failed (or a local
file could not be read or written); 2 usage error; 3 the API could not be
reached or answered with an error; 70 a bug in this client.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from chalicelib import __version__
from chalicelib.domain import Algorithm, InvalidLevel
from chalicelib.tokens import Token, parse_token

from . import config, jobs, output, upload_job
from .admin import admin
from .api import ApiClient, Timeouts
from .completion import completion
from .errors import EXIT_INTERNAL, SqueezerCliError
from .journal import Identity, JournalStore
from .multipart_upload import JobApi
from .offline_cli import compress, decompress
from .progress import Progress
from .uploader import Uploader, add_checksums, discover

ALGORITHMS = [a.value for a in Algorithm]
TOKEN_ON_COMMAND_LINE = (
    "A token given with --token stays in your shell history and other users can see it with 'ps': "
    "prefer 'squeezer configure' (it prompts without echoing) or SQUEEZER_TOKEN."
)


@dataclass
class AppContext:
    """Built once by the root group; commands receive it with ``pass_obj``."""

    overrides: config.Overrides
    timeout: float
    _settings: config.ClientConfig | None = field(default=None, repr=False)
    _api: ApiClient | None = field(default=None, repr=False)

    @property
    def settings(self) -> config.ClientConfig:
        # Resolved on first use: offline commands and admin never read the config file.
        if self._settings is None:
            self._settings = config.resolve(self.overrides)
        return self._settings

    @property
    def api_url(self) -> str:
        return self.settings.api_url

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            settings = self.settings
            self._api = ApiClient(
                settings.api_url,
                token=settings.token,
                token_origin=settings.token_origin,
                timeouts=Timeouts(read=self.timeout),
            )
        return self._api

    @property
    def transfer_timeout(self) -> tuple[float, float]:
        return (Timeouts().connect, max(self.timeout, 60.0))

    def progress(self) -> Progress:
        return Progress()


def _level(algorithm: str, level: int | None) -> int | None:
    """``level`` checked by the API's own rule (the domain's), so a bad one fails before any upload."""
    if level is None:
        return None
    try:
        return Algorithm(algorithm).check_level(level)
    except InvalidLevel as exc:
        raise click.BadParameter(str(exc), param_hint="'-l' / '--level'") from None


json_option = click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")
parallel_option = click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Files transferred at the same time.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-url",
    envvar="SQUEEZER_API_URL",
    metavar="URL",
    help=f"Base URL of the Squeezer API (env: SQUEEZER_API_URL; default: the profile's api_url, else {config.DEFAULT_API_URL}).",
)
@click.option(
    "--token",
    envvar="SQUEEZER_TOKEN",
    metavar="TOKEN",
    help="API token (env: SQUEEZER_TOKEN; default: the profile's token). " + TOKEN_ON_COMMAND_LINE,
)
@click.option(
    "--profile",
    envvar="SQUEEZER_PROFILE",
    metavar="NAME",
    help=f"Profile of the config file to use (env: SQUEEZER_PROFILE; default: {config.DEFAULT_PROFILE!r}).",
)
@click.option(
    "--timeout",
    envvar="SQUEEZER_TIMEOUT",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for an answer from the API (env: SQUEEZER_TIMEOUT).",
)
@click.version_option(__version__, prog_name="squeezer")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, token: str | None, profile: str | None, timeout: float) -> None:
    """Compress files with the Squeezer service, or locally with the same codecs.

    The API URL and token come from --api-url/--token, SQUEEZER_API_URL/SQUEEZER_TOKEN,
    the profile saved by 'squeezer configure', and for the local stack ('make up') its
    own token file, in that order.
    """
    overrides = config.Overrides(
        api_url=_given(ctx, "api_url", api_url, "--api-url", "SQUEEZER_API_URL"),
        token=_given(ctx, "token", token, "--token", "SQUEEZER_TOKEN"),
        profile=_given(ctx, "profile", profile, "--profile", "SQUEEZER_PROFILE"),
    )
    ctx.obj = AppContext(overrides=overrides, timeout=timeout)


def _given(ctx: click.Context, name: str, value: str | None, flag: str, envvar: str) -> config.Given | None:
    if value is None:
        return None
    from_env = ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT
    return config.Given(value, envvar if from_env else flag)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-a", "--algorithm", type=click.Choice(ALGORITHMS), default="zstd", show_default=True, help="Compression algorithm."
)
@click.option("-l", "--level", type=int, help="Compression level (default: the algorithm's own).")
@parallel_option
@click.option(
    "--checksum/--no-checksum",
    default=True,
    show_default=True,
    help="Send each file's sha256 so storage and worker verify the upload (reads files twice). "
    "Files uploaded in parts are checked part by part with CRC64NVME either way.",
)
@click.option("--wait", is_flag=True, help="Wait until every file is compressed (or failed).")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Save the results under DIR, keeping relative paths (implies --wait).",
)
@click.option(
    "--resume",
    "resume_id",
    metavar="JOB_ID",
    help="Go on with an interrupted upload (paths, algorithm and level come from its journal).",
)
@click.option(
    "--new",
    "start_new",
    is_flag=True,
    help="Start a new job even if an interrupted upload of the same paths could be resumed (its journal is dropped).",
)
@click.option("--list-resumable", is_flag=True, help="List the interrupted uploads that can be resumed, and exit.")
@json_option
@click.pass_context
def upload(
    ctx: click.Context,
    paths: tuple[Path, ...],
    algorithm: str,
    level: int | None,
    parallel: int,
    checksum: bool,
    wait: bool,
    download_dir: Path | None,
    resume_id: str | None,
    start_new: bool,
    list_resumable: bool,
    as_json: bool,
) -> None:
    """Upload files and folders (recursively) as one compression job; print its id.

    An interrupted upload (Ctrl-C, a lost connection, a killed process) is
    resumed by running the same command again, or with --resume JOB_ID: only
    what the server does not have yet is sent. Its journal is kept in
    $XDG_STATE_HOME/squeezer/uploads (env SQUEEZER_STATE_DIR/uploads).
    """
    app: AppContext = ctx.obj
    store = JournalStore.default()
    if list_resumable:
        _list_resumable(store, as_json)
        return
    progress = app.progress()
    prepared = None
    if resume_id is not None:
        if paths or start_new:
            raise click.UsageError("--resume takes no PATHS and no --new: the journal names the files")
        for name in ("algorithm", "level"):
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT:
                raise click.UsageError(f"--resume keeps the job's algorithm and level: drop --{name}")
        prepared = upload_job.resume(app.api, store, upload_job.find_journal(store, resume_id, app.api_url), progress)
    else:
        if not paths:
            raise click.UsageError("give the files or folders to upload (or --resume JOB_ID)")
        level = _level(algorithm, level)
        identity = Identity.of(app.api_url, paths, algorithm, level)
        journal = store.find(identity)
        if journal is not None and start_new:
            store.remove(journal.job_id)
        elif journal is not None:
            try:
                prepared = upload_job.resume(app.api, store, journal, progress)
            except upload_job.JobGone as exc:
                store.remove(journal.job_id)
                progress.note(f"{exc.message}; starting a new upload")
        if prepared is None:
            prepared = _start(app, store, identity, paths, level, parallel, checksum, progress)
    job_id = prepared.job_id
    if not as_json:
        click.echo(job_id)
    uploader = Uploader(parallel=parallel, timeout=app.transfer_timeout, progress=progress, api=JobApi(app.api, job_id))
    uploads = upload_job.run(prepared, uploader, progress)
    uploaded = [u.file_id for u in uploads if u.ok]
    problems = [(u.file.name, u.error_code, u.error_message) for u in uploads if not u.ok]
    status, saved = None, []
    if (wait or download_dir) and uploaded:
        status = jobs.wait_for_job(app.api, job_id, progress=progress, file_ids=uploaded)
        problems += jobs.failures(status, uploaded)
        if download_dir:
            saved = jobs.download_results(
                status, download_dir, progress=progress, parallel=parallel, timeout=app.transfer_timeout
            )
            problems += [(d.name, d.error_code, d.error_message) for d in saved if d.error_code]
    if as_json:
        output.emit_json(_upload_summary(prepared.job, uploads, status, saved))
    jobs.raise_if_failed(problems, len(uploads))


def _start(
    app: AppContext,
    store: JournalStore,
    identity: Identity,
    paths: tuple[Path, ...],
    level: int | None,
    parallel: int,
    checksum: bool,
    progress: Progress,
) -> upload_job.Prepared:
    files = discover(paths, on_skip=progress.note)
    if not files:
        raise click.UsageError("no files to upload")
    if checksum:
        files = add_checksums(files, parallel=parallel, progress=progress)
    prepared = upload_job.start(app.api, store, identity, files, level=level, clock_now=time.time())
    created = prepared.job
    progress.note(
        f"job {prepared.job_id}: {len(files)} file(s), {output.human_size(sum(f.size for f in files))}, "
        f"{created['algorithm']} level {created['level']}"
    )
    return prepared


def _list_resumable(store: JournalStore, as_json: bool) -> None:
    journals = store.all()
    if as_json:
        output.emit_json({"folder": str(store.folder), "jobs": [upload_job.resumable_json(j) for j in journals]})
    else:
        click.echo(upload_job.resumable_text(journals))


@cli.command()
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Follow the job until every file is final, then print the table.")
@json_option
@click.pass_obj
def status(app: AppContext, job_id: str, watch: bool, as_json: bool) -> None:
    """Show a job's files: state, sizes, ratio, time and errors."""
    result = jobs.wait_for_job(app.api, job_id, progress=app.progress()) if watch else app.api.get_job(job_id)
    if as_json:
        output.emit_json(result)
    else:
        click.echo(output.status_text(result))
    jobs.raise_if_failed(jobs.failures(result), len(result.get("files", [])))


@cli.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to save the results in (created if missing).",
)
@click.option("--wait", is_flag=True, help="Wait for files that are not finished yet.")
@parallel_option
@json_option
@click.pass_obj
def download(app: AppContext, job_id: str, out_dir: Path, wait: bool, parallel: int, as_json: bool) -> None:
    """Save a job's compressed files under a folder, keeping relative paths."""
    progress = app.progress()
    result = jobs.wait_for_job(app.api, job_id, progress=progress) if wait else app.api.get_job(job_id)
    saved = jobs.download_results(result, out_dir, progress=progress, parallel=parallel, timeout=app.transfer_timeout)
    if as_json:
        output.emit_json({"job_id": job_id, "files": [_saved_json(d) for d in saved]})
    else:
        for d in saved:
            if not d.error_code:
                click.echo(str(d.path))
    problems = jobs.failures(result) + [(d.name, d.error_code, d.error_message) for d in saved if d.error_code]
    jobs.raise_if_failed(problems, len(result.get("files", [])))
    unfinished = jobs.open_files(result)
    if unfinished:
        raise SqueezerCliError(
            f"{len(unfinished)} file(s) are not finished yet (first: {unfinished[0]}): "
            f"run 'squeezer download {job_id} -o {out_dir} --wait'"
        )


@cli.command()
@click.argument("job_id")
@json_option
@click.pass_obj
def cancel(app: AppContext, job_id: str, as_json: bool) -> None:
    """Cancel a job's unfinished files; completed results stay downloadable."""
    result = app.api.cancel_job(job_id)
    if as_json:
        output.emit_json(result)
    else:
        click.echo(f"cancelled {job_id}", err=True)
        click.echo(output.status_text(result))


cli.add_command(admin)


@cli.command()
@click.option(
    "--profile",
    "profile_name",
    metavar="NAME",
    help="Profile to write (default: the root --profile, SQUEEZER_PROFILE, else 'default').",
)
@click.option(
    "--api-url",
    metavar="URL",
    help="API base URL to save, http(s)://host[:port][/path] (prompted for if missing).",
)
@click.option("--token", metavar="TOKEN", help="Token to save (prompted for, hidden, if missing). See the note above.")
@click.option("--list", "show", is_flag=True, help="Show the profiles, tokens masked, instead of writing one.")
@json_option
@click.pass_obj
def configure(
    app: AppContext, profile_name: str | None, api_url: str | None, token: str | None, show: bool, as_json: bool
) -> None:
    """Save an API URL and a token as a profile of the config file.

    Prompts for what is not given (the token without echoing it) and keeps the
    file's other profiles. The file is $SQUEEZER_CONFIG, else
    $XDG_CONFIG_HOME/squeezer/config.toml, else ~/.config/squeezer/config.toml,
    written with mode 0600. Other commands use the profile named by --profile or
    SQUEEZER_PROFILE, else 'default'.

    Note: a token given with --token (here or on any command) stays in your shell
    history and other users can see it with 'ps': prefer the prompt, or
    SQUEEZER_TOKEN for scripts.
    """
    path = config.config_path()
    name = profile_name or (app.overrides.profile.value if app.overrides.profile else config.DEFAULT_PROFILE)
    if show:
        if api_url is not None or token is not None:
            raise click.UsageError("--list shows the profiles: it takes no --api-url or --token")
        _show_profiles(config.read_config(path), name, as_json)
        return
    config.check_profile_name(name)
    current = config.read_config(path).profiles.get(name)
    url = _option(config.check_api_url, api_url, "--api-url") if api_url is not None else _ask_api_url(current)
    secret = _option(config.check_token, token, "--token") if token is not None else _ask_token(current)
    saved = config.save_profile(path, name, url, secret)
    if not url.lower().startswith("https://") and not config.is_loopback(url):
        config.warn_on_stderr(f"{url} is not https: the token will cross the network unencrypted")
    if as_json:
        output.emit_json(
            {"path": str(saved.path), "profile": saved.profile, "api_url": saved.api_url, "token": saved.token.masked}
        )
    else:
        click.echo(f"saved profile {saved.profile!r} in {saved.path}: {saved.api_url}, token {saved.token.masked}")


def _option(check: Callable[[str], Any], value: str, hint: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{hint}'") from None


def _ask_api_url(current: config.Profile | None) -> str:
    default = current.api_url if current is not None and current.api_url else config.DEFAULT_API_URL
    while True:
        text = click.prompt("API URL", default=default, err=True)
        try:
            return config.check_api_url(text.strip())
        except ValueError as exc:
            click.echo(f"Error: {exc}", err=True)


def _ask_token(current: config.Profile | None) -> Token:
    kept = None
    if current is not None and current.token_text is not None:
        kept = parse_token(current.token_text)
    prompt = f"Token (input hidden; Enter keeps {kept.masked})" if kept else "Token (input hidden)"
    while True:
        text = click.prompt(prompt, hide_input=True, default="" if kept else None, show_default=False, err=True)
        if not text and kept is not None:
            return kept
        try:
            return config.check_token(text)
        except ValueError as exc:
            click.echo(f"Error: {exc}", err=True)


def _show_profiles(found: config.ConfigFile, active: str, as_json: bool) -> None:
    rows = config.profile_rows(found, active)
    if as_json:
        output.emit_json({"path": str(found.path), "exists": found.exists, "profiles": [r.as_json() for r in rows]})
        return
    if not found.exists:
        click.echo(f"no config file at {found.path}: create a profile with 'squeezer configure'", err=True)
        return
    if not rows:
        click.echo(f"no profiles in {found.path}: create one with 'squeezer configure'", err=True)
        return
    click.echo(f"profiles in {found.path}:")
    width = max(len(r.name) for r in rows)
    for r in rows:
        mark = "*" if r.active else " "
        click.echo(
            f"{mark} {output.printable(r.name):<{width}}  {output.printable(r.api_url or '(no api_url)')}  "
            f"{r.masked_token or '(no token)'}"
        )


@cli.command()
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the re-queued files are final.")
@json_option
@click.pass_obj
def retry(app: AppContext, job_id: str, wait: bool, as_json: bool) -> None:
    """Queue again a job's failed files that a retry can fix (their uploads must still exist)."""
    outcome = app.api.retry_job(job_id)
    retried = [f["file_id"] for f in outcome.get("retried", [])]
    skipped = outcome.get("skipped", [])
    progress = app.progress()
    progress.note(f"job {job_id}: {len(retried)} file(s) queued again, {len(skipped)} not retried")
    for f in skipped:
        progress.note(f"not retried {output.printable(f.get('name'))}: {output.printable(f.get('reason'))}")
    status = jobs.wait_for_job(app.api, job_id, progress=progress, file_ids=retried) if wait and retried else None
    if as_json:
        output.emit_json({**outcome, **({"status": status} if status else {})})
    elif status is not None:
        click.echo(output.status_text(status))
    if status is not None:
        jobs.raise_if_failed(jobs.failures(status, retried), len(retried))


@cli.command(name="jobs")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Jobs per page.")
@click.option("--all", "follow", is_flag=True, help="Follow the pages to list every job, not just the first page.")
@json_option
@click.pass_obj
def list_jobs(app: AppContext, limit: int, follow: bool, as_json: bool) -> None:
    """List recent jobs, newest first."""
    found = list(app.api.iter_jobs(limit=limit, follow=follow))
    if as_json:
        output.emit_json({"jobs": found})
    elif found:
        click.echo(output.jobs_text(found))
    else:
        click.echo("no jobs yet", err=True)


def _upload_summary(
    created: dict[str, Any], uploads: list[Any], status: dict[str, Any] | None, saved: list[Any]
) -> dict[str, Any]:
    states = {f["file_id"]: f for f in (status or {}).get("files", [])}
    paths = {d.name: d for d in saved}
    files = []
    for u in uploads:
        remote = states.get(u.file_id, {})
        error = {"code": u.error_code, "message": u.error_message} if not u.ok else remote.get("error")
        if u.file.name in paths and paths[u.file.name].error_code:
            d = paths[u.file.name]
            error = {"code": d.error_code, "message": d.error_message}
        files.append(
            {
                "name": u.file.name,
                "file_id": u.file_id,
                "size": u.file.size,
                "uploaded": u.ok,
                "state": remote.get("state"),
                "compressed_size": remote.get("compressed_size"),
                "ratio": remote.get("ratio"),
                "error": error,
                "output": str(paths[u.file.name].path)
                if u.file.name in paths and not paths[u.file.name].error_code
                else None,
            }
        )
    return {
        "job_id": created["job_id"],
        "algorithm": created["algorithm"],
        "level": created["level"],
        "state": (status or {}).get("state"),
        "files": files,
    }


def _saved_json(d: jobs.Downloaded) -> dict[str, Any]:
    error = {"code": d.error_code, "message": d.error_message} if d.error_code else None
    return {"name": d.name, "output": None if d.error_code else str(d.path), "error": error}


cli.add_command(compress)
cli.add_command(decompress)
cli.add_command(completion)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``squeezer`` script.

    Click handles its own errors (usage: 2, ClickException: its exit_code,
    Ctrl-C: 1). Anything else is a bug: one line instead of a traceback,
    unless SQUEEZER_DEBUG is set.
    """
    try:
        cli.main(args=argv, prog_name="squeezer")
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if os.environ.get("SQUEEZER_DEBUG"):
            raise
        click.echo(
            f"Error: internal error in squeezer ({type(exc).__name__}: {exc}); "
            "run again with SQUEEZER_DEBUG=1 for the traceback",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
