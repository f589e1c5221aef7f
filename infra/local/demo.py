"""``make demo``: the main job end to end on the embedded local stack.

Uses the local stack already running on the API port (``make up`` in this
checkout), else starts one of its own (on free ports if the usual ones are
taken) and stops it at the end. Uploads a directory with the ``squeezer``
client (a sample made on first run, or ``--dir``), waits, downloads, checks
every result by decompressing it and comparing sha256 with the original,
prints a table, and removes the downloaded results (``keep=True`` keeps
them). Exit status 0 only if every file came back byte-exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chalicelib.codecs import decompress_stream
from chalicelib.domain import Algorithm

from .config import STATE_DIR, LocalConfig
from .stack import LocalStack, free_ports, port_is_free, running_stack

DEMO_DIR = STATE_DIR.parent / "demo"
SAMPLE_DIR = DEMO_DIR / "sample"


def make_sample(root: Path, seed: int = 7) -> Path:
    """Text, JSON lines, random binary, an empty file, nested folders, a non-ASCII name."""
    rng = random.Random(seed)
    (root / "logs" / "2026").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    with open(root / "logs" / "2026" / "app.log", "w") as out:
        for i in range(60_000):
            out.write(
                f"2026-11-25T10:{i // 3600 % 60:02d}:{i % 60:02d}Z {rng.choice(levels)} "
                f"request id={rng.randrange(10**9)} path=/api/v1/items/{rng.randrange(5000)} "
                f"status={rng.choice([200, 200, 200, 404, 500])} ms={rng.randrange(1, 900)}\n"
            )
    with open(root / "data" / "events.jsonl", "w") as out:
        for i in range(30_000):
            out.write(
                json.dumps(
                    {
                        "id": i,
                        "user": f"u{rng.randrange(2000)}",
                        "kind": rng.choice(["click", "view", "buy"]),
                        "amount": round(rng.random() * 100, 2),
                        "tags": rng.sample(["a", "b", "c", "d"], 2),
                    }
                )
                + "\n"
            )
    (root / "data" / "random.bin").write_bytes(rng.randbytes(2 * 1024 * 1024))
    (root / "empty.txt").write_bytes(b"")
    (root / "données" / "résumé été.txt").parent.mkdir(exist_ok=True)
    (root / "données" / "résumé été.txt").write_text("Squeezer compresse vos fichiers. " * 2000, encoding="utf-8")
    return root


@dataclass
class Row:
    name: str
    size: int
    compressed: int | None
    seconds: float | None
    verified: bool
    note: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(original: Path, packed: Path, algorithm: Algorithm) -> bool:
    digest = hashlib.sha256()

    class _Hasher:
        def write(self, data: bytes) -> int:
            digest.update(data)
            return len(data)

    with open(packed, "rb") as handle:
        decompress_stream(handle, _Hasher(), algorithm)
    return digest.hexdigest() == _sha256(original)


def up_state_dir() -> Path:
    """Where ``make up`` (``python -m infra.local up``) keeps its pid and token files."""
    configured = os.environ.get("SQUEEZER_LOCAL_STATE_DIR")
    return Path(configured).expanduser() if configured else STATE_DIR


@contextlib.contextmanager
def demo_stack(api_port: int, moto_port: int) -> Iterator[dict[str, str]]:
    """The client's environment for a stack: the one running on ``api_port``, else one started here.

    A stack started here is stopped when the block ends. If the ports are
    taken by something else (another checkout's stack, another program), it
    runs on free ports instead of failing.
    """
    running = running_stack(up_state_dir(), LocalConfig(api_port=api_port).api_url)
    if running is not None:
        print(
            f"using the local stack already running at {running.api_url} (pid {running.runner}); "
            "the demo's job stays in it",
            file=sys.stderr,
        )
        yield running.client_environment
        return
    if not (port_is_free(api_port) and port_is_free(moto_port)):
        taken = api_port if not port_is_free(api_port) else moto_port
        api_port, moto_port = free_ports(2)
        print(f"port {taken} is taken by something else: the demo's own stack uses free ports", file=sys.stderr)
    print(f"starting the local stack (API :{api_port}, emulator :{moto_port})...", file=sys.stderr)
    with LocalStack(api_port=api_port, moto_port=moto_port, state_dir=STATE_DIR / "demo") as stack:
        yield stack.client_environment


def run_demo(source: Path | None, algorithm: str, level: int | None, *, keep: bool = False) -> int:
    if source is None:
        source = SAMPLE_DIR
        if not source.exists():
            print(f"making a sample directory in {source}", file=sys.stderr)
            make_sample(source)
    source = source.resolve()
    if not source.is_dir():
        print(f"Error: {source} is not a directory", file=sys.stderr)
        return 2
    algo = Algorithm(algorithm)
    api_port = int(os.environ.get("SQUEEZER_API_PORT", 8000))
    moto_port = int(os.environ.get("SQUEEZER_MOTO_PORT", 5000))
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix="out-", dir=DEMO_DIR))
    try:
        code = _run(source, algo, level, api_port, moto_port, out_dir)
    finally:
        if not keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    if keep:
        print(f"results kept in {out_dir}")
    return code


def _run(source: Path, algo: Algorithm, level: int | None, api_port: int, moto_port: int, out_dir: Path) -> int:
    with demo_stack(api_port, moto_port) as stack_env:
        api_url = stack_env["SQUEEZER_API_URL"]
        command = [
            sys.executable,
            "-m",
            "client",
            "--api-url",
            api_url,
            "upload",
            str(source),
            "--algorithm",
            algo.value,
            "--download",
            str(out_dir),
            "--json",
        ]
        if level is not None:
            command += ["--level", str(level)]
        client_env = {**os.environ, **stack_env}  # the stack's dev tenant
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2], env=client_env
        )
        if not done.stdout.strip():
            print(f"Error: the client printed nothing (exit {done.returncode})", file=sys.stderr)
            return done.returncode or 1
        summary = json.loads(done.stdout)
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "client", "--api-url", api_url, "status", summary["job_id"], "--json"],
                stdout=subprocess.PIPE,
                text=True,
                check=False,
                env=client_env,
            ).stdout
        )
    timings = {f["name"]: f["timings"].get("total_seconds") for f in status.get("files", [])}
    # The client keeps the folder's own name as the first path segment.
    base = source.name
    rows = []
    for entry in summary["files"]:
        original = (
            source / entry["name"].split("/", 1)[1] if entry["name"].startswith(base + "/") else source / entry["name"]
        )
        ok, note = False, ""
        if entry.get("output"):
            ok = _verify(original, Path(entry["output"]), algo)
            note = "" if ok else "MISMATCH"
        else:
            note = (entry.get("error") or {}).get("code", "not downloaded")
        rows.append(
            Row(entry["name"], entry["size"], entry.get("compressed_size"), timings.get(entry["name"]), ok, note)
        )
    _print_table(rows, summary["job_id"], algo, summary["level"])
    return 0 if rows and all(r.verified for r in rows) else 1


def _print_table(rows: list[Row], job_id: str, algorithm: Algorithm, level: int) -> None:
    width = max([len("file")] + [len(r.name) for r in rows])
    print(f"\njob {job_id}: {algorithm.value} level {level}")
    print(f"{'file':<{width}}  {'size':>10}  {'compressed':>10}  {'ratio':>6}  {'seconds':>7}  check")
    total_in = total_out = 0
    for r in rows:
        ratio = f"{r.compressed / r.size:.3f}" if r.compressed is not None and r.size else "-"
        seconds = f"{r.seconds:.2f}" if r.seconds is not None else "-"
        compressed = str(r.compressed) if r.compressed is not None else "-"
        check = "sha256 ok" if r.verified else f"FAILED {r.note}"
        print(f"{r.name:<{width}}  {r.size:>10}  {compressed:>10}  {ratio:>6}  {seconds:>7}  {check}")
        total_in += r.size
        total_out += r.compressed or 0
    overall = f"{total_out / total_in:.3f}" if total_in else "-"
    print(f"{'total':<{width}}  {total_in:>10}  {total_out:>10}  {overall:>6}")
    verified = sum(r.verified for r in rows)
    print(f"{verified}/{len(rows)} files verified byte-exact after decompression")
