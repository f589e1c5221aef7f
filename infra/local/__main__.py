"""``python -m infra.local``: run the local stack.

up       start everything, print the API URL, stay in the foreground
down     stop the processes a killed runner left behind
env      print shell exports that point boto3/the client at the emulator
demo     compress a directory end to end on the stack and verify it
bridge   run only the event-source bridge (the runner starts it)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from .config import (
    BATCH_SIZE_VAR,
    CONCURRENCY_VAR,
    EXECUTOR_VAR,
    RANGE_CONCURRENCY_VAR,
    STATE_DIR,
    WINDOW_VAR,
    BridgeOptions,
    LocalConfig,
)
from .errors import LocalStackError


class UserError(click.ClickException):
    exit_code = 1


@click.group()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=STATE_DIR,
    show_default=True,
    envvar="SQUEEZER_LOCAL_STATE_DIR",
    help="Logs, the pid file and the saved data (env SQUEEZER_LOCAL_STATE_DIR).",
)
@click.pass_context
def cli(ctx: click.Context, state_dir: Path) -> None:
    """Squeezer on one machine: emulator, API and worker on 127.0.0.1."""
    ctx.obj = {"state_dir": state_dir}


def _bridge_options(batch_size, window, concurrency, executor, range_concurrency=None) -> BridgeOptions:
    return BridgeOptions.from_env(
        batch_size=batch_size,
        window_seconds=window,
        concurrency=concurrency,
        executor=executor,
        range_concurrency=range_concurrency,
    )


_bridge_flags = [
    click.option(
        "--batch-size",
        type=click.IntRange(1, 10000),
        envvar=BATCH_SIZE_VAR,
        help=f"Messages per invocation of the jobs queue (env {BATCH_SIZE_VAR}; default: the app's, 10).",
    ),
    click.option(
        "--window",
        type=click.FloatRange(0, 300),
        envvar=WINDOW_VAR,
        help=f"Batching window in seconds (env {WINDOW_VAR}; default 1).",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        envvar=CONCURRENCY_VAR,
        help=f"Parallel invocations per function (env {CONCURRENCY_VAR}; default 5).",
    ),
    click.option(
        "--range-concurrency",
        type=click.IntRange(1, 64),
        envvar=RANGE_CONCURRENCY_VAR,
        help=f"Parallel invocations of the ranges queue, one range each (env {RANGE_CONCURRENCY_VAR}; default 2).",
    ),
    click.option(
        "--executor",
        type=click.Choice(["process", "thread"]),
        envvar=EXECUTOR_VAR,
        help=f"Run invocations in processes or threads (env {EXECUTOR_VAR}; default process).",
    ),
]


def bridge_flags(func):
    for flag in reversed(_bridge_flags):
        func = flag(func)
    return func


@cli.command()
@click.option(
    "--api-port",
    type=int,
    envvar="SQUEEZER_API_PORT",
    default=8000,
    show_default=True,
    help="Port of the API (env SQUEEZER_API_PORT).",
)
@click.option(
    "--moto-port",
    type=int,
    envvar="SQUEEZER_MOTO_PORT",
    default=5000,
    show_default=True,
    help="Port of the AWS emulator (env SQUEEZER_MOTO_PORT).",
)
@click.option(
    "--autoreload/--no-autoreload",
    default=False,
    show_default=True,
    help="Restart the API when code changes (the bridge is not restarted).",
)
@click.option("--fresh", is_flag=True, help="Forget the jobs and files saved by earlier runs before starting.")
@bridge_flags
@click.pass_obj
def up(
    obj, api_port, moto_port, autoreload, fresh, batch_size, window, concurrency, range_concurrency, executor
) -> None:
    """Start the stack and stay in the foreground; Ctrl-C stops everything.

    Jobs, files and queued work are saved in the state directory and come
    back at the next start (--fresh starts empty).
    """
    from .stack import LocalStack

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    stack = LocalStack(
        api_port=api_port,
        moto_port=moto_port,
        state_dir=obj["state_dir"],
        bridge=_bridge_options(batch_size, window, concurrency, executor, range_concurrency),
        autoreload=autoreload,
        keep_state=True,
        fresh=fresh,
    )
    stopping = threading.Event()

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # during start: unwind and clean up
    try:
        stack.start()
    except KeyboardInterrupt:
        raise UserError("interrupted while starting; everything started was stopped") from None
    except LocalStackError as exc:
        raise UserError(str(exc)) from exc
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    click.echo(stack.api_url)  # stdout: the one thing a script wants
    click.echo(f"emulator {stack.endpoint_url}, logs in {stack.state_dir}; Ctrl-C stops everything", err=True)
    click.echo(
        f"jobs and files are kept in {stack.saved_state} across restarts; "
        "start empty with: python -m infra.local up --fresh (or make clean)",
        err=True,
    )
    try:
        died = stack.wait(stopping.is_set)
    finally:
        click.echo("stopping...", err=True)
        stack.stop()
    if died is not None:
        raise UserError(
            f"{died.name} exited (code {died.popen.returncode}); everything was stopped. Its log:\n{died.tail()}"
        )


@cli.command()
@click.pass_obj
def down(obj) -> None:
    """Stop processes recorded in the state directory (after a runner was killed)."""
    from .stack import stop_recorded

    stopped = stop_recorded(obj["state_dir"])
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing to stop", err=True)


@cli.command()
@click.option(
    "--moto-port",
    type=int,
    envvar="SQUEEZER_MOTO_PORT",
    default=5000,
    show_default=True,
    help="Port of the AWS emulator (env SQUEEZER_MOTO_PORT).",
)
@click.pass_obj
def env(obj, moto_port) -> None:
    """Print `export` lines for the emulator's endpoint, fake credentials, resource names and the dev token.

    SQUEEZER_API_URL and SQUEEZER_TOKEN (the ``dev`` tenant's) come from the
    stack's state directory: start it once (make up) before.
    """
    import shlex

    from client.config import LOCAL_STACK_TOKEN_FILE, read_local_stack_token
    from infra.resources import stage_config

    from .config import FAKE_AWS, STAGE

    names = ("SQUEEZER_BUCKET", "SQUEEZER_TABLE", "SQUEEZER_QUEUE", "SQUEEZER_RANGES_QUEUE", "SQUEEZER_DLQ")
    # the ranges queue is named after the jobs queue unless the stage names it
    stage = {name: value for name, value in stage_config(STAGE).environment.items() if name in names}
    values = {**FAKE_AWS, "AWS_ENDPOINT_URL": LocalConfig(moto_port=moto_port).endpoint_url, **stage}
    dev = read_local_stack_token(
        Path(obj["state_dir"]) / LOCAL_STACK_TOKEN_FILE, warn=lambda m: click.echo(m, err=True)
    )
    if dev is not None:
        values.update({"SQUEEZER_API_URL": dev.api_url, "SQUEEZER_TOKEN": str(dev.token)})
    else:
        click.echo(
            f"# no dev token in {obj['state_dir']} yet: start the stack once (make up), then run this again",
            err=True,
        )
    for name, value in values.items():
        click.echo(f"export {name}={shlex.quote(value)}")


@cli.command()
@click.option(
    "--dir",
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory to compress (default: a generated sample in .state/demo/sample).",
)
@click.option(
    "-a",
    "--algorithm",
    type=click.Choice(["zstd", "brotli", "gzip"]),
    default="zstd",
    show_default=True,
    help="Compression algorithm.",
)
@click.option("-l", "--level", type=int, help="Compression level (default: the algorithm's own).")
@click.option("--keep", is_flag=True, help="Keep the downloaded results (default: removed once checked).")
def demo(source, algorithm, level, keep) -> None:
    """Compress a directory with the client on the local stack, verify every result, clean up.

    Uses the stack 'make up' runs on SQUEEZER_API_PORT if there is one, else
    starts its own (on free ports if those are taken) and stops it after.
    """
    from .demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        code = run_demo(source, algorithm, level, keep=keep)
    except LocalStackError as exc:
        raise UserError(str(exc)) from exc
    sys.exit(code)


@cli.command()
@bridge_flags
def bridge(batch_size, window, concurrency, range_concurrency, executor) -> None:
    """Run the event-source bridge in the foreground (the stack's environment is expected)."""
    from .bridge import main

    sys.exit(main(_bridge_options(batch_size, window, concurrency, executor, range_concurrency)))


def main() -> None:
    try:
        cli(prog_name="python -m infra.local")
    except LocalStackError as exc:  # only main() catches everything of ours
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
