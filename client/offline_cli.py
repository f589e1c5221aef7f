"""``squeezer compress`` and ``squeezer decompress``: the service's codecs on local files, used like ``zstd``.

Several files at once, ``-r`` for folders, ``-`` for stdin/stdout, ``-c`` to
write to stdout, ``-T`` threads (zstd), ``-k``/``--rm``, ``-f`` to overwrite;
outputs keep their input's mode and mtime. Per-file lines, failures and the
summary go to stderr, compressed data or ``--json`` to stdout.

Exit codes: 0 every file done; 1 at least one file failed (one line each,
then the summary); 2 usage error.

The work is in :mod:`client.offline`, imported when a command runs: it loads
the codecs (zstandard, brotli, zlib-ng), which ``squeezer --help`` and the
commands that talk to the API never need.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.algorithms import Algorithm, InvalidLevel

from .errors import InputError, OfflineFilesFailed
from .output import emit_json, human_size, printable

if TYPE_CHECKING:
    from .offline import Endpoint, Outcome, Skipped

ALGORITHMS = [a.value for a in Algorithm]
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _level(algorithm: Algorithm, level: int | None) -> int | None:
    if level is None:
        return None
    try:
        return algorithm.check_level(level)
    except InvalidLevel as exc:
        raise click.BadParameter(str(exc), param_hint="'-l' / '--level'") from None


def _shared_options(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options both commands take, in the order --help shows them."""
    options = [
        click.argument("inputs", nargs=-1, metavar="[FILE|DIR|-]...", type=click.Path(path_type=str)),
        click.option(
            "-o",
            "--output",
            metavar="FILE",
            help="Output file for a single input ('-': stdout). Default: "
            + (
                "the input's name plus .zst, .br or .gz."
                if verb == "compress"
                else "the input's name less its extension."
            ),
        ),
        click.option(
            "-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout (several inputs: one after the other)."
        ),
        click.option(
            "-r", "--recursive", is_flag=True, help="Work on every file under the folders given (symlinks skipped)."
        ),
        click.option(
            "-k",
            "--keep/--rm",
            default=True,
            help="Keep the input files (default), or remove each one after its output is complete and verified.",
        ),
        click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs; write to a terminal."),
        click.option("-v", "--verbose", is_flag=True, help="One line per file (default: only for a single file)."),
        click.option("-q", "--quiet", is_flag=True, help="Print only failures and, for several files, the summary."),
        click.option(
            "--json", "as_json", is_flag=True, help="Write a JSON report (files, failures, totals) to stdout."
        ),
    ]

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


@click.command(context_settings=CONTEXT)
@click.option(
    "-a", "--algorithm", type=click.Choice(ALGORITHMS), default="zstd", show_default=True, help="Compression algorithm."
)
@click.option("-l", "--level", type=int, help="Compression level (zstd 1-22, brotli 0-11, gzip 1-9; default: 3, 5, 6).")
@click.option(
    "-T",
    "--threads",
    type=click.IntRange(0, 256),
    default=1,
    show_default=True,
    metavar="N",
    help="zstd worker threads per file (0: one per core). brotli and gzip have no multithreaded "
    "encoder: they use one core whatever N is.",
)
@_shared_options("compress")
def compress(
    inputs: tuple[str, ...],
    output: str | None,
    to_stdout: bool,
    recursive: bool,
    keep: bool,
    force: bool,
    verbose: bool,
    quiet: bool,
    as_json: bool,
    algorithm: str,
    level: int | None,
    threads: int,
) -> None:
    """Compress files locally with the service's codecs (no network), like zstd.

    Each FILE becomes FILE.zst (.br, .gz) with the same mode and modification
    time; FILE is kept unless --rm. With no FILE, or '-', reads stdin and
    writes stdout. An existing output is kept unless -f.

    \b
    Examples:
      squeezer compress notes.txt                # notes.txt.zst
      squeezer compress -a gzip -l 9 *.log       # several files
      squeezer compress -r --rm logs/            # every file under logs/, each removed once verified
      squeezer compress -T0 -o big.zst big.tar   # zstd on every core
      squeezer compress - < a > a.zst            # a pipe (also: squeezer compress -c a > a.zst)
    """
    algo = Algorithm(algorithm)
    _level(algo, level)
    workers = (os.cpu_count() or 1) if threads == 0 else threads
    run = _Run("compress", inputs, output, to_stdout, recursive, keep, force, verbose, quiet, as_json)
    if workers > 1 and algo is not Algorithm.ZSTD and not quiet:
        click.echo(f"note: -T/--threads applies to zstd only; {algo.value} compresses on one core", err=True)

    def skip(path: Path, named: bool) -> str | None:
        if run.default_names and path.name.lower().endswith(algo.extension):
            return f"already has the {algo.extension} suffix"
        return None

    def work(source: Endpoint, target: Endpoint | None, on_bytes: Callable[[int], None]) -> Outcome:
        from .offline import compress_file

        return compress_file(
            source, target, algo, level, force=force, threads=workers, remove_source=not keep, on_bytes=on_bytes
        )

    run.plan(skip, concatenable=algo is not Algorithm.BROTLI, binary_out=True)
    run.execute(work)


