"""The local stack's emulator completes multipart uploads on disk (infra.local.moto_patches).

The emulator is started the way the local stack starts it
(``infra.local.start_emulator``, on a free port, its temporary files in a
folder of the test's), so what runs is the patched moto of the launcher
process; this process's moto stays as released.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import FakeMultipart, MultipartChecksumBuilder
from moto.s3.utils import CaseInsensitiveDict

from infra.local import StartupFailed, emulator_client, free_port, moto_patches, running_emulator, start_emulator
from infra.local.config import LocalConfig
from infra.local.stack import GRACE, ROOT

MiB = 1 << 20
BUCKET = "squeezer-emulator-multipart"


@dataclass
class Emulator:
    endpoint: str
    pid: int

    def s3(self):
        return emulator_client("s3", self.endpoint)

    def status(self, field: str) -> int:
        """``field`` of /proc/<pid>/status (VmRSS, VmHWM) in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """From now on VmHWM is the peak since this call (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="squeezer-emulator-multipart-") as folder:
        spill = Path(folder) / "tmp"  # moto's spooled files: removed with the folder
        spill.mkdir()
        env = {**LocalConfig(moto_port=port).process_environment(), "TMPDIR": str(spill)}
        process = start_emulator(port, log_path=Path(folder) / "emulator.log", env=env)
        try:
            assert process.pid is not None
            emulator = Emulator(f"http://127.0.0.1:{port}", process.pid)
            emulator.s3().create_bucket(Bucket=BUCKET)
            yield emulator
        finally:
            process.stop(GRACE["emulator"])


def _multipart_etag(parts: list[bytes]) -> str:
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def _upload(s3, key: str, parts: list[bytes], **create) -> dict:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **create)["UploadId"]
    sent = []
    for number, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        answer = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra)
        sent.append({"PartNumber": number, "ETag": answer["ETag"]})
    return s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent})


# -- (a) byte-exact, through the patched emulator -----------------------------------------


@pytest.mark.integration
def test_parts_of_different_sizes_complete_byte_exact_with_ranges_metadata_tags_and_checksum(emulator) -> None:
    from awscrt import checksums

    parts = [os.urandom(5 * MiB), os.urandom(7 * MiB + 3), os.urandom(5 * MiB + 1), os.urandom(1000)]
    whole = b"".join(parts)
    s3 = emulator.s3()

    completed = _upload(
        s3,
        "tenant/job/big.bin",
        parts,
        Metadata={"origin": "test"},
        ContentType="application/x-test",
        Tagging="kind=upload&size=big",
        ChecksumAlgorithm="CRC64NVME",
        ChecksumType="FULL_OBJECT",
    )

    crc = base64.b64encode(checksums.crc64nvme(whole).to_bytes(8, "big")).decode()
    assert completed["ETag"] == _multipart_etag(parts)
    got = s3.get_object(Bucket=BUCKET, Key="tenant/job/big.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == whole
    assert (got["ContentLength"], got["ETag"]) == (len(whole), _multipart_etag(parts))
    assert (got["Metadata"], got["ContentType"]) == ({"origin": "test"}, "application/x-test")
    assert (got["ChecksumCRC64NVME"], got["ChecksumType"]) == (crc, "FULL_OBJECT")
    tags = s3.get_object_tagging(Bucket=BUCKET, Key="tenant/job/big.bin")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"kind": "upload", "size": "big"}
    # Ranges across part boundaries, the last byte, and a suffix.
    for first, last in ((5 * MiB - 10, 5 * MiB + 10), (12 * MiB - 1, 17 * MiB + 5), (len(whole) - 1, len(whole) - 1)):
        ranged = s3.get_object(Bucket=BUCKET, Key="tenant/job/big.bin", Range=f"bytes={first}-{last}")
        assert ranged["Body"].read() == whole[first : last + 1]
        assert ranged["ContentRange"] == f"bytes {first}-{last}/{len(whole)}"
    suffix = s3.get_object(Bucket=BUCKET, Key="tenant/job/big.bin", Range="bytes=-1500")["Body"].read()
    assert suffix == whole[-1500:]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="tenant/job/")["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("tenant/job/big.bin", len(whole), completed["ETag"])]


@pytest.mark.integration
def test_completion_answers_as_moto_does_for_bad_part_lists_and_repeats(emulator) -> None:
    s3 = emulator.s3()
    key = "tenant/job/errors.bin"
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    small = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 100)["ETag"]
    big = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=2, Body=b"y" * (5 * MiB))["ETag"]

    def complete(parts):
        return s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    with pytest.raises(s3.exceptions.ClientError, match="InvalidPart"):
        complete([{"PartNumber": 2, "ETag": small}])
    with pytest.raises(s3.exceptions.ClientError, match="EntityTooSmall"):
        complete([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": big}])
    done = complete([{"PartNumber": 2, "ETag": big}])  # the upload is still open after refusals
    again = complete([{"PartNumber": 2, "ETag": big}])  # moto: a repeat answers with the object as it is
    assert done["ETag"] == again["ETag"] == _multipart_etag([b"y" * (5 * MiB)])
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"y" * (5 * MiB)


@pytest.mark.integration
def test_a_completed_upload_is_saved_and_restored_like_any_object(emulator, tmp_path) -> None:
    from infra.local import persistence
    from infra.local.config import REGION

    parts = [os.urandom(5 * MiB), os.urandom(123)]
    key = "tenant/job/saved.bin"
    _upload(emulator.s3(), key, parts, Metadata={"origin": "test"}, Tagging="kind=upload")
    saver = persistence.Saver(
        tmp_path / "state",
        s3=emulator.s3(),
        dynamodb=emulator_client("dynamodb", emulator.endpoint),
        account_id="123456789012",
        region=REGION,
    )
    assert saver.save()
    (entry,) = [e for e in json.loads((tmp_path / "state" / "snapshot.json").read_text())["s3"] if e["key"] == key]
    assert entry["etag"] == _multipart_etag(parts) and entry["size"] == sum(map(len, parts))
    assert (tmp_path / "state" / "blobs" / entry["blob"]).read_bytes() == b"".join(parts)

    with running_emulator() as endpoint:
        clients = {name: emulator_client(name, endpoint) for name in ("s3", "sqs", "dynamodb")}
        clients["s3"].create_bucket(Bucket=BUCKET)
        restored = persistence.restore(tmp_path / "state", **clients)
        got = clients["s3"].get_object(Bucket=BUCKET, Key=key)
        body = got["Body"].read()
        tags = clients["s3"].get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert restored is not None and restored["objects"] >= 1
    assert (body, got["Metadata"], tags) == (b"".join(parts), {"origin": "test"}, [{"Key": "kind", "Value": "upload"}])


# -- (a') the patched completion against moto's own, in this process ------------------------


def _fake_multipart(parts: list[bytes], metadata: dict[str, str]) -> FakeMultipart:
    multipart = FakeMultipart("k", CaseInsensitiveDict(metadata), account_id="123456789012", region_name="us-east-1")
    for number, body in enumerate(parts, start=1):
        multipart.set_part(number, body)
    return multipart


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"x-amz-checksum-algorithm": "CRC64NVME"},
        {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "FULL_OBJECT"},
        {"x-amz-checksum-algorithm": "CRC32"},
        {"x-amz-checksum-algorithm": "CRC32C"},
        {"x-amz-checksum-algorithm": "SHA1"},
        {"x-amz-checksum-algorithm": "SHA256"},
    ],
    ids=lambda m: "-".join(m.values()) or "default",
)
def test_streaming_completion_gives_what_moto_gives(metadata) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 17), os.urandom(333)]
    listing = [(n, hashlib.md5(p).hexdigest()) for n, p in enumerate(parts, start=1)]
    multipart = _fake_multipart(parts, metadata)

    value, etag, checksum = multipart.complete(iter(listing))  # moto as released (not patched here)
    assembled, patched_etag, patched_checksum = moto_patches._complete(multipart, iter(listing))

    buffer = assembled.take()
    buffer.seek(0)
    assert buffer.read() == value == b"".join(parts)
    assert assembled.size == len(value)
    assert (patched_etag, patched_checksum) == (etag, checksum)
    buffer.close()
    multipart.dispose()


def test_streaming_checksum_matches_moto_chunk_by_chunk() -> None:
    data = [os.urandom(3 * moto_patches.CHUNK + 5), os.urandom(10)]
    for algorithm in ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256"):
        for kind in ("FULL_OBJECT", "COMPOSITE"):
            expected = MultipartChecksumBuilder(algorithm, kind)
            streaming = moto_patches.StreamingChecksum(algorithm, kind)
            for part in data:
                expected.addPart(part)
                streaming.start_part()
                for start in range(0, len(part), 1000):
                    streaming.update(part[start : start + 1000])
                streaming.end_part()
            assert streaming.build() == expected.build(), (algorithm, kind)


def test_bad_part_lists_raise_moto_s_errors() -> None:
    parts = [b"a" * 100, b"b" * (5 * MiB)]
    multipart = _fake_multipart(parts, {})
    etags = [hashlib.md5(p).hexdigest() for p in parts]
    with pytest.raises(InvalidPart):
        moto_patches._complete(multipart, iter([(1, etags[1])]))
    with pytest.raises(InvalidPart):
        moto_patches._complete(multipart, iter([(3, etags[0])]))
    with pytest.raises(EntityTooSmall):
        moto_patches._complete(multipart, iter([(1, etags[0]), (2, etags[1])]))
    with pytest.raises(MalformedXML):
        moto_patches._complete(multipart, iter([]))
    multipart.dispose()
    assert not moto_patches.applied()  # this process's moto is as released


# -- (b) memory stays flat ------------------------------------------------------------------

PART = 64 * MiB
PARTS = 10  # 640 MiB: parts and object take 1.25 GiB of the test's temporary folder, for the module's life
# Completing copies 1 MiB at a time: the peak over completion stays within this. moto as released
# joins the parts in memory and again for its default CRC64NVME, then copies into the key: 4 to 5
# times the object (a 1 GiB object peaked at 4.3 GB; this one would pass 2.5 GB).
COMPLETION_GROWTH = 64 * MiB
# While parts arrive, werkzeug reads a body into a bytearray then copies it to bytes: about two
# parts' worth at once, then freed (measured: peak +155 MiB with 64 MiB parts). Unpatched, a
# request cycle kept the bodies until the next garbage collection (+0.5 to 0.9 GB for 1 GiB).
UPLOAD_PEAK_GROWTH = 4 * PART
# What stays once the upload is complete (measured: +30 MiB; unpatched, after the 4.3 GB peak,
# 100 to 200 MiB more than before).
RETAINED_GROWTH = 64 * MiB


@pytest.mark.integration
def test_completing_640_mib_in_64_mib_parts_keeps_the_emulator_memory_flat(emulator) -> None:
    s3 = emulator.s3()
    key = "tenant/job/large.bin"
    body = os.urandom(PART)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    before = emulator.status("VmRSS")
    emulator.reset_peak()
    sent = []
    for number in range(1, PARTS + 1):
        answer = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        sent.append({"PartNumber": number, "ETag": answer["ETag"]})
    upload_peak = emulator.status("VmHWM") - before
    before_completion = emulator.status("VmRSS")
    emulator.reset_peak()

    completed = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}
    )

    completion_peak = emulator.status("VmHWM") - before_completion
    retained = emulator.status("VmRSS") - before
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert (head["ContentLength"], completed["ETag"]) == (PART * PARTS, _multipart_etag([body] * PARTS))
    mib = {"upload peak": upload_peak >> 20, "completion peak": completion_peak >> 20, "retained": retained >> 20}
    assert completion_peak < COMPLETION_GROWTH, f"emulator RSS growth in MiB: {mib}"
    assert upload_peak < UPLOAD_PEAK_GROWTH, f"emulator RSS growth in MiB: {mib}"
    assert retained < RETAINED_GROWTH, f"emulator RSS growth in MiB: {mib}"


@pytest.mark.integration
def test_a_ranged_get_reads_only_its_range(emulator) -> None:
    """Fan-out's ranges read a few hundred MiB of a big object each; moto read the whole object for every one."""
    s3 = emulator.s3()
    key = "tenant/job/ranged.bin"
    body = os.urandom(PART)
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    sent = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=body)["ETag"],
        }
        for n in range(1, 5)
    ]
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent})
    before = emulator.status("VmRSS")
    emulator.reset_peak()
    start = 3 * PART - 100  # across a part boundary
    got = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={start}-{start + 1023}")
    peak = emulator.status("VmHWM") - before
    assert got["Body"].read() == (body + body)[PART - 100 : PART + 924]
    assert got["ContentRange"] == f"bytes {start}-{start + 1023}/{4 * PART}"
    assert peak < PART, f"a 1 KiB range of {4 * PART >> 20} MiB grew the emulator by {peak >> 20} MiB"
    assert s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-10")["Body"].read() == body[-10:]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body * 4  # a whole GET as before


