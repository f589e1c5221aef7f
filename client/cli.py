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
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from chalicelib import __version__
from chalicelib.algorithms import Algorithm, InvalidLevel

from . import defaults, output
from .completion import completion
from .errors import EXIT_INTERNAL, ConfigError, Interrupted
from .offline_cli import compress, decompress
from .progress import Progress, Verbosity

# What the commands that talk to the API need (requests), the admin commands
# (boto3) and the uploader (the codecs) are imported inside the commands that
# use them: 'squeezer --help', 'squeezer compress' and shell completion start
# without them (tests/cli_client/test_startup.py holds it).
if TYPE_CHECKING:
    from chalicelib.tokens import Token

    from . import config, jobs, upload_job
    from .api import ApiClient
    from .journal import Identity, JournalStore
    from .safe_download import OnExisting
    from .selection import Selection
    from .summary import Summary
    from .uploader import LocalFile

ALGORITHMS = [a.value for a in Algorithm]
ADMIN_HELP = "Operator commands: AWS credentials and queues directly, not the API."
TOKEN_ON_COMMAND_LINE = (
    "A token given with --token stays in your shell history and other users can see it with 'ps': "
    "prefer 'squeezer configure' (it prompts without echoing) or SQUEEZER_TOKEN."
)


@dataclass
class AppContext:
    """Built once by the root group; commands receive it with ``pass_obj``."""

    given: dict[str, tuple[str, str]]  # option name -> (value, where it came from): what was said, unchecked
    timeout: float
    verbosity: Verbosity = Verbosity.NORMAL
    _overrides: config.Overrides | None = field(default=None, repr=False)
    _settings: config.ClientConfig | None = field(default=None, repr=False)
    _api: ApiClient | None = field(default=None, repr=False)

    @property
    def overrides(self) -> config.Overrides:
        # Built on first use: compress and decompress never import the config module.
        if self._overrides is None:
            from . import config

            self._overrides = config.Overrides(**{k: config.Given(v, origin) for k, (v, origin) in self.given.items()})
        return self._overrides

    @property
    def settings(self) -> config.ClientConfig:
        # Resolved on first use: offline commands and admin never read the config file.
        if self._settings is None:
            from . import config

            self._settings = config.resolve(self.overrides)
        return self._settings

    @property
    def api_url(self) -> str:
        return self.settings.api_url

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            from .api import ApiClient, Timeouts

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
        from .api import Timeouts

        return (Timeouts().connect, max(self.timeout, 60.0))

    def progress(self) -> Progress:
        return Progress(verbosity=self.verbosity)

    def defaults(self, ctx: click.Context) -> config.Defaults:
        """Algorithm, level and parallelism of this command: flags, environment, profile, built-in."""
        from . import config

        params = ctx.params
        return config.command_defaults(
            self.overrides.profile,
            algorithm=params.get("algorithm"),
            level=params.get("level"),
            parallel=params.get("parallel"),
        )

    def summary_line(self, summary: Summary) -> None:
        """The command's last line, on stderr; shown even with -q."""
        click.echo(summary.line(), err=True)