@click.command(context_settings=CONTEXT)
@click.option(
    "-a",
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    help="The input's format (default: from its extension, else its first bytes; brotli has none, so a "
    "brotli stream from stdin needs -a brotli).",
)
@_shared_options("decompress")
def decompress(
    inputs: tuple[str, ...],
    output: str | None,
    to_stdout: bool,
    recursive: bool,
    keep: bool,
    force: bool,
    verbose: bool,
    quiet: bool,
    as_json: bool,
    algorithm: str | None,
) -> None:
    """Decompress files locally (no network), like zstd -d.

    FILE.zst (.br, .gz) becomes FILE with the same mode and modification time;
    the format comes from the extension, else the first bytes. With -r, only
    files named .zst, .br or .gz are taken. With no FILE, or '-', reads stdin
    and writes stdout.

    \b
    Examples:
      squeezer decompress notes.txt.zst          # notes.txt
      squeezer decompress -r --rm results/       # every .zst/.br/.gz under results/
      squeezer decompress -c data.gz | head      # to stdout
      squeezer decompress -a brotli - < a.br > a # a brotli pipe names its format
    """
    chosen = Algorithm(algorithm) if algorithm else None
    run = _Run("decompress", inputs, output, to_stdout, recursive, keep, force, verbose, quiet, as_json)

    def skip(path: Path, named: bool) -> str | None:
        from .offline import known_extension

        if not named and known_extension(path) is None:
            return "not named .zst, .br or .gz"
        return None

    def work(source: Endpoint, target: Endpoint | None, on_bytes: Callable[[int], None]) -> Outcome:
        from .offline import decompress_file

        return decompress_file(source, target, algorithm=chosen, force=force, remove_source=not keep, on_bytes=on_bytes)

    run.plan(skip, concatenable=True, binary_out=False)
    run.execute(work)


