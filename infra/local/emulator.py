"""The AWS emulator of the local stack: moto's server, one process.

Run as ``python -m infra.local.emulator PORT [--save-to DIR]``. Differences
from ``python -m moto.server``: it stops cleanly on SIGTERM, its access log
drops query strings, so presigned URLs (signatures) never reach a log file,
and with ``--save-to`` it saves its data there every few seconds and when it
stops (see :mod:`infra.local.persistence`). Saving starts only once the
runner sends SIGUSR1 (after it restored the previous data): a save before
that would replace the saved data with a partial copy.

Before the server starts, :mod:`infra.local.moto_patches` patches moto's S3
in this process so that completing a multipart upload copies the parts'
temporary files into the object's by 1 MiB chunks instead of joining them in
memory (moto as released holds four to five times the object's size at
completion): the emulator's memory stays flat whatever the object size, and
large objects live in temporary files (``TMPDIR``; the local stack points it
at ``<state dir>/emulator-tmp``). The patches are written for the pinned moto
only: on another version the emulator exits at once, saying so.
``--no-moto-patches`` runs moto as released (to compare, or to rule the
patches out).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time

from . import moto_patches
from .persistence import SNAPSHOT_SECONDS

_QUERY = re.compile(r"\?\S*")
log = logging.getLogger("infra.local.emulator")


class _NoQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_QUERY.sub("?…", a) if isinstance(a, str) else a for a in record.args)
        record.msg = _QUERY.sub("?…", str(record.msg))
        return True


def _saver(folder: str, port: int):
    import boto3
    from botocore.config import Config
    from moto.core import DEFAULT_ACCOUNT_ID

    from .config import REGION
    from .persistence import Saver

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
    session = boto3.session.Session(region_name=region)
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    endpoint = f"http://127.0.0.1:{port}"
    return Saver(
        folder,
        s3=session.client("s3", endpoint_url=endpoint, config=config),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=config),
        account_id=DEFAULT_ACCOUNT_ID,
        region=region,
    )


def _save(saver, why: str) -> None:
    began = time.monotonic()
    try:
        if saver.save():
            log.info("state saved to %s (%s, %.2fs)", saver.folder, why, time.monotonic() - began)
    except Exception:  # noqa: BLE001 - the previous snapshot stays whole; try again next time
        log.exception("saving the state to %s failed (%s)", saver.folder, why)


def main(argv: list[str] | None = None) -> int:
    from moto.server import ThreadedMotoServer

    parser = argparse.ArgumentParser(prog="python -m infra.local.emulator")
    parser.add_argument("port", type=int)
    parser.add_argument("--save-to", help="folder to save the data to (every few seconds and at stop)")
    parser.add_argument("--save-every", type=float, default=SNAPSHOT_SECONDS, help="seconds between saves")
    parser.add_argument(
        "--no-moto-patches",
        action="store_true",
        help="run moto as released: multipart completion in memory (see infra.local.moto_patches)",
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.no_moto_patches:
        try:
            moto_patches.apply()
        except moto_patches.UnsupportedMoto as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
    logging.getLogger("werkzeug").addFilter(_NoQueryStrings())
    stopping = threading.Event()
    armed = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: armed.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    patched = "" if args.no_moto_patches else f" (streaming multipart completion, moto {moto_patches.PINNED})"
    print(f"moto server listening on 127.0.0.1:{args.port}{patched}", flush=True)
    saver = _saver(args.save_to, args.port) if args.save_to else None
    wait = args.save_every if saver else 0.5
    while not stopping.wait(wait):
        if saver and armed.is_set():
            _save(saver, "periodic")
    if saver and armed.is_set():
        _save(saver, "stopping")  # still serving: the save talks to this server
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