class SqueezerGroup(click.Group):
    """The root group: Ctrl-C (or an aborted prompt) anywhere exits 130, not Click's 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            raise Interrupted() from None


class LazyGroup(click.Group):
    """A group whose commands live in a module imported only when one of them is looked up.

    The root ``--help`` shows this group's name and ``help`` without the
    import; running or completing one of its commands (or its own ``--help``)
    imports the module and hands over to the group defined there, so that
    module stays the one place its commands are declared.
    """

    def __init__(self, name: str, target: str, *, help: str) -> None:  # noqa: A002 - Click's own keyword
        super().__init__(name=name, help=help)
        self._target = target  # "package.module:attribute"
        self._loaded: click.Group | None = None

    def _group(self) -> click.Group:
        if self._loaded is None:
            import importlib

            module, _, attribute = self._target.partition(":")
            found = getattr(importlib.import_module(module), attribute)
            if not isinstance(found, click.Group):  # pragma: no cover - a wrong target is a bug here
                raise TypeError(f"{self._target} is not a click.Group")
            self._loaded = found
        return self._loaded

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


class RuleOption(click.Option):
    """``--include``/``--exclude``: each use is recorded in ``ctx.meta`` in command-line order.

    Click gathers a repeated option's values per option, which loses how
    includes and excludes interleave; rsync-like rules need that order.
    """

    META_KEY = "squeezer.rules"

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        kind = self.name
        for opt in self.opts:
            parsed = parser._long_opt.get(opt) or parser._short_opt.get(opt)
            if parsed is None:  # pragma: no cover - a Click without these tables: order falls back
                continue
            original = parsed.process

            def process(value: Any, state: Any, original: Any = original) -> None:
                ctx.meta.setdefault(self.META_KEY, []).append((kind, value))
                original(value, state)

            parsed.process = process


def _rules(ctx: click.Context, includes: tuple[str, ...], excludes: tuple[str, ...]) -> Selection:
    from .selection import EXCLUDE, INCLUDE, Selection

    recorded = ctx.meta.get(RuleOption.META_KEY)
    if recorded is None or len(recorded) != len(includes) + len(excludes):
        recorded = [(INCLUDE, p) for p in includes] + [(EXCLUDE, p) for p in excludes]
    return Selection.of(recorded)


def _level(algorithm: str, level: int | None, origin: str = "--level") -> int | None:
    """``level`` checked by the API's own rule (the domain's), so a bad one fails before any upload."""
    if level is None:
        return None
    try:
        return Algorithm(algorithm).check_level(level)
    except InvalidLevel as exc:
        if origin != "--level":
            raise ConfigError(f"{origin}: {exc}") from None
        raise click.BadParameter(str(exc), param_hint="'-l' / '--level'") from None


json_option = click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")
parallel_option = click.option(
    "--parallel",
    type=click.IntRange(*defaults.PARALLEL_RANGE),
    help=f"Files transferred at the same time (env: {defaults.PARALLEL_ENV}; "
    f"default: the profile's parallel, else {defaults.DEFAULT_PARALLEL}).",
)
force_option = click.option(
    "--force", is_flag=True, help="Overwrite existing files that differ from the results (identical ones are skipped)."
)
no_clobber_option = click.option(
    "--no-clobber",
    is_flag=True,
    help="Keep existing files that differ from the results and download the rest (counted in the summary).",
)


def _on_existing(force: bool, no_clobber: bool) -> OnExisting:
    from .safe_download import OnExisting

    if force and no_clobber:
        raise click.UsageError("--force and --no-clobber contradict each other: pick one")
    return OnExisting.FORCE if force else OnExisting.KEEP if no_clobber else OnExisting.REFUSE


@click.group(cls=SqueezerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-url",
    envvar="SQUEEZER_API_URL",
    metavar="URL",
    help=f"Base URL of the Squeezer API (env: SQUEEZER_API_URL; default: the profile's api_url, else {defaults.DEFAULT_API_URL}).",
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
    help=f"Profile of the config file to use (env: SQUEEZER_PROFILE; default: {defaults.DEFAULT_PROFILE!r}).",
)
@click.option(
    "--timeout",
    envvar="SQUEEZER_TIMEOUT",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for an answer from the API (env: SQUEEZER_TIMEOUT).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final summary line (no bars).")
@click.option("-v", "--verbose", is_flag=True, help="Also print one line per file: uploaded, compressed, saved.")
@click.version_option(__version__, prog_name="squeezer")
@click.pass_context
def cli(
    ctx: click.Context,
    api_url: str | None,
    token: str | None,
    profile: str | None,
    timeout: float,
    quiet: bool,
    verbose: bool,
) -> None:
    """Compress files with the Squeezer service, or locally with the same codecs.

    The API URL and token come from --api-url/--token, SQUEEZER_API_URL/SQUEEZER_TOKEN,
    the profile saved by 'squeezer configure', and for the local stack ('make up') its
    own token file, in that order.

    Output: progress bars, failures and one summary line on stderr; -q leaves
    only errors and the summary, -v adds a line per file; --json (on each
    command) writes the results and the same totals to stdout.

    \b
    Examples:
      squeezer upload photos/ --wait --download out/
      squeezer -q upload logs/ --exclude '*.tmp' --wait
      squeezer --profile prod jobs
    """
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other: pick one")
    given = {
        name: (value, envvar if ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT else flag)
        for name, value, flag, envvar in (
            ("api_url", api_url, "--api-url", "SQUEEZER_API_URL"),
            ("token", token, "--token", "SQUEEZER_TOKEN"),
            ("profile", profile, "--profile", "SQUEEZER_PROFILE"),
        )
        if value is not None
    }
    verbosity = Verbosity.QUIET if quiet else Verbosity.VERBOSE if verbose else Verbosity.NORMAL
    ctx.obj = AppContext(given=given, timeout=timeout, verbosity=verbosity)


ALGORITHM_HELP = (
    f"Compression algorithm (env: {defaults.ALGORITHM_ENV}; default: the profile's algorithm, "
    f"else {defaults.DEFAULT_ALGORITHM})."
)
LEVEL_HELP = (
    f"Compression level (env: {defaults.LEVEL_ENV}; default: the profile's level, else the algorithm's own). "
    "A level set in the environment or the profile is not used with an algorithm given by a stronger source."
)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("-a", "--algorithm", type=click.Choice(ALGORITHMS), help=ALGORITHM_HELP)
@click.option("-l", "--level", type=int, help=LEVEL_HELP)
@parallel_option
@click.option(
    "--checksum/--no-checksum",
    default=True,
    show_default=True,
    help="Send each file's sha256 so storage and worker verify the upload (reads files twice). "
    "Files uploaded in parts are checked part by part with CRC64NVME either way.",
)
@click.option(
    "--include",
    "include",
    cls=RuleOption,
    multiple=True,
    metavar="GLOB",
    help="Upload files matching GLOB (repeatable; see the rules below).",
)
@click.option(
    "--exclude",
    "exclude",
    cls=RuleOption,
    multiple=True,
    metavar="GLOB",
    help="Leave out files matching GLOB (repeatable; see the rules below).",
)
@click.option(
    "--symlinks",
    type=click.Choice(["inside", "follow", "skip"]),
    default="inside",
    show_default=True,
    help="Symlinks found in folders: 'inside' takes links to files inside the folder uploaded; "
    "'follow' takes every link, folders too (loops cut); 'skip' takes none. Paths named on the command line "
    "are always followed.",
)
@click.option(
    "-n", "--dry-run", is_flag=True, help="List what would be uploaded, with sizes and totals; create no job."
)
@click.option("--wait", is_flag=True, help="Wait until every file is compressed (or failed).")
@click.option(
    "--download",
    "download_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Save the results under DIR, keeping relative paths (implies --wait). Identical results already "
    "there are skipped.",
)
@force_option
@no_clobber_option
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
    algorithm: str | None,
    level: int | None,
    parallel: int | None,
    checksum: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    symlinks: str,
    dry_run: bool,
    wait: bool,
    download_dir: Path | None,
    force: bool,
    no_clobber: bool,
    resume_id: str | None,
    start_new: bool,
    list_resumable: bool,
    as_json: bool,
) -> None:
    """Upload files and folders (recursively) as one compression job; print its id.

    Ends with one summary line on stderr: files, bytes in -> bytes out (share
    saved), time and throughput.

    An interrupted upload (Ctrl-C, a lost connection, a killed process) is
    resumed by running the same command again, or with --resume JOB_ID: only
    what the server does not have yet is sent. Its journal is kept in
    $XDG_STATE_HOME/squeezer/uploads (env SQUEEZER_STATE_DIR/uploads).

    \b
    Selection (--include/--exclude, like rsync):
      Rules are tried in the order given; the first that matches a file decides.
      A file no rule matches is uploaded, unless every rule is an --include.
      Patterns match the path relative to the folder named ('sub/a.txt');
      '*' and '?' stay within a folder, '**' crosses folders, [abc] one of.
      A pattern without '/' matches the base name or any folder name
      ('*.log', 'node_modules'); one with '/' matches from the folder named
      ('docs/api', 'src/**/*.py'); a trailing '/' matches folders only.

    \b
    Existing results (with --download): identical ones (size and CRC64NVME)
    are skipped; a different file is an error unless --force or --no-clobber.

    \b
    Examples:
      squeezer upload photos/ --wait
      squeezer upload src/ --include '*.py' --dry-run
      squeezer upload site/ --exclude 'node_modules' --exclude '*.map' --download out/
      squeezer -q upload logs/ -a brotli -l 9 --download out/ --no-clobber
      squeezer upload --resume j_0123456789ab
    """
    from . import jobs, upload_job
    from .journal import Identity, JournalStore
    from .multipart_upload import JobApi
    from .summary import Summary
    from .uploader import Uploader, discover

    app: AppContext = ctx.obj
    store = JournalStore.default()
    if list_resumable:
        _list_resumable(store, as_json)
        return
    on_existing = _on_existing(force, no_clobber)
    selection = _rules(ctx, include, exclude)
    progress = app.progress()
    summary = Summary()
    prepared = None
    if resume_id is not None:
        if paths or start_new:
            raise click.UsageError("--resume takes no PATHS and no --new: the journal names the files")
        for name in ("algorithm", "level"):
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--resume keeps the job's algorithm and level: drop --{name}")
        if selection or dry_run:
            raise click.UsageError("--resume sends the files of its journal: drop --include, --exclude, --dry-run")
        parallel = app.defaults(ctx).parallel.value
        prepared = upload_job.resume(app.api, store, upload_job.find_journal(store, resume_id, app.api_url), progress)
    else:
        if not paths:
            raise click.UsageError("give the files or folders to upload (or --resume JOB_ID)")
        defaults = app.defaults(ctx)
        algorithm, parallel = defaults.algorithm.value, defaults.parallel.value
        level = _level(algorithm, defaults.level.value, defaults.level.origin)
        if dry_run:
            _dry_run(discover(paths, on_skip=progress.note, select=selection.wants, symlinks=symlinks), as_json)
            return
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
            files = discover(paths, on_skip=progress.note, select=selection.wants, symlinks=symlinks)
            prepared = _start(app, store, identity, files, level, parallel, checksum, progress)
    assert parallel is not None
    job_id = prepared.job_id
    if not as_json:
        click.echo(job_id)
    uploader = Uploader(parallel=parallel, timeout=app.transfer_timeout, progress=progress, api=JobApi(app.api, job_id))
    uploads = upload_job.run(prepared, uploader, progress)
    uploaded = [u.file_id for u in uploads if u.ok]
    problems = [(u.file.name, u.error_code, u.error_message) for u in uploads if not u.ok]
    summary.files = len(uploads)
    summary.bytes_in = sum(u.file.size for u in uploads if u.ok)
    summary.not_uploaded = len(uploads) - len(uploaded)
    status, saved = None, []
    if (wait or download_dir) and uploaded:
        status = jobs.wait_for_job(app.api, job_id, progress=progress, file_ids=uploaded)
        summary.add_status(status, set(uploaded))
        summary.files = len(uploads)
        problems += jobs.failures(status, uploaded)
        if download_dir:
            saved = jobs.download_results(
                status,
                download_dir,
                progress=progress,
                parallel=parallel,
                timeout=app.transfer_timeout,
                on_existing=on_existing,
            )
            jobs.download_summary(status, saved, summary)
            problems += [(d.name, d.error_code, d.error_message) for d in saved if d.error_code]
    if as_json:
        output.emit_json({**_upload_summary(prepared.job, uploads, status, saved), "summary": summary.as_json()})
    app.summary_line(summary)
    jobs.raise_if_failed(problems, len(uploads))


def _start(
    app: AppContext,
    store: JournalStore,
    identity: Identity,
    files: list[LocalFile],
    level: int | None,
    parallel: int,
    checksum: bool,
    progress: Progress,
) -> upload_job.Prepared:
    from . import upload_job
    from .uploader import add_checksums

    if not files:
        raise click.UsageError("no files to upload")
    limits = upload_job.check_limits(app.api, files)  # before hashing: a refusal costs nothing
    if checksum:
        files = add_checksums(files, parallel=parallel, progress=progress)
    prepared = upload_job.start(
        app.api, store, identity, files, level=level, clock_now=time.time(), batch_size=limits.max_files_per_request
    )
    created = prepared.job
    progress.note(
        f"job {prepared.job_id}: {len(files)} file(s), {output.human_size(sum(f.size for f in files))}, "
        f"{created['algorithm']} level {created['level']}"
    )
    return prepared


def _dry_run(files: list[LocalFile], as_json: bool) -> None:
    """What ``upload`` would send: one line per file and the totals; no job, no request."""
    total = sum(f.size for f in files)
    if as_json:
        output.emit_json(
            {
                "dry_run": True,
                "files": [{"name": f.name, "path": str(f.path), "size": f.size} for f in files],
                "totals": {"files": len(files), "bytes": total},
            }
        )
        return
    if files:
        click.echo(
            output.table(
                ("NAME", "SIZE"), [(output.printable(f.name), output.human_size(f.size)) for f in files], right=(1,)
            )
        )
    click.echo(
        f"dry run: would upload {len(files)} file{'' if len(files) == 1 else 's'}, {output.human_size(total)} "
        "(no job created)",
        err=True,
    )


def _list_resumable(store: JournalStore, as_json: bool) -> None:
    from . import upload_job

    journals = store.all()
    if as_json:
        output.emit_json({"folder": str(store.folder), "jobs": [upload_job.resumable_json(j) for j in journals]})
    else:
        click.echo(upload_job.resumable_text(journals))


@cli.command()
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Follow the job until every file is final, then print the table.")
@click.option("--failed", "only_failed", is_flag=True, help="List only the files that failed, with their errors.")
@json_option
@click.pass_obj
def status(app: AppContext, job_id: str, watch: bool, only_failed: bool, as_json: bool) -> None:
    """Show a job's files: state, sizes, ratio, time and errors.

    Says which files were never uploaded and how to send them
    ('squeezer upload --resume JOB_ID' when this machine holds the upload's journal).

    \b
    Examples:
      squeezer status j_0123456789ab
      squeezer status j_0123456789ab --watch
      squeezer status j_0123456789ab --failed
      squeezer status j_0123456789ab --json | jq '.files[] | select(.state == "failed")'
    """
    from . import jobs
    from .journal import JournalStore

    result = jobs.wait_for_job(app.api, job_id, progress=app.progress()) if watch else app.api.get_job(job_id)
    shown = result
    if only_failed:
        shown = {**result, "files": [f for f in result.get("files", []) if f.get("state") == "failed"]}
    if as_json:
        output.emit_json(shown)
    elif only_failed:
        click.echo(output.failed_text(shown))
    else:
        click.echo(output.status_text(result))
        resumable = JournalStore.default().load(job_id) is not None
        hint = jobs.not_uploaded_hint(result, resumable=resumable, now=time.time())
        if hint:
            click.echo(hint, err=True)
    # Files of a cancelled job were cancelled on purpose: not a failure of this command.
    states = ("failed",) if result.get("cancelled_at") else ("failed", "cancelled")
    jobs.raise_if_failed(jobs.failures(result, states=states), len(result.get("files", [])))


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
@force_option
@no_clobber_option
@parallel_option
@json_option
@click.pass_context
def download(
    ctx: click.Context,
    job_id: str,
    out_dir: Path,
    wait: bool,
    force: bool,
    no_clobber: bool,
    parallel: int | None,
    as_json: bool,
) -> None:
    """Save a job's compressed files under a folder, keeping relative paths.

    A result already there and identical (size and CRC64NVME) is skipped, so
    running the same download again fetches nothing. A different file there
    is an error listing them, unless --force (overwrite) or --no-clobber
    (keep it). Saved files get the original file's mode and mtime. Prints
    the paths saved on stdout and one summary line on stderr.

    \b
    Examples:
      squeezer download j_0123456789ab -o out/
      squeezer download j_0123456789ab -o out/ --wait --no-clobber
      squeezer -q download j_0123456789ab -o out/ --force
    """
    from . import jobs
    from .errors import SqueezerCliError
    from .summary import Summary

    app: AppContext = ctx.obj
    on_existing = _on_existing(force, no_clobber)
    workers = app.defaults(ctx).parallel.value
    progress = app.progress()
    summary = Summary()
    result = jobs.wait_for_job(app.api, job_id, progress=progress) if wait else app.api.get_job(job_id)
    saved = jobs.download_results(
        result, out_dir, progress=progress, parallel=workers, timeout=app.transfer_timeout, on_existing=on_existing
    )
    summary.add_status(result)
    jobs.download_summary(result, saved, summary)
    if as_json:
        output.emit_json({"job_id": job_id, "files": [_saved_json(d) for d in saved], "summary": summary.as_json()})
    else:
        for d in saved:
            if d.outcome == jobs.SAVED:
                click.echo(str(d.path))
    if summary.cancelled:
        progress.note(f"{summary.cancelled} file(s) of job {job_id} were cancelled: they have no result")
    app.summary_line(summary)
    problems = jobs.failures(result, states=("failed",))
    problems += [(d.name, d.error_code, d.error_message) for d in saved if d.error_code]
    jobs.raise_if_failed(problems, len(result.get("files", [])))
    unfinished = jobs.open_files(result)
    if unfinished:
        raise SqueezerCliError(
            f"{len(unfinished)} file(s) are not finished yet (first: {output.printable(unfinished[0])}): "
            f"run 'squeezer download {job_id} -o {out_dir} --wait'"
        )


@cli.command()
@click.argument("job_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed when stdin is not a terminal).")
@json_option
@click.pass_obj
def cancel(app: AppContext, job_id: str, yes: bool, as_json: bool) -> None:
    """Cancel a job's unfinished files; completed results stay downloadable.

    Asks for confirmation unless --yes. Cancelling a job already cancelled,
    or one with nothing left to cancel, succeeds without doing anything.

    \b
    Examples:
      squeezer cancel j_0123456789ab
      squeezer cancel j_0123456789ab --yes --json
    """
    from . import jobs
    from .errors import ApiError, ConfirmationNeeded

    before = app.api.get_job(job_id)
    if before.get("cancelled_at"):
        _cancelled(before, as_json, already=True)
        return
    unfinished = jobs.open_files(before)
    if not unfinished:
        if as_json:
            output.emit_json(before)
        click.echo(f"job {job_id} has finished: nothing to cancel", err=True)
        return
    if not yes:
        if not _stdin_is_terminal():
            raise ConfirmationNeeded(
                f"not cancelling job {job_id} without confirmation: stdin is not a terminal; pass --yes"
            )
        total = len(before.get("files", []))
        if not click.confirm(
            f"Cancel job {job_id}? {len(unfinished)} of {total} file(s) are unfinished", default=False, err=True
        ):
            click.echo("not cancelled", err=True)
            return
    try:
        result = app.api.cancel_job(job_id)
    except ApiError as exc:
        if exc.status == 409 and exc.code == "job_finished":
            click.echo(f"job {job_id} has finished: nothing to cancel", err=True)
            return
        raise
    _cancelled(result, as_json, already=False)


def _cancelled(status: dict[str, Any], as_json: bool, *, already: bool) -> None:
    files = status.get("files", [])
    completed = sum(1 for f in files if f.get("state") == "completed")
    cancelled = sum(1 for f in files if f.get("state") == "cancelled")
    if as_json:
        output.emit_json({**status, "already_cancelled": already})
        return
    if already:
        click.echo(f"job {status['job_id']} is already cancelled ({completed} completed kept)", err=True)
    else:
        click.echo(f"cancelled job {status['job_id']}: {completed} completed kept, {cancelled} cancelled", err=True)


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


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

    A profile may also hold defaults for upload and download, edited in the
    file: algorithm = "brotli", level = 9, parallel = 16. Flags beat the
    environment (SQUEEZER_ALGORITHM, SQUEEZER_LEVEL, SQUEEZER_PARALLEL),
    which beats the profile.

    \b
    Examples:
      squeezer configure
      squeezer configure --profile prod --api-url https://abc.execute-api.eu-west-1.amazonaws.com/api
      squeezer configure --list
    """
    from . import config

    path = config.config_path()
    name = profile_name or (app.overrides.profile.value if app.overrides.profile else defaults.DEFAULT_PROFILE)
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
    from . import config

    default = current.api_url if current is not None and current.api_url else defaults.DEFAULT_API_URL
    while True:
        text = click.prompt("API URL", default=default, err=True)
        try:
            return config.check_api_url(text.strip())
        except ValueError as exc:
            click.echo(f"Error: {exc}", err=True)


def _ask_token(current: config.Profile | None) -> Token:
    kept = None
    if current is not None and current.token_text is not None:
        from chalicelib.tokens import parse_token

        kept = parse_token(current.token_text)
    prompt = f"Token (input hidden; Enter keeps {kept.masked})" if kept else "Token (input hidden)"
    from . import config

    while True:
        text = click.prompt(prompt, hide_input=True, default="" if kept else None, show_default=False, err=True)
        if not text and kept is not None:
            return kept
        try:
            return config.check_token(text)
        except ValueError as exc:
            click.echo(f"Error: {exc}", err=True)


def _show_profiles(found: config.ConfigFile, active: str, as_json: bool) -> None:
    from . import config

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
    """Queue again a job's failed files that a retry can fix (their uploads must still exist).

    \b
    Examples:
      squeezer retry j_0123456789ab --wait
      squeezer retry j_0123456789ab --json
    """
    from . import jobs

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
    """List recent jobs, newest first: id, state, files, ratio, size, age.

    \b
    Examples:
      squeezer jobs
      squeezer jobs --all --json | jq -r '.jobs[] | select(.state == "failed") | .job_id'
    """
    from . import jobs

    found = jobs.with_states(app.api, list(app.api.iter_jobs(limit=limit, follow=follow)))
    if as_json:
        output.emit_json({"jobs": found})
    elif found:
        click.echo(output.jobs_text(found, now=time.time()))
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
# boto3 (~100 ms of imports) only for admin commands; the help is client.admin's docstring (a test holds it).
cli.add_command(LazyGroup("admin", "client.admin:admin", help=ADMIN_HELP))


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
