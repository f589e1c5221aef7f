"""The event-source bridge: Lambda's SQS event source mapping, on one machine.

For every queue an app function listens to, ``concurrency`` pollers
long-poll the queue, gather up to ``batch_size`` messages within the
batching window, build the event Lambda would build and invoke the SAME
handler (``app.compress(event, context)``). Afterwards only the records not
named in the returned ``batchItemFailures`` are deleted; failed ones come
back after their visibility timeout, so retries and the redrive to the
dead-letter queue (``maxReceiveCount``) behave as on AWS. If the handler
raises, nothing of the batch is deleted.

Invocations run in a process pool per function by default (codecs can hold
the GIL); ``executor="thread"`` runs them in threads of this process. As
Lambda's Python runtime does, every log line written during an invocation
carries its ``aws_request_id`` (and here its function's name), as
``[<function> <request id>]`` at the start: the log shows which invocation
did what (the fan-out e2e test counts a file's ranges' invocations so).

The ranges queue (``compress_range``, batch size 1 as the app declares it)
has its own pollers, ``range_concurrency`` of them (default 2): the bridge's
batch-size and concurrency overrides are the jobs queue's tuning and leave
it alone.

Nothing here logs a message body or a URL: bodies hold object keys only,
but the handlers' answers are not ours to print.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import faulthandler
import functools
import importlib
import logging
import math
import multiprocessing
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

log = logging.getLogger("infra.local.bridge")

SQS_MAX_BATCH = 10
DEFAULT_BATCH_SIZE = 10
DEFAULT_WINDOW_SECONDS = 1.0
# Lambda's SQS event source starts with five concurrent batches (pollers); so
# does the bridge, each batch in a process of its own. Two left the emulator
# idle between batches: 1,000 small files went at 17.8 files/s with two and
# 20.1 with four (benchmark 6 on the 2-core box, issue 14).
DEFAULT_CONCURRENCY = 5
# The ranges queue's pollers: each runs one range at a time, in a process of its own.
DEFAULT_RANGE_CONCURRENCY = 2
POLL_SECONDS = 2  # long-poll length; stopping waits at most this long for an idle poller

Handler = Callable[[dict, Any], Any]
HandlerSpec = str | Handler  # "module:attr" (importable in worker processes) or a callable


class SqsRecord(TypedDict):
    messageId: str
    receiptHandle: str
    body: str
    attributes: dict[str, str]
    messageAttributes: dict[str, dict[str, Any]]
    md5OfBody: str
    eventSource: str
    eventSourceARN: str
    awsRegion: str


class SqsEvent(TypedDict):
    Records: list[SqsRecord]


@dataclass(frozen=True)
class EventSource:
    """One function fed by one queue (an event source mapping)."""

    function_name: str
    handler: HandlerSpec
    queue_url: str
    queue_arn: str
    timeout_seconds: int = 60
    batch_size: int = DEFAULT_BATCH_SIZE
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    concurrency: int = DEFAULT_CONCURRENCY
    memory_mb: int = 128


@dataclass
class LambdaContext:
    """The part of Lambda's context object handlers use."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 128
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# -- invocation (runs in a worker process or thread) ---------------------------------

# (function name, request id) of the invocation running: in this thread (the
# thread executor), or in this whole process (a worker process runs one
# invocation at a time, so the handler's own threads are covered too).
_invocation: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("invocation", default=None)
_process_invocation: tuple[str, str] | None = None
_in_worker_process = False


