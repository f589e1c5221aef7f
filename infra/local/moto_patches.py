"""Patches to moto's S3 that keep the emulator's memory flat whatever the object size.

Applied by the emulator's launcher (:mod:`infra.local.emulator`) before its
server starts, in that process only: tests that use moto in-process
(``mock_aws``) run moto as released.

What moto 5.2.5 does, and what changes (``moto/s3/models.py``):

* ``FakeMultipart.complete`` joins every part into one ``bytearray``, reads
  each part a second time for the checksum (``MultipartChecksumBuilder``
  keeps a second whole-object ``bytearray`` for a FULL_OBJECT checksum, the
  default: CRC64NVME), then returns ``bytes(total)``, which the new key's
  value setter copies once more into its spooled file. Four to five times
  the object's size is resident at completion (1 GiB: 4.3 GB).
  Here the parts are validated as moto does (same errors, same order), then
  each part's spooled file is copied in 1 MiB chunks into the spooled file
  that becomes the new key's buffer, updating the checksum on the way: one
  pass, never more than a chunk in memory. ETag (``"<md5 of part md5s>-N"``),
  size, checksum algorithm, type and value, metadata, tags and ACL are what
  moto would have recorded (the rest of ``complete_multipart_upload`` is
  moto's own code).
* moto's server runs Flask in debug mode, where every request with a body
  ends up in a reference cycle (see :func:`_break_request_cycle`): a part's
  body stayed in memory until the next garbage collection. The debug helper
  that makes the cycle is replaced with a no-op.
* ``FakeKey``'s value setter writes a body into a ``SpooledTemporaryFile``
  whose in-memory stage takes the whole body before rolling over to disk: a
  part of 64 MiB is held twice more besides the request's own copy. Here a
  body larger than the spool's ``max_size`` goes straight to the file.

Also (moto/moto_server/werkzeug_app.py): the backend of a request's host
is looked up once per host (:func:`_remember_backends_by_host`), not with a
folder listing and a scan of every backend's URL patterns per request.

Also (moto/sqs/models.py): the check of a received message's retention
period and each message's visibility no longer cost work per message held
in the queue (:func:`_cheap_sqs_clock`). And (moto/dynamodb/models): a
transaction backs up the items it names, not a deep copy of every table it
touches (:func:`_item_rollback_transactions`). And (moto/dynamodb/responses.py):
the answers of Query, Scan, GetItem and BatchGetItem are written as JSON
directly (:func:`_plain_json_reads`), not through moto's model-driven
serializer, which took 1.5 s of CPU to answer a Query of 1,000 items (every
``GET /jobs/{id}`` of a 1,000-file job, each poll of ``upload --wait``),
and a Query of a table's partition reads that partition
(:func:`_partition_queries`), not a sorted copy of every item in the table.

Not changed: the request body is still read whole (werkzeug), and a
completed key keeps its parts (moto serves ``GET ?partNumber=`` from them),
so a completed upload takes twice its size on disk (in ``TMPDIR``) until the
key is deleted or overwritten.

The patch is written against one moto version (:data:`SUPPORTED_VERSIONS`,
the pin in requirements-dev.txt): :func:`apply` refuses any other with
:class:`UnsupportedMoto`, so an upgrade cannot silently run half-patched.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any

PINNED = "5.2.5"  # requirements-dev.txt: moto[server]==5.2.5
SUPPORTED_VERSIONS = frozenset({PINNED})
CHUNK = 1 << 20  # bytes copied at a time from a part into the completed object

_APPLIED = "_squeezer_streaming_multipart"


class UnsupportedMoto(RuntimeError):
    """The installed moto is not a version these patches were written and tested for."""

    def __init__(self, found: str) -> None:
        super().__init__(
            f"infra.local.moto_patches was written for moto {PINNED} (the pin in requirements-dev.txt), "
            f"but moto {found} is installed. Install the pinned version (make venv), or check the patches "
            "against the new moto's s3/models.py (FakeMultipart.complete, FakeKey.value, "
            "MultipartChecksumBuilder), run tests/infra/test_emulator_multipart.py and add the version "
            "to SUPPORTED_VERSIONS."
        )
        self.found = found


def check_version(version: str | None = None) -> None:
    """UnsupportedMoto unless ``version`` (default: the installed moto's) is one the patches support."""
    if version is None:
        import moto

        version = moto.__version__
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedMoto(version)


def apply() -> None:
    """Patch moto's S3 models in this process (idempotent); UnsupportedMoto on an unknown moto."""
    check_version()
    from moto.s3 import models

    if getattr(models, _APPLIED, False):
        return
    key_class: Any = models.FakeKey  # Any: mypy cannot follow a property reassigned on a class
    multipart_class: Any = models.FakeMultipart
    original_setter = key_class.value.fset

    def set_value(key: Any, new_value: Any) -> None:
        if isinstance(new_value, AssembledObject):
            old, key._value_buffer = key._value_buffer, new_value.take()  # noqa: SLF001 - moto's own field
            old.close()
            key.contentsize = new_value.size
            return
        if isinstance(new_value, (bytes, bytearray)) and len(new_value) > key._max_buffer_size:  # noqa: SLF001
            # Straight to the file: no in-memory stage holding the whole body first.
            key._value_buffer.rollover()  # noqa: SLF001
        original_setter(key, new_value)

    original_getter = key_class.value.fget

    def get_value(key: Any) -> Any:
        if getattr(_RANGED_GET, "on", False):
            return LazyValue(key)
        return original_getter(key)

    key_class.value = property(get_value, set_value)
    multipart_class.complete = _complete
    _read_only_the_range()
    _break_request_cycle()
    _cheap_sqs_clock()
    _item_rollback_transactions()
    _remember_backends_by_host()
    _plain_json_reads()
    _partition_queries()
    setattr(models, _APPLIED, True)


_RANGED_GET = threading.local()
_SIMPLE_RANGE = re.compile(r"^bytes=\d*-\d*$")


class LazyValue:
    """A key's bytes, read from its file only where sliced: what a ranged GET answers with.

    moto answers a GET with ``key.value`` (the whole object, read into
    memory) and then slices the requested range out of it: a 1 KiB range
    of a 6 GiB object cost 6 GiB and seconds. During a GET with one byte
    range, ``key.value`` is this instead; ``len()`` is the object's size and
    a slice reads just those bytes. Anything else the GET would do with it
    gets the whole bytes (:meth:`read_all`), as before.
    """

    def __init__(self, key: Any) -> None:
        self._key = key

    def __len__(self) -> int:
        return int(self._key.contentsize)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, item: slice) -> bytes:
        if not isinstance(item, slice):
            raise TypeError("a LazyValue is read by slices")
        start, stop, step = item.indices(len(self))
        if step != 1:
            raise TypeError("a LazyValue is read by contiguous slices")
        with self._key.lock:
            buffer = self._key._value_buffer  # noqa: SLF001 - moto's own field
            buffer.seek(start)
            data: bytes = buffer.read(max(0, stop - start))
        return data

    def read_all(self) -> bytes:
        return self[0 : len(self)]


