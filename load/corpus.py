"""A seeded corpus, generated once into ``.state/bench/corpus/<mode>/``.

Four kinds, the same size each: service logs, JSON lines, a tar mixing slices
of those with binary members, and random bytes. The same seed and size give
the same bytes on every machine (``random.Random`` only, no numpy).
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

from .measure import MiB, say

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".state" / "bench"
SEED = 20240501
VERSION = 1  # bump when the generators change, so cached files are rebuilt
KINDS = ("logs", "jsonl", "mixed", "random")
_SUFFIX = {"logs": ".log", "jsonl": ".jsonl", "mixed": ".tar", "random": ".bin"}

_SERVICES = [f"{name}-{i}" for name in ("api", "auth", "billing", "search", "worker") for i in range(4)]
_PATHS = [
    "/api/v1/users/{}",
    "/api/v1/orders/{}",
    "/api/v1/search?q=item{}",
    "/health",
    "/api/v1/files/{}/download",
    "/static/app.{}.js",
    "/api/v2/jobs/{}/status",
]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (Macintosh) Safari/605.1.15",
    "squeezer/0.1",
]
_LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2 + ["ERROR"]
_STATUS = [200] * 20 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 503]
_WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "user",
    "order",
    "file",
    "job",
    "queue",
    "cache",
    "miss",
    "hit",
    "retry",
    "timeout",
    "compress",
    "upload",
    "download",
    "token",
    "session",
    "region",
    "bucket",
    "table",
    "stream",
    "chunk",
]


def _logs(rng: random.Random, size: int) -> bytes:
    out, total, t = [], 0, 1714521600.0
    while total < size:
        t += rng.expovariate(200)
        secs = int(t)
        line = (
            f"2024-05-01T{secs // 3600 % 24:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}."
            f"{int(t * 1000) % 1000:03d}Z {rng.choice(_LEVELS):5} [{rng.choice(_SERVICES)}] "
            f"{rng.choice(('GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'))} "
            f"{rng.choice(_PATHS).format(rng.randrange(100000))} {rng.choice(_STATUS)} "
            f"{rng.randrange(1, 900)}ms req={rng.getrandbits(64):016x} "
            f"ip=10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} "
            f'ua="{rng.choice(_AGENTS)}"\n'
        ).encode()
        out.append(line)
        total += len(line)
    return b"".join(out)[:size]


def _jsonl(rng: random.Random, size: int) -> bytes:
    out, total, t = [], 0, 1714521600
    while total < size:
        t += rng.randrange(3)
        record = {
            "ts": t,
            "event": rng.choice(("job.created", "file.uploaded", "file.completed", "file.failed")),
            "job_id": f"{rng.getrandbits(48):012x}",
            "user": f"user{rng.randrange(5000)}",
            "size": rng.randrange(1, 5 * 1024**3),
            "ratio": round(rng.uniform(1, 9), 3),
            "algorithm": rng.choice(("zstd", "brotli", "gzip")),
            "level": rng.randrange(1, 10),
            "tags": rng.sample(_WORDS, rng.randrange(1, 5)),
            "note": " ".join(rng.choices(_WORDS, k=rng.randrange(3, 12))),
        }
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        out.append(line)
        total += len(line)
    return b"".join(out)[:size]


# Binary-looking bytes with ~3.5 bits of entropy per byte: random bytes mapped
# through a skewed table (C speed via bytes.translate).
_SKEW = bytes(([0] * 96) + [i % 16 for i in range(96)] + [rng_b for rng_b in range(64)])


def _binary(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size).translate(_SKEW)


def _mixed(rng: random.Random, size: int) -> bytes:
    buf = io.BytesIO()
    member = max(256 * 1024, size // 64)
    makers = [
        ("logs/app-{}.log", _logs),
        ("events/part-{}.jsonl", _jsonl),
        ("bin/blob-{}.dat", _binary),
        ("media/img-{}.jpg", lambda r, n: r.randbytes(n)),
    ]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        i = 0
        while buf.tell() < size - member - 2048:
            name, make = makers[i % len(makers)]
            data = make(rng, rng.randrange(member // 2, member))
            info = tarfile.TarInfo(name.format(i))
            info.size, info.mtime, info.mode = len(data), 1714521600, 0o644
            tar.addfile(info, io.BytesIO(data))
            i += 1
    data = buf.getvalue()
    return data + bytes(max(0, size - len(data)))


_MAKERS = {"logs": _logs, "jsonl": _jsonl, "mixed": _mixed, "random": lambda r, n: r.randbytes(n)}


def generate(kind: str, size: int, seed: int = SEED) -> bytes:
    return _MAKERS[kind](random.Random(f"{seed}:{kind}:{VERSION}"), size)


def corpus(mode: str, size: int, kinds: tuple[str, ...] = KINDS) -> dict[str, Path]:
    """Paths of the corpus files of ``kinds`` (default: all four) for ``mode``, generating missing ones."""
    folder = STATE / "corpus" / mode
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in kinds:
        path = folder / f"{kind}-v{VERSION}-{size}{_SUFFIX[kind]}"
        if not path.exists() or path.stat().st_size != size:
            say(f"generating {path.relative_to(ROOT)} ({size / MiB:.0f} MiB)")
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(generate(kind, size))
            tmp.replace(path)
        paths[kind] = path
    return paths