@dataclass
class _Run:
    """One compress or decompress command: checks the options, lists the files, does them, reports."""

    verb: str
    inputs: tuple[str, ...]
    output: str | None
    to_stdout: bool
    recursive: bool
    keep: bool
    force: bool
    verbose: bool
    quiet: bool
    as_json: bool
    items: list[Endpoint | Skipped] = field(default_factory=list)

    @property
    def default_names(self) -> bool:
        return self.output is None and not self.to_stdout

    def plan(self, skip: Callable[[Path, bool], str | None], *, concatenable: bool, binary_out: bool) -> None:
        from .offline import STDIO, Skipped, Stdio, expand

        inputs = self.inputs
        if not inputs:
            if sys.stdin.isatty():
                raise click.UsageError("no input: name files or folders, or '-' for stdin")
            inputs = (STDIO,)
        if inputs.count(STDIO) > 1:
            raise click.UsageError("'-' (stdin) can be given once")
        if self.output is not None and self.to_stdout:
            raise click.UsageError("-o/--output and -c/--stdout cannot be used together")
        items: list[Endpoint | Skipped] = []
        for name in inputs:
            if name == STDIO:
                items.append(Stdio("stdin", sys.stdin.buffer))
            else:
                items.extend(expand([Path(name)], recursive=self.recursive, skip=skip))
        self.items = items
        work = [i for i in items if not isinstance(i, Skipped)]
        if self.output is not None and len(work) > 1:
            raise click.UsageError(f"-o/--output takes one input, not {len(work)}: use -c or the default names")
        if self.writes_stdout(work):
            if self.as_json:
                raise click.UsageError("--json writes to stdout, which the data goes to: drop one of them")
            if not self.keep:
                raise click.UsageError("--rm removes inputs only when they have output files: not with stdout")
            if not concatenable and len(work) > 1:
                raise click.UsageError("brotli streams cannot be joined: write several inputs to files, not stdout")
            if binary_out and not self.force and sys.stdout.isatty():
                raise click.UsageError("refusing to write compressed data to a terminal: redirect stdout, or -f")

    def writes_stdout(self, work: Sequence[object]) -> bool:
        from .offline import Stdio

        return self.to_stdout or self.output == "-" or (self.output is None and any(isinstance(i, Stdio) for i in work))

    def target(self, source: Endpoint) -> Endpoint | None:
        from .offline import STDIO, Stdio

        if self.to_stdout or self.output == STDIO or (self.output is None and isinstance(source, Stdio)):
            sys.stdout.flush()  # text written before the data stays before it
            return Stdio("stdout", sys.stdout.buffer)
        return Path(self.output) if self.output is not None else None

    def execute(self, work: Callable[[Endpoint, Endpoint | None, Callable[[int], None]], Outcome]) -> None:
        from .offline import Skipped, Stdio
        from .progress import Progress

        todo = [i for i in self.items if not isinstance(i, Skipped)]
        skipped = [i for i in self.items if isinstance(i, Skipped)]
        reading_stdin = any(isinstance(i, Stdio) for i in todo)
        progress = Progress(bars=False) if self.quiet or reading_stdin else Progress()
        for s in skipped:
            if self.verbose or (s.named and not self.quiet and not self.as_json):
                progress.note(f"skipped {printable(s.path)}: {s.reason}")
        done: list[Outcome] = []
        failed: list[tuple[Endpoint, str]] = []
        single = len(todo) == 1 and not skipped
        with progress.bytes(self.verb, sum(_size(i) for i in todo)) as task:
            for item in todo:
                try:
                    outcome = work(item, self.target(item), task.advance)
                except InputError as exc:
                    if single and not self.as_json:
                        raise
                    failed.append((item, exc.message))
                    if not self.as_json:
                        progress.note(f"Error: {exc.message}")
                    continue
                done.append(outcome)
                if self.verbose or (single and not self.quiet and not self.as_json):
                    progress.note(self._line(outcome))
        summary = self._summary(done, failed, skipped)
        if self.as_json:
            emit_json(self._report(done, failed, skipped))
        if failed:
            raise OfflineFilesFailed(summary)
        if not self.as_json and (len(todo) + len(skipped) > 1 or not todo):
            click.echo(summary, err=True)

    # -- what is printed ------------------------------------------------------------------
    def _sizes(self, outcome: Outcome) -> tuple[int, int]:
        """(plain, packed) bytes of one file, whichever way it went."""
        s = outcome.stats
        return (s.bytes_in, s.bytes_out) if self.verb == "compress" else (s.bytes_out, s.bytes_in)

    def _line(self, outcome: Outcome) -> str:
        plain, packed = self._sizes(outcome)
        removed = f"; removed {printable(outcome.source)}" if outcome.removed else ""
        return (
            f"{printable(outcome.source)} → {printable(outcome.output)}: {human_size(outcome.stats.bytes_in)} → "
            f"{human_size(outcome.stats.bytes_out)}{_saved(plain, packed)}{removed}"
        )

    def _summary(self, done: list[Outcome], failed: list[Any], skipped: list[Skipped]) -> str:
        bytes_in = sum(o.stats.bytes_in for o in done)
        bytes_out = sum(o.stats.bytes_out for o in done)
        plain, packed = (bytes_in, bytes_out) if self.verb == "compress" else (bytes_out, bytes_in)
        text = f"{len(done)} file{'' if len(done) == 1 else 's'}, {human_size(bytes_in)} → {human_size(bytes_out)}"
        text += _saved(plain, packed)
        extra = [f"{n} {word}" for n, word in ((len(failed), "failed"), (len(skipped), "skipped")) if n]
        return text + (f"; {', '.join(extra)}" if extra else "")

    def _report(self, done: list[Outcome], failed: list[tuple[Endpoint, str]], skipped: list[Skipped]) -> Any:
        files = []
        for o in done:
            plain, packed = self._sizes(o)
            files.append(
                {
                    "input": str(o.source),
                    "output": str(o.output),
                    "algorithm": o.algorithm.value,
                    "bytes_in": o.stats.bytes_in,
                    "bytes_out": o.stats.bytes_out,
                    "ratio": round(packed / plain, 4) if plain else None,
                    "removed": o.removed,
                }
            )
        bytes_in = sum(o.stats.bytes_in for o in done)
        bytes_out = sum(o.stats.bytes_out for o in done)
        return {
            "files": files,
            "failed": [{"input": str(source), "error": message} for source, message in failed],
            "skipped": [{"input": str(s.path), "reason": s.reason} for s in skipped],
            "totals": {
                "files": len(files),
                "failed": len(failed),
                "skipped": len(skipped),
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
        }


def _saved(plain: int, packed: int) -> str:
    return f" ({(1 - packed / plain) * 100:.1f}% saved)" if plain else ""


def _size(item: object) -> int:
    if not isinstance(item, Path):
        return 0
    try:
        return item.stat().st_size
    except OSError:
        return 0