class TaggedFormatter(logging.Formatter):
    """``[<function> <request id>] `` ("[- -]" outside an invocation), then the line as ``inner`` formats it."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        function, request_id = _invocation.get() or _process_invocation or ("-", "-")
        return f"[{function} {request_id}] {self.inner.format(record)}"


def tag_log_lines() -> None:
    """Every handler configured so far (the root's, and Chalice's own on the app's logger) tags its lines."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler.formatter, TaggedFormatter):
                handler.setFormatter(TaggedFormatter(handler.formatter))


@functools.cache
def _resolve(spec: str) -> Handler:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def invoke(
    handler: HandlerSpec,
    function_name: str,
    timeout_seconds: int,
    memory_mb: int,
    event: dict,
    request_id: str | None = None,
) -> Any:
    """Call one handler the way Lambda does: ``handler(event, context)``."""
    global _process_invocation
    func = _resolve(handler) if isinstance(handler, str) else handler
    context = LambdaContext(function_name, timeout_seconds, memory_mb)
    if request_id:
        context.aws_request_id = request_id
    current = (function_name, context.aws_request_id)
    token = _invocation.set(current)
    if _in_worker_process:
        _process_invocation = current
    try:
        return func(event, context)
    finally:
        _invocation.reset(token)
        if _in_worker_process:
            _process_invocation = None


def _init_worker(handler: HandlerSpec, log_level: int) -> None:
    global _in_worker_process
    _in_worker_process = True
    # The bridge decides when to stop; a terminal's Ctrl-C must not kill a
    # handler halfway through a batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
    if isinstance(handler, str):
        _resolve(handler)  # import the app once, like a Lambda cold start
    tag_log_lines()  # after the import: Chalice gives the app's logger a handler of its own


# -- the bridge ----------------------------------------------------------------


class Bridge:
    """Feeds queues to handlers as Lambda would. ``start()``, then ``stop()``."""

    def __init__(
        self,
        sqs: Any,
        sources: Iterable[EventSource],
        *,
        region: str = "us-east-1",
        executor: str = "process",
        poll_seconds: int = POLL_SECONDS,
    ) -> None:
        if executor not in ("process", "thread"):
            raise ValueError(f"executor must be 'process' or 'thread', not {executor!r}")
        self._sqs = sqs
        self.sources = list(sources)
        self._region = region
        self._executor_kind = executor
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pools: dict[str, cf.Executor] = {}
        self._pool_lock = threading.Lock()
        self.invocations = 0
        self.errors = 0

    # -- life cycle -------------------------------------------------------
    def start(self) -> Bridge:
        for source in self.sources:
            self._pools[source.function_name] = self._make_pool(source)
            for n in range(source.concurrency):
                thread = threading.Thread(
                    target=self._poll_loop, args=(source,), name=f"poll-{source.function_name}-{n}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        log.info(
            "bridge started: %s (%s executor)",
            ", ".join(
                f"{s.function_name}<-{s.queue_arn.rsplit(':', 1)[-1]} batch={s.batch_size} "
                f"window={s.window_seconds}s concurrency={s.concurrency}"
                for s in self.sources
            ),
            self._executor_kind,
        )
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling, let running invocations finish, release what was not handed over."""
        self._stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning("pollers still busy at stop: %s", ", ".join(stuck))
        with self._pool_lock:
            for pool in self._pools.values():
                pool.shutdown(wait=not stuck, cancel_futures=True)
            self._pools.clear()
        self._threads.clear()
        log.info("bridge stopped after %d invocation(s), %d raised", self.invocations, self.errors)

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until ``stop()`` is called (from a signal handler, say)."""
        while not self._stop.wait(0.5):
            pass

    def request_stop(self, *_: object) -> None:
        """Signal-handler friendly: only sets a flag."""
        self._stop.set()

    def _replace_pool(self, source: EventSource, broken: cf.Executor) -> None:
        with self._pool_lock:
            if self._pools.get(source.function_name) is broken and not self._stop.is_set():
                self._pools[source.function_name] = self._make_pool(source)
                broken.shutdown(wait=False, cancel_futures=True)

    def _make_pool(self, source: EventSource) -> cf.Executor:
        if self._executor_kind == "thread":
            return cf.ThreadPoolExecutor(source.concurrency, thread_name_prefix=source.function_name)
        # spawn, not fork: this process has threads (pollers, boto3) by now.
        return cf.ProcessPoolExecutor(
            source.concurrency,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(source.handler, logging.getLogger().getEffectiveLevel()),
        )

    # -- one poller -------------------------------------------------------------
    def _poll_loop(self, source: EventSource) -> None:
        while not self._stop.is_set():
            try:
                messages = self._collect(source)
                if messages and self._stop.is_set():
                    self._release(source, messages)
                elif messages:
                    self._deliver(source, messages)
            except Exception:  # noqa: BLE001 - the emulator restarting, say: SQS redelivers, retry soon
                log.exception("polling %s failed", source.queue_arn)
                self._stop.wait(1.0)

    def _collect(self, source: EventSource) -> list[dict]:
        """Up to ``batch_size`` messages: the first long poll, then until the window closes."""
        messages = self._receive(source, min(source.batch_size, SQS_MAX_BATCH), self._poll_seconds)
        if not messages:
            return []
        closes = time.monotonic() + source.window_seconds
        while len(messages) < source.batch_size and not self._stop.is_set():
            left = closes - time.monotonic()
            if left <= 0:
                break
            wanted = min(source.batch_size - len(messages), SQS_MAX_BATCH)
            messages += self._receive(source, wanted, min(20, math.ceil(left)))
        return messages

    def _receive(self, source: EventSource, count: int, wait: int) -> list[dict]:
        response = self._sqs.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _deliver(self, source: EventSource, messages: list[dict]) -> None:
        event = build_event(messages, source.queue_arn, self._region)
        began = time.monotonic()
        self.invocations += 1
        request_id = str(uuid.uuid4())
        try:
            pool = self._pools[source.function_name]
            future = pool.submit(
                invoke,
                source.handler,
                source.function_name,
                source.timeout_seconds,
                source.memory_mb,
                event,
                request_id,
            )
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - as on Lambda: the whole batch comes back
            self.errors += 1
            log.exception("%s raised; none of its %d message(s) deleted", source.function_name, len(messages))
            if isinstance(exc, cf.process.BrokenProcessPool):
                self._replace_pool(source, pool)  # a worker process died (OOM, say): a fresh "container"
            return
        took = time.monotonic() - began
        if took > source.timeout_seconds:
            log.warning(
                "%s ran %.1fs, longer than its %ds timeout (Lambda would have stopped it)",
                source.function_name,
                took,
                source.timeout_seconds,
            )
        failed = failed_message_ids(result, [m["MessageId"] for m in messages])
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(source, done)
        log.info(
            "%s (invocation %s): %d message(s) in %.2fs, %d done, %d to retry",
            source.function_name,
            request_id,
            len(messages),
            took,
            len(done),
            len(failed),
        )

    def _delete(self, source: EventSource, messages: list[dict]) -> None:
        for start in range(0, len(messages), SQS_MAX_BATCH):
            chunk = messages[start : start + SQS_MAX_BATCH]
            response = self._sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                log.error(
                    "could not delete message %s: %s", chunk[int(failure["Id"])]["MessageId"], failure.get("Code")
                )

    def _release(self, source: EventSource, messages: list[dict]) -> None:
        """Stopping: make messages received but never handed over visible again at once."""
        try:
            self._sqs.change_message_visibility_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages)
                ],
            )
        except Exception:  # noqa: BLE001 - they still return after the visibility timeout
            log.exception("could not release %d message(s) at stop", len(messages))