def _read_only_the_range() -> None:
    """A GET with one byte range reads only that range of the object's file (see LazyValue)."""
    from moto.s3 import responses

    response_class: Any = responses.S3Response
    original = response_class.key_response

    def key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        wanted = request.headers.get("range") or ""
        _RANGED_GET.on = request.method == "GET" and bool(_SIMPLE_RANGE.match(wanted.replace(" ", "")))
        try:
            status, response_headers, content = original(self, request, full_url, headers)
        finally:
            _RANGED_GET.on = False
        if isinstance(content, LazyValue):  # a range moto answers as a whole GET (as S3 does for some)
            content = content.read_all()
        return status, response_headers, content

    response_class.key_response = key_response


def _break_request_cycle() -> None:
    """Free each request's body when its request ends, not at the next cyclic garbage collection.

    moto's server runs its Flask apps with ``debug = True``; in debug mode
    Flask's ``Request._load_form_data`` gives ``request.files`` a class made
    for that request whose ``__getitem__`` closes over the request (only to
    word a KeyError better): request -> files -> class -> function -> request.
    The body (``request.data``, a part of up to a few hundred MiB) then lives
    until the garbage collector's next pass: a 64 MiB part at a time, RSS grew
    by 0.5 to 0.9 GB before it fell back. Flask imports the helper when it
    calls it, so replacing it in its module is enough.
    """
    from flask import debughelpers

    if hasattr(debughelpers, "attach_enctype_error_multidict"):
        debughelpers.attach_enctype_error_multidict = _keep_files_as_they_are


