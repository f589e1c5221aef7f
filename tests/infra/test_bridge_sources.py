"""The local bridge's event sources, as app.py declares them, and the request id on an invocation's log lines."""

from __future__ import annotations

import logging
import threading

import boto3

from infra.local import bridge
from infra.local.config import BridgeOptions
from infra.resources import stage_config

CFG = stage_config("test")


def test_the_ranges_queue_has_its_own_pollers_one_message_per_invocation(moto_aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    # the jobs queue's tuning (a test stack's batch size, say) leaves the ranges queue alone
    options = BridgeOptions(batch_size=7, window_seconds=0.5, concurrency=3)
    sources = {s.function_name: s for s in bridge.app_event_sources(sqs, options, stage="test")}
    assert set(sources) == {"compress", "compress_range", "dead_letters"}
    jobs, ranges = sources["compress"], sources["compress_range"]
    assert (jobs.batch_size, jobs.concurrency, jobs.window_seconds) == (7, 3, 0.5)
    assert jobs.queue_url == moto_aws.queue_url
    assert (ranges.batch_size, ranges.concurrency) == (1, bridge.DEFAULT_RANGE_CONCURRENCY) == (1, 2)
    assert ranges.queue_url == moto_aws.ranges_queue_url and ranges.queue_arn == moto_aws.ranges_queue_arn
    assert ranges.queue_url.endswith(f"/{CFG.ranges_queue}")
    assert ranges.handler == "app:compress_range" and ranges.timeout_seconds == jobs.timeout_seconds == 60
    more = {s.function_name: s for s in bridge.app_event_sources(sqs, BridgeOptions(range_concurrency=4), stage="test")}
    assert more["compress_range"].concurrency == 4 and more["compress"].concurrency == bridge.DEFAULT_CONCURRENCY


def test_bridge_options_read_the_range_concurrency_from_the_environment():
    options = BridgeOptions.from_env({"SQUEEZER_BRIDGE_RANGE_CONCURRENCY": "3"})
    assert options.range_concurrency == 3
    assert options.environment()["SQUEEZER_BRIDGE_RANGE_CONCURRENCY"] == "3"
    assert BridgeOptions.from_env({}).range_concurrency is None


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_every_log_line_of_an_invocation_carries_its_function_and_request_id():
    lines = _Lines()
    log = logging.getLogger("squeezer.test-bridge")
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    bridge.tag_log_lines()  # as the bridge does once the app is imported: every handler tags its lines
    assert isinstance(lines.formatter, bridge.TaggedFormatter)
    bridge.tag_log_lines()  # twice: tagged once
    assert not isinstance(lines.formatter.inner, bridge.TaggedFormatter)

    def handler(event, context):
        log.info("working on %d record(s)", len(event["Records"]))
        return context.aws_request_id

    try:
        seen = bridge.invoke(handler, "compress_range", 30, 128, {"Records": [{}]}, "req-1")
        other = bridge.invoke(handler, "compress", 30, 128, {"Records": []})
        log.info("between invocations")
        # invocations on two threads at once (the thread executor) keep their own ids
        gate = threading.Barrier(2)

        def waiting(event, context):
            gate.wait(5)
            log.info("side by side")

        threads = [
            threading.Thread(target=bridge.invoke, args=(waiting, "compress_range", 30, 128, {}, f"t-{n}"))
            for n in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        log.removeHandler(lines)
    assert seen == "req-1"
    assert lines.lines[:3] == [
        "[compress_range req-1] working on 1 record(s)",
        f"[compress {other}] working on 0 record(s)",
        "[- -] between invocations",
    ]
    assert sorted(lines.lines[3:]) == ["[compress_range t-0] side by side", "[compress_range t-1] side by side"]
