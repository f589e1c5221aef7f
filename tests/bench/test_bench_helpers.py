"""Unit tests of the benchmark helpers of items 5-7 (no stack, no network)."""

from __future__ import annotations

import math
from pathlib import Path

from load import api_bench, e2e_bench
from load.bench import figure_names

STATS_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,POST /jobs (100 files),14,0,2000,1930.1,900,3825,40000,2.3,0.0,2000,2100,2500,2600,3000,3800,3800,3800,3800,3800,3800
GET,GET /jobs/{id},14,1,1300,1372.0,800,1762,30000,2.3,0.1,1300,1400,1500,1600,1700,1800,1800,1800,1800,1800,1800
,Aggregated,28,1,1500,1650,800,3825,35000,4.6,0.1,1500,1700,2000,2100,2600,3000,3800,3800,3800,3800,3800
"""


def test_parse_locust_stats(tmp_path: Path):
    path = tmp_path / "api_stats.csv"
    path.write_text(STATS_CSV)
    rows = api_bench.parse_stats(path)
    assert rows["POST /jobs (100 files)"]["rps"] == 2.3
    assert rows["GET /jobs/{id}"]["failures"] == 1
    assert rows["GET /jobs/{id}"]["p99"] == 1800
    assert rows["Aggregated"]["requests"] == 28


def test_percentile_interpolates():
    values = [float(v) for v in range(1, 101)]
    assert e2e_bench.percentile(values, 50) == 50.5
    assert e2e_bench.percentile(values, 99) == 99.01
    assert math.isnan(e2e_bench.percentile([], 50))


def test_cli_polls_follow_the_client_backoff():
    assert e2e_bench.cli_polls(0) == 1
    assert e2e_bench.cli_polls(0.5) == 2
    # 0.5 + 0.75 + 1.125 + 1.69 + 2.53 + 3.8 = 10.4 s after six waits
    assert e2e_bench.cli_polls(10) == 7
    assert e2e_bench.cli_polls(60) < 20


def test_cost_model_counts_every_line():
    run = {"files": 10, "bytes_in": 10 * 100 * 1024 * 1024, "seconds": 30.0}
    measured = {
        "small": {"files": 1000, "bytes_in": 10_000_000, "seconds": 80.0},
        "large": run,
        "small_mean_size": 10_000.0,
        "small_worker_s_per_file": 0.1,
        "large_worker_s_per_gib": 10.0,
        "file_item": 500.0,
        "api_seconds": {"post_100": 0.2, "get": 0.1},
    }
    figures, detail = e2e_bench.cost_model(measured)
    per_1000 = detail["per_1000_small"]
    # batch put 1, claim 1, the completion in the batch's transaction 2 (items under 1 KB), at $0.625 per million
    assert math.isclose(per_1000["DynamoDB writes (4 WRU per file)"], 1000 * 4 * 0.625e-6)
    assert "DynamoDB writes (3 WRU per file)" in detail["per_gib"]  # a large file's completion is no transaction
    # the API's measured seconds, not constants: twice the seconds, twice the API's GB-s
    slower = e2e_bench.cost_model({**measured, "api_seconds": {"post_100": 0.4, "get": 0.2}})[1]["per_1000_small"]
    assert math.isclose(slower["Lambda API GB-s"], 2 * per_1000["Lambda API GB-s"])
    # one upload PUT and one result PUT per small file
    assert math.isclose(per_1000["S3 PUT-class (upload, result)"], 2000 * 0.005 / 1000)
    # 0.1 s at 3538 MB per file
    assert math.isclose(per_1000["Lambda worker GB-s"], 1000 * 0.1 * 3538 / 1024 * 0.0000166667)
    assert [f.name for f in figures] == ["cost.per_1000_small", "cost.per_gb"]
    assert figures[0].value == sum(per_1000.values()) * 1000


def test_new_figures_are_listed():
    names = figure_names("stack")
    for name in ("upload.small", "upload.large", "e2e.small_files_per_s", "api.errors", "cost.per_gb"):
        assert name in names
    assert set(names) <= set(figure_names())


def test_pipeline_bench_times_the_emulator_per_variant_and_keeps_prepare_untimed():
    from load import pipeline_bench
    from load.bench import FULL, QUICK

    calls = []
    cpu = pipeline_bench._EmulatorCpu()
    plain = cpu.wrap("codec", lambda: calls.append("codec"))
    prepare, run = cpu.wrap("worker", (lambda: calls.append("prepare"), lambda: calls.append("worker")))
    plain(), prepare(), run()
    assert calls == ["codec", "prepare", "worker"]
    assert set(cpu.seconds) == {"codec", "worker"} and all(s >= 0 for s in cpu.seconds["worker"])
    assert "pipeline.emulator_cpu" in figure_names("pipeline")
    assert FULL.pipeline_size == 200 * 1024**2 and QUICK.pipeline_size < FULL.pipeline_size  # issue 14's object