# -- (c) the version guard -------------------------------------------------------------------


def test_only_the_pinned_moto_is_patched() -> None:
    moto_patches.check_version(moto_patches.PINNED)
    moto_patches.check_version()  # the installed moto is the pinned one
    with pytest.raises(moto_patches.UnsupportedMoto, match=r"written for moto 5\.2\.5 .* moto 5\.3\.0 is installed"):
        moto_patches.check_version("5.3.0")
    # the local stack's set (what runs the emulator) and the tests' set pin the same moto
    local = (ROOT / "requirements-local.txt").read_text()
    assert f"moto[s3,sqs,dynamodb]=={moto_patches.PINNED}" in local, "the patches name the version the stack pins"
    assert f"moto[server]=={moto_patches.PINNED}" in (ROOT / "requirements-test.txt").read_text()


@pytest.mark.integration
def test_the_emulator_refuses_to_start_on_another_moto(tmp_path) -> None:
    # sitecustomize runs at interpreter start, before the emulator imports anything of its own.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import moto\nmoto.__version__ = '5.3.0'\n")
    port = free_port()
    env = {**LocalConfig(moto_port=port).process_environment(), "PYTHONPATH": str(tmp_path / "site")}

    with pytest.raises(StartupFailed, match=r"exited .*\n.*written for moto 5\.2\.5 .*moto 5\.3\.0 is installed"):
        start_emulator(port, log_path=tmp_path / "emulator.log", env=env, timeout=30)