def _cheap_sqs_clock() -> None:
    """Receiving from a long queue no longer costs moto's CPU per message held (issue 14).

    moto's SQS asks, for every message it hands out, whether the message is
    within its queue's retention period by computing ALL the queue's
    attributes three times: each count (visible, delayed, in flight) walks
    every message, and each message's ``visible`` and ``delayed`` build two
    datetimes to read the clock. With 1,000 small files queued, a receive of
    10 messages cost about 30,000 datetime computations; a py-spy profile of
    the emulator during benchmark 6 put 46% of its CPU in ``Queue.attributes``.
    Here the retention check reads the one attribute it needs, and the clock
    is ``time.time()`` (what ``unix_time_millis`` computes, without the
    datetimes). Same answers, same order.
    """
    import time

    from moto.sqs import models as sqs

    message: Any = sqs.Message
    backend: Any = sqs.SQSBackend
    message.visible = property(lambda m: time.time() * 1000.0 > m.visible_at)
    message.delayed = property(lambda m: time.time() * 1000.0 < m.delayed_until)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


_IN_TRANSACTION = threading.local()


def _item_rollback_transactions() -> None:
    """A DynamoDB transaction costs moto the items it names, not a copy of the whole table (issue 14).

    moto's ``transact_write_items`` deep-copies every table a transaction
    names before it starts, to put the copy back if the transaction is
    cancelled: with thousands of files in the job table, each worker batch's
    one TransactWriteItems (``DynamoJobStore.complete_files``) copied them
    all. Here moto's own code runs with that copy made an identity (only
    inside a transaction, on this thread), and the items the transaction
    names are backed up instead and put back, in reverse order, when moto
    raises: the same all-or-nothing answers, at the cost of the items named.
    """
    import copy

    from moto.dynamodb import models as ddb

    backend: Any = ddb.DynamoDBBackend
    original = backend.transact_write_items
    table_class = ddb.Table

    class _Copy:
        """``copy`` as moto's dynamodb models module sees it: a table is not copied inside a transaction."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if getattr(_IN_TRANSACTION, "on", False) and isinstance(value, table_class):
                return value
            return copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            try:
                _, op = next(iter(entry.items()))
                table = self.tables[op["TableName"]]
                key = op["Key"] if "Key" in op else _key_of(table, op["Item"])
                hash_value, range_value = self.get_keys_value(table, key)
                old = table.get_item(hash_value, range_value)
            except Exception:  # noqa: BLE001, S112 - moto refuses this entry itself; nothing of it is written
                continue
            saved.append((table, hash_value, range_value, copy.deepcopy(old)))
        _IN_TRANSACTION.on = True
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, old in reversed(saved):
                _put_back(table, hash_value, range_value, old)
            raise
        finally:
            _IN_TRANSACTION.on = False

    ddb.copy = _Copy()  # type: ignore[assignment]  # moto's module reads copy.deepcopy through this name
    backend.transact_write_items = transact_write_items


# DynamoDB reads whose answers are items: written as JSON directly (_plain_json_reads).
PLAIN_JSON_READS = frozenset({"Query", "Scan", "GetItem", "BatchGetItem"})


def _plain_json_reads() -> None:
    """DynamoDB's item-heavy answers as plain JSON, the bytes moto's serializer would give (issue 14).

    moto 5.2.5 turns every answer into the wire format through a generic,
    model-driven serializer that looks up each member of each attribute value
    in the service model: about 1.5 ms of CPU per item returned. For these
    reads the result moto builds is already the wire format, except binary
    values (raw bytes, base64 on the wire): ``json.dumps`` with that one
    conversion gives the same document (tests/infra/test_emulator_dynamodb.py
    compares the two on every attribute type, pages, projections and indexes).
    Errors and every other action still go through moto's serializer.
    """
    import json

    from moto.dynamodb import responses as ddb_responses

    handler: Any = ddb_responses.DynamoHandler
    original = handler.serialized
    result_class = ddb_responses.DynamoResult

    def as_base64(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode("ascii")
        raise TypeError(f"not JSON serializable: {type(value).__name__}")

    def serialized(self: Any, action_result: Any) -> Any:
        if type(action_result) is result_class and self._get_action() in PLAIN_JSON_READS:
            body = json.dumps(action_result.result, default=as_base64)
            headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
            return 200, headers, body
        return original(self, action_result)

    handler.serialized = serialized


_PARTITION = threading.local()  # (table, hash key) of the Query running on this thread


def _partition_queries() -> None:
    """A Query on a table's key reads the one partition it names (issue 14).

    moto's ``Table.query`` (without an index) filters ``all_items()``: a list
    of every item in the table, sorted by hash and range key, built for each
    query. The local stack's job table holds every job's file records, so
    each ``GET /jobs/{id}`` and each worker's read of a job sorted them all.
    Here, inside such a query (on this thread), ``all_items`` returns the
    named partition's items in range-key order: the items moto's filter
    would have kept, in the same order. Index queries and scans are moto's own.
    """
    from moto.dynamodb.models import table as ddb_table

    table_class: Any = ddb_table.Table
    original_query = table_class.query
    original_all_items = table_class.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or not self.range_key_attr or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        _PARTITION.current = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _PARTITION.current = None

    def all_items(self: Any) -> list[Any]:
        current = getattr(_PARTITION, "current", None)
        if current is None or current[0] is not self:
            return list(original_all_items(self))
        partition = self.items.get(current[1], {})  # .get: the defaultdict gains no key
        return sorted(partition.values(), key=lambda item: item.range_key)

    table_class.query = query
    table_class.all_items = all_items


def _key_of(table: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _put_back(table: Any, hash_value: Any, range_value: Any, old: Any) -> None:
    """An item as it was before a cancelled transaction (None: it did not exist)."""
    if old is None:
        table.delete_item(hash_value, range_value)
    elif range_value is not None:
        table.items[hash_value][range_value] = old
    else:
        table.items[hash_value] = old


def _remember_backends_by_host() -> None:
    """Find a request's backend from its host once per host, not once per request (issue 14).

    moto's server picks the Flask app of every request in
    ``DomainDispatcherApplication.get_application``, holding one lock for
    all its threads; inside, ``get_backend_for_host`` lists moto's package
    folder (``os.listdir`` plus an ``isdir`` per entry, about 250 system
    calls) and then tries the URL pattern of every backend in turn until
    one matches. A py-spy profile of the emulator while 1,000 small files
    were PUT (``aws s3 cp`` as well as ``squeezer upload``) put about a third
    of its samples in that function and on its lock. The answer depends
    only on the host string, the package's folders and the URL patterns,
    none of which change while the server runs, so it is remembered per
    host. An unknown host (``None``: moto prints a hint) is asked again each
    time, as before.
    """
    from moto.moto_server import werkzeug_app

    dispatcher: Any = werkzeug_app.DomainDispatcherApplication
    original = dispatcher.get_backend_for_host
    if getattr(original, "_squeezer_remembers", False):
        return
    known: dict[str, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host is None:
            return None
        found = known.get(host)
        if found is None:
            found = original(self, host)
            if found is not None:
                known[host] = found
        return found

    get_backend_for_host._squeezer_remembers = True  # type: ignore[attr-defined]
    dispatcher.get_backend_for_host = get_backend_for_host


def _keep_files_as_they_are(request: Any) -> None:
    """Stands in for ``flask.debughelpers.attach_enctype_error_multidict``: no per-request class, no cycle."""


def applied() -> bool:
    """Whether :func:`apply` ran in this process."""
    import sys

    models = sys.modules.get("moto.s3.models")
    return bool(models is not None and getattr(models, _APPLIED, False))


class AssembledObject:
    """A completed multipart object's bytes, in a spooled file the new key adopts as its buffer.

    It is what the patched ``FakeMultipart.complete`` returns in place of
    ``bytes``; moto hands it on to ``put_object`` and ``FakeKey(value=...)``,
    whose patched value setter takes the file over (once) without copying.
    """

    def __init__(self, buffer: IO[bytes], size: int) -> None:
        self._buffer: IO[bytes] | None = buffer
        self.size = size

    def take(self) -> IO[bytes]:
        if self._buffer is None:
            raise RuntimeError("an assembled multipart object can be adopted by one key only")
        buffer, self._buffer = self._buffer, None
        return buffer

    def __len__(self) -> int:
        return self.size

    def __del__(self) -> None:  # never adopted (put_object failed): free the file now
        if self._buffer is not None:
            self._buffer.close()


def _complete(self: Any, body: Iterable[tuple[int, str]]) -> tuple[AssembledObject, str, tuple[str, str, int] | None]:
    """``FakeMultipart.complete`` of moto 5.2.5, streaming: same checks, ETag and checksum; parts copied by chunks."""
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size
    from moto.utilities.utils import md5_hash

    parts = []
    md5s = bytearray()
    last = None
    for number, etag in body:
        part = self.parts.get(number)
        part_etag = None
        if part is not None:
            part_etag = part.etag.replace('"', "")
            etag = etag.replace('"', "")
        if part is None or part_etag != etag:
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(codecs.decode(part_etag, "hex"))
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML

    checksum = StreamingChecksum(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    size = sum(part.contentsize for part in parts)
    max_size = get_s3_default_key_buffer_size()  # what FakeKey uses when put_object gives none
    buffer = tempfile.SpooledTemporaryFile(max_size)  # noqa: SIM115 - becomes the new key's buffer
    try:
        if size > max_size:
            buffer.rollover()
        for part in parts:
            checksum.start_part()
            with part.lock:  # the lock moto's own value getter takes: one reader of the part's file at a time
                source = part._value_buffer  # noqa: SLF001 - moto's own field
                source.seek(0)
                while chunk := source.read(CHUNK):
                    checksum.update(chunk)
                    buffer.write(chunk)
            checksum.end_part()
    except BaseException:
        buffer.close()
        raise
    whole_etag = md5_hash()
    whole_etag.update(bytes(md5s))
    return AssembledObject(buffer, size), f"{whole_etag.hexdigest()}-{len(parts)}", checksum.build()


# -- checksums, fed chunk by chunk -------------------------------------------------


class _Digest:
    """One running checksum, computed exactly as moto's ``compute_checksum`` would on the whole input."""

    def __init__(self, algorithm: str) -> None:
        self._hash: Any = None
        self._crc: Callable[[bytes, int], int] | None = None
        self._value = 0
        self._width = 4
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm == "CRC32C":
            self._crc = _crc32c()
        elif algorithm == "CRC32":
            self._crc = binascii.crc32
        elif algorithm == "CRC64NVME":
            from moto.core.compat import HAS_CRT

            if HAS_CRT:  # moto's fallback without awscrt is CRC32, kept as is
                from awscrt import checksums

                self._crc, self._width = checksums.crc64nvme, 8
            else:
                self._crc = binascii.crc32
        else:
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, chunk: bytes) -> None:
        if self._crc is not None:
            self._value = self._crc(chunk, self._value)
        else:
            self._hash.update(chunk)

    def digest(self) -> bytes:
        if self._crc is not None:
            return self._value.to_bytes(self._width, "big")
        return bytes(self._hash.digest())