# -- the wire shapes -----------------------------------------------------------------


def build_event(messages: list[dict], queue_arn: str, region: str) -> SqsEvent:
    """The event Lambda passes for SQS messages (``ReceiveMessage`` output in)."""
    return {"Records": [_record(m, queue_arn, region) for m in messages]}


def _record(message: Mapping[str, Any], queue_arn: str, region: str) -> SqsRecord:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(result: Any, message_ids: list[str]) -> set[str]:
    """Which messages to keep, read from a handler's answer as Lambda reads it.

    No answer or no ``batchItemFailures``: all succeeded. An identifier that
    is empty or not in the batch makes Lambda treat the whole batch as failed.
    """
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failed = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in result["batchItemFailures"]}
    if not failed <= set(message_ids):
        log.error("batchItemFailures names messages not in the batch; keeping the whole batch")
        return set(message_ids)
    return failed  # type: ignore[return-value]


# -- the app's event sources -------------------------------------------------------------


def app_event_sources(sqs: Any, options: Any, *, app_module: str = "app", stage: str = "local") -> list[EventSource]:
    """An EventSource for every ``@app.on_sqs_message`` of the Chalice app.

    Queue names, batch sizes, windows and concurrency come from the
    decorators (which read the stage's environment); ``options``
    (:class:`infra.local.config.BridgeOptions`) overrides them, but for the
    ranges queue's function: its batch size stays the app's (one range per
    invocation) and its pollers are ``options.range_concurrency``.
    """
    from chalice.app import SQSEventConfig

    from infra.resources import RANGES_FUNCTION

    from .config import function_timeout

    module = importlib.import_module(app_module)
    sources = []
    for config in module.app.event_sources:
        if not isinstance(config, SQSEventConfig):
            continue
        url = sqs.get_queue_url(QueueName=config.queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if config.name == RANGES_FUNCTION:
            batch_size = config.batch_size or 1
            window = 0.0  # one message: nothing to wait for
            concurrency = options.range_concurrency or DEFAULT_RANGE_CONCURRENCY
        else:
            batch_size = options.batch_size or config.batch_size or DEFAULT_BATCH_SIZE
            window = (
                options.window_seconds
                if options.window_seconds is not None
                else config.maximum_batching_window_in_seconds or DEFAULT_WINDOW_SECONDS
            )
            concurrency = options.concurrency or config.maximum_concurrency or DEFAULT_CONCURRENCY
        sources.append(
            EventSource(
                function_name=config.name,
                handler=f"{app_module}:{config.handler_string.rsplit('.', 1)[-1]}",
                queue_url=url,
                queue_arn=arn,
                timeout_seconds=function_timeout(config.name, stage),
                batch_size=batch_size,
                window_seconds=window,
                concurrency=concurrency,
            )
        )
    return sources


def main(options: Any | None = None) -> int:
    """Run the bridge for the app until SIGINT or SIGTERM (``python -m infra.local bridge``)."""
    import os

    import boto3

    from .config import REGION, BridgeOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack to the log
    options = options or BridgeOptions.from_env()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
    sqs = boto3.session.Session().client("sqs", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    bridge = Bridge(sqs, app_event_sources(sqs, options), region=region, executor=options.executor)
    tag_log_lines()  # the app is imported by now (its handlers run here with the thread executor)
    signal.signal(signal.SIGTERM, bridge.request_stop)
    signal.signal(signal.SIGINT, bridge.request_stop)
    bridge.start()
    bridge.wait()
    bridge.stop()
    return 0
