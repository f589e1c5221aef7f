"""The AWS emulator of the local stack: moto's server, one process.

Run as ``python -m infra.local.emulator PORT``. Differences from
``python -m moto.server``: it stops cleanly on SIGTERM, and its access log
drops query strings, so presigned URLs (signatures) never reach a log file.
"""
from __future__ import annotations

import logging
import re
import signal
import sys
import threading

_QUERY = re.compile(r"\?\S*")


class _NoQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_QUERY.sub("?…", a) if isinstance(a, str) else a for a in record.args)
        record.msg = _QUERY.sub("?…", str(record.msg))
        return True


def main(argv: list[str] | None = None) -> int:
    from moto.server import ThreadedMotoServer

    port = int((argv or sys.argv[1:])[0])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("werkzeug").addFilter(_NoQueryStrings())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto server listening on 127.0.0.1:{port}", flush=True)
    while not stopping.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