def _crc32c() -> Callable[[bytes, int], int]:
    try:
        import crc32c  # type: ignore[import-not-found]  # optional, as in moto
    except ImportError:  # moto falls back to CRC32 (a different value), kept as is
        return binascii.crc32
    return lambda data, value: int(crc32c.crc32c(data, value))


class StreamingChecksum:
    """moto's ``MultipartChecksumBuilder`` (same defaults, same result), fed chunks instead of whole parts.

    COMPOSITE: the checksum of the parts' checksums, with the part count.
    FULL_OBJECT: the checksum of the whole object, with a count of 1. With
    no algorithm, CRC64NVME FULL_OBJECT, as moto does.
    """

    def __init__(self, algorithm: str | None, checksum_type: str | None) -> None:
        self.algorithm = algorithm or "CRC64NVME"
        self.type = checksum_type or ("FULL_OBJECT" if self.algorithm == "CRC64NVME" else "COMPOSITE")
        self._whole = _Digest(self.algorithm) if self.type != "COMPOSITE" else None
        self._part: _Digest | None = None
        self._part_digests = bytearray()
        self.parts = 0

    def start_part(self) -> None:
        if self._whole is None:
            self._part = _Digest(self.algorithm)

    def update(self, chunk: bytes) -> None:
        (self._whole or self._part).update(chunk)  # type: ignore[union-attr]

    def end_part(self) -> None:
        if self._part is not None:
            self._part_digests.extend(self._part.digest())
            self._part = None
        self.parts += 1

    def build(self) -> tuple[str, str, int]:
        if self._whole is None:
            from moto.s3.utils import compute_checksum

            return self.type, compute_checksum(bytes(self._part_digests), self.algorithm).decode(), self.parts
        return self.type, base64.b64encode(self._whole.digest()).decode(), 1
