"""Item 3: peak RSS of the worker's ``_compress`` path, each size in a fresh process.

The measured child (``python -m load.memory_bench child ...``) runs only the
worker: ``FileProcessor._compress`` with HashingReader, the codec, VerifyingSink and
the real ``MultipartWriter``. Its storage is either

* ``moto``: S3Storage (boto3) against the moto server in another process,
  which holds the object; or
* ``fake``: a storage that streams a generated object (8 MiB of generated
  logs, repeated) and a MultipartWriter whose S3 client discards the parts,
  so that 2 GiB needs neither a 2 GiB emulator nor its upload time.

Peak is the child's ``VmHWM`` (/proc/self/status), reset to the current RSS
just before ``_compress`` starts (``baseline``). Not ``ru_maxrss``: Linux
carries it across fork+exec, so a child reports its parent's peak if that
was higher (seen here: 217 MiB reported by a child whose RSS never passed
52 MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from .measure import Figure, MiB, say

ROOT = Path(__file__).resolve().parent.parent
_BASE = 8 * MiB


_BLOCK: list[bytes] = []


def _block() -> bytes | None:
    """The first 8 MiB of a corpus logs file, when the runner named one.

    Reading it (8 MiB) instead of generating it (~25 MiB of transient Python
    objects) keeps the generator out of the measured peak."""
    return _BLOCK[0] if _BLOCK else None


class GeneratedSource:
    """``size`` bytes of generated logs, the same 8 MiB block repeated."""

    def __init__(self, size: int) -> None:
        from .corpus import generate

        self._block = _block() or generate("logs", _BASE)
        self._left = size
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        out = bytearray()
        while len(out) < size:
            take = min(size - len(out), _BASE - self._pos)
            out += self._block[self._pos : self._pos + take]
            self._pos = (self._pos + take) % _BASE
        self._left -= len(out)
        return bytes(out)

    def close(self) -> None:
        pass


class _DiscardingS3:
    """Enough of an S3 client for MultipartWriter; every body is dropped."""

    def __init__(self) -> None:
        self.parts = 0

    def create_multipart_upload(self, **_):
        return {"UploadId": "fake"}

    def upload_part(self, *, Body, **_):
        self.parts += 1
        return {"ETag": f'"{self.parts}"'}

    def complete_multipart_upload(self, **_):
        return {}

    def put_object_tagging(self, **_):
        return {}

    def put_object(self, **_):
        return {}

    def abort_multipart_upload(self, **_):
        return {}


class FakeStorage:
    def __init__(self, size: int, part_size: int) -> None:
        self._size, self._part_size = size, part_size

    def open_read(self, key):
        from chalicelib.storage import ObjectStream

        return ObjectStream(body=GeneratedSource(self._size), size=self._size)

    def open_writer(self, key, *, content_type, metadata):
        from chalicelib.storage import MultipartWriter

        return MultipartWriter(
            _DiscardingS3(), "bench", key, part_size=self._part_size, content_type=content_type, metadata=metadata
        )


def _child(args) -> None:
    import psutil

    from chalicelib.domain import Algorithm, FileRecord
    from chalicelib.keys import ObjectKeys
    from chalicelib.worker import Worker

    from . import emulator

    emulator.use_fake_credentials()
    if args.block:
        with open(args.block, "rb") as f:
            _BLOCK.append(f.read(_BASE))
    overrides = {"compress_threads": args.threads} if args.threads else {}
    if args.storage == "moto":
        from chalicelib.aws import AwsClients
        from chalicelib.storage import S3Storage

        settings = emulator.settings_for(args.endpoint, **overrides)
        storage = S3Storage(AwsClients(settings).s3, settings.bucket, part_size=settings.part_size)
        ref = ObjectKeys(settings.uploads_prefix, settings.results_prefix).parse_upload(args.key)
        owner, job_id, file_id = ref.owner, ref.job_id, ref.file_id
    else:
        from chalicelib.settings import Settings

        settings = Settings(
            bucket="bench", table="bench", queue_name="bench", dead_letter_queue_name="bench", **overrides
        )
        storage = FakeStorage(args.size, settings.part_size)
        owner, job_id, file_id = "bench", "j_bench", "f_bench"
    worker = Worker(None, storage, None, settings)
    record = FileRecord(
        job_id=job_id, file_id=file_id, name="bench.log", size=args.size, algorithm=Algorithm.ZSTD, level=3
    )
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = psutil.Process().memory_info().rss
    from chalicelib.heartbeat import Heartbeat
    from chalicelib.keys import FileRef

    # a heartbeat that is never started: the compression path's checks, no store
    idle = Heartbeat(
        None,
        None,
        FileRef(owner, job_id, file_id),
        token="bench",
        receipt_handle=None,  # type: ignore[arg-type]
        interval=5.0,
        lease_seconds=60,
    )
    keys = ObjectKeys(settings.uploads_prefix, settings.results_prefix)
    result_key = keys.result(FileRef(owner, job_id, file_id), "bench", Algorithm.ZSTD)
    upload_key = args.key if args.storage == "moto" else keys.upload(FileRef(owner, job_id, file_id))
    # (size, input CRC32, seconds, result CRC64NVME): the memory run needs the first three
    compressed, _crc, seconds = worker.files._compress(record, upload_key, result_key, idle)[:3]
    peak = _vm_hwm()
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": peak,
                "seconds": seconds,
                "compressed": compressed,
                "threads": settings.zstd_threads(args.size),
                "job_size": settings.zstd_job_size,
            }
        )
    )


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(size: int, storage: str, *, block: Path, endpoint: str = "", key: str = "") -> dict:
    argv = [
        sys.executable,
        "-m",
        "load.memory_bench",
        "child",
        "--size",
        str(size),
        "--storage",
        storage,
        "--block",
        str(block),
    ]
    if storage == "moto":
        argv += ["--endpoint", endpoint, "--key", key]
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _label(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n < 1024 * MiB else f"{n / 1024 / MiB:.0f} GiB"


def figure_names() -> list[str]:
    return ["memory.peak.small", "memory.peak.large", "memory.difference"]


def run(small: int, large: int, block: Path, moto_sizes: tuple[int, ...] = ()) -> list[Figure]:
    results: dict[str, dict] = {}
    for size in (small, large):
        name = f"fake-{size}"
        say(f"[3] {name}: fresh process")
        results[name] = measure(size, "fake", block=block)
        say(f"[3] {name}: {json.dumps(results[name])}")
    if moto_sizes:
        results.update(_moto(moto_sizes, block))
    figures = []
    rs, rl = results[f"fake-{small}"], results[f"fake-{large}"]
    for which, size, r in (("small", small, rs), ("large", large, rl)):
        figures.append(
            Figure(
                f"memory.peak.{which}",
                f"peak RSS, fake streaming storage, {_label(size)} object "
                f"(baseline {r['baseline'] / MiB:.0f} MiB, {r['seconds']:.1f}s, zstd threads={r['threads']}, "
                f"jobs of {r['job_size'] / MiB:g} MiB)",
                r["peak"] / MiB,
                unit="MiB",
                target=128,
                higher_is_better=False,
            )
        )
    figures.append(
        Figure(
            "memory.difference",
            f"peak({_label(large)}) - peak({_label(small)}), fake storage",
            (rl["peak"] - rs["peak"]) / MiB,
            unit="MiB",
            target=16,
            higher_is_better=False,
            extra={"results": results},
        )
    )
    for size in moto_sizes:
        r = results[f"moto-{size}"]
        figures.append(
            Figure(
                "memory.peak.moto",
                f"peak RSS, S3Storage (boto3) against the moto server, "
                f"{_label(size)} object (baseline {r['baseline'] / MiB:.0f} MiB, {r['seconds']:.1f}s, "
                f"zstd threads={r['threads']})",
                r["peak"] / MiB,
                unit="MiB",
                target=128,
                higher_is_better=False,
            )
        )
    return figures


def _moto(sizes, block: Path) -> dict:
    from chalicelib.domain import new_file_id, new_job_id
    from chalicelib.keys import FileRef, ObjectKeys
    from infra.local import emulator_client, running_emulator

    from . import emulator

    emulator.use_fake_credentials()
    results = {}
    with running_emulator() as endpoint:
        emulator.create(endpoint)
        settings = emulator.settings_for(endpoint)
        s3 = emulator_client("s3", endpoint)
        for size in sizes:
            key = ObjectKeys(settings.uploads_prefix, settings.results_prefix).upload(
                FileRef("bench", new_job_id(), new_file_id())
            )
            say(f"[3] uploading {size / MiB:.0f} MiB to the moto server")
            emulator.upload_stream(s3, settings.bucket, key, GeneratedSource(size), size)
            say(f"[3] moto storage, {size / MiB:.0f} MiB, fresh process")
            results[f"moto-{size}"] = measure(size, "moto", block=block, endpoint=endpoint, key=key)
            s3.delete_object(Bucket=settings.bucket, Key=key)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["child"])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--storage", choices=["fake", "moto"], required=True)
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--block", default="", help="corpus logs file whose first 8 MiB is repeated")
    parser.add_argument("--threads", type=int, default=0, help="override Settings.compress_threads")
    _child(parser.parse_args())
