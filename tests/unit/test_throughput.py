"""The speed table and the time budget of POST /jobs (chalicelib/throughput.py)."""

import pytest
import zstandard

from chalicelib import throughput
from chalicelib.domain import Algorithm

MiB, GiB = 1024**2, 1024**3
BUDGET = throughput.budget_seconds(900, 30_000)  # the production worker: 900 s timeout, 30 s stop margin
ALL_LEVELS = [(a, lvl) for a in Algorithm for lvl in range(a.level_range[0], a.level_range[1] + 1)]


def test_the_table_has_every_level_of_every_algorithm_and_nothing_else():
    assert set(throughput.SPEEDS) == set(Algorithm)
    for algorithm in Algorithm:
        low, high = algorithm.level_range
        assert sorted(throughput.SPEEDS[algorithm]) == list(range(low, high + 1))


def test_speeds_are_positive_and_never_faster_at_a_higher_level():
    for algorithm, row in throughput.SPEEDS.items():
        speeds = [row[level] for level in sorted(row)]
        assert all(isinstance(s, float) and s > 0 for s in speeds)
        assert speeds == sorted(speeds, reverse=True), algorithm


def test_speeds_are_sensible_for_one_core():
    zstd, brotli, gzip = (throughput.SPEEDS[a] for a in (Algorithm.ZSTD, Algorithm.BROTLI, Algorithm.GZIP))
    # nothing on one core gets through compress + verify at 1 GB/s, and the slowest levels are slow
    assert max(max(row.values()) for row in throughput.SPEEDS.values()) < 1000
    assert zstd[22] < 2 and brotli[11] < 2
    # the fast ends are an order of magnitude faster than the slow ends
    assert zstd[1] > 10 * zstd[19] and brotli[1] > 10 * brotli[11] and gzip[1] > 2 * gzip[9]
    # zstd's default is faster than brotli's and gzip's defaults
    assert zstd[3] >= brotli[5] and zstd[3] >= gzip[6]


def test_budget_is_the_worker_time_less_its_margin_times_the_safety_factor():
    assert BUDGET == (900 - 30) * throughput.SAFETY
    assert 0 < throughput.SAFETY <= 0.5
    assert throughput.budget_seconds(10, 30_000) == 0


@pytest.mark.parametrize(("algorithm", "level"), ALL_LEVELS)
def test_estimate_scales_with_size(algorithm, level):
    one = throughput.estimate_seconds(algorithm, level, GiB)
    assert one > 0
    assert throughput.estimate_seconds(algorithm, level, 2 * GiB) == pytest.approx(2 * one)
    assert throughput.estimate_seconds(algorithm, level, 0) == 0


def test_threads_speed_up_zstd_conservatively_and_nothing_else():
    size = 4 * GiB
    one = throughput.estimate_seconds(Algorithm.ZSTD, 3, size)
    two = throughput.estimate_seconds(Algorithm.ZSTD, 3, size, threads=2)
    assert two == pytest.approx(one / (2 * throughput.ZSTD_THREAD_EFFICIENCY))
    assert one / 2 < two < one  # faster, never the full 2x
    for algorithm, level in ((Algorithm.BROTLI, 5), (Algorithm.GZIP, 6)):
        assert throughput.estimate_seconds(algorithm, level, size, threads=2) == throughput.estimate_seconds(
            algorithm, level, size
        )


def test_zstd_threads_count_only_for_whole_jobs_of_four_windows():
    # level 19 keeps an 8 MiB window: 32 MiB jobs; a 40 MiB file is one job, one thread busy
    assert zstandard.ZstdCompressionParameters.from_level(19).window_log == 23
    one = throughput.estimate_seconds(Algorithm.ZSTD, 19, 40 * MiB)
    assert throughput.estimate_seconds(Algorithm.ZSTD, 19, 40 * MiB, threads=2) == one
    assert throughput.estimate_seconds(Algorithm.ZSTD, 19, 64 * MiB, threads=2) < 2 * one


def test_worker_threads_follow_the_worker_rule():
    assert throughput.worker_threads(64 * MiB, compress_threads=2, threads_min_size=64 * MiB) == 2
    assert throughput.worker_threads(64 * MiB - 1, compress_threads=2, threads_min_size=64 * MiB) == 1
    assert throughput.worker_threads(GiB, compress_threads=1, threads_min_size=64 * MiB) == 1


def test_five_gib_at_brotli_9_does_not_fit_900_s():
    too_slow = throughput.check_fits(Algorithm.BROTLI, 9, 5 * GiB, budget_seconds=BUDGET, threads=2)
    assert too_slow is not None and too_slow.seconds > BUDGET
    # the issue's own sum: 5 GiB at brotli 9 is over an hour, far past even the whole 900 s
    assert throughput.estimate_seconds(Algorithm.BROTLI, 9, 5 * GiB) > 900


def test_five_gib_at_zstd_3_fits():
    assert throughput.check_fits(Algorithm.ZSTD, 3, 5 * GiB, budget_seconds=BUDGET) is None
    assert throughput.check(Algorithm.ZSTD, 3, 5 * GiB, BUDGET) is None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("algorithm", "level"),
    [(Algorithm.BROTLI, 9), (Algorithm.BROTLI, 11), (Algorithm.ZSTD, 19), (Algorithm.ZSTD, 22), (Algorithm.GZIP, 9)],
)
def test_the_suggestions_really_fit_and_are_the_highest_that_do(algorithm, level, threads):
    size = 5 * GiB
    too_slow = throughput.check_fits(algorithm, level, size, budget_seconds=BUDGET, threads=threads)
    if too_slow is None:
        return  # gzip 9 may fit; the others cannot
    assert (too_slow.algorithm, too_slow.level, too_slow.size) == (algorithm, level, size)
    same = too_slow.same_algorithm_level
    if same is not None:
        assert same < level
        assert throughput.check_fits(algorithm, same, size, budget_seconds=BUDGET, threads=threads) is None
        assert throughput.check_fits(algorithm, same + 1, size, budget_seconds=BUDGET, threads=threads) is not None
        assert f"use {algorithm.value} level {same} or lower" in too_slow.advice()
    assert too_slow.other is not None and too_slow.other[0] is not algorithm
    assert throughput.check_fits(*too_slow.other, size, budget_seconds=BUDGET, threads=threads) is None
    if algorithm is not Algorithm.ZSTD:
        assert too_slow.other[0] is Algorithm.ZSTD  # zstd is the preferred alternative


def test_another_algorithm_is_named_when_no_level_of_this_one_fits():
    size = throughput.largest_size(Algorithm.GZIP, 1, BUDGET) + MiB
    too_slow = throughput.check_fits(Algorithm.GZIP, 9, size, budget_seconds=BUDGET)
    assert too_slow.same_algorithm_level is None and too_slow.other[0] is Algorithm.ZSTD
    assert throughput.check_fits(*too_slow.other, size, budget_seconds=BUDGET) is None
    assert too_slow.advice() == f"use zstd level {too_slow.other[1]} or lower"


def test_nothing_fits_asks_to_split_the_file():
    too_slow = throughput.check_fits(Algorithm.ZSTD, 3, 10**15, budget_seconds=BUDGET)
    assert too_slow.same_algorithm_level is None and too_slow.other is None
    assert too_slow.advice() == "split the file into smaller files"


def test_the_message_names_the_file_its_size_the_estimate_the_budget_and_what_fits():
    too_slow = throughput.check_fits(Algorithm.BROTLI, 9, 5 * GiB, budget_seconds=BUDGET)
    message = too_slow.message("logs/big.bin")
    assert message.startswith("logs/big.bin (5.0 GiB) would take about ")
    assert f"{too_slow.seconds:,.0f} s to compress with brotli level 9" in message
    assert f"more than the worker's budget of {BUDGET:,.0f} s; use brotli level " in message
    assert message.endswith(f", or zstd level {too_slow.other[1]} or lower")


def test_advice_keeps_the_first_api_that_service_py_calls():
    too_slow = throughput.check(Algorithm.BROTLI, 11, 5 * GiB, BUDGET)
    assert too_slow.advice(Algorithm.BROTLI) == too_slow.advice()
    assert throughput.Suggestion is throughput.TooSlow


def test_format_size():
    assert throughput.format_size(5 * GiB) == "5.0 GiB"
    assert throughput.format_size(300 * MiB) == "300.0 MiB"
    assert throughput.format_size(1536) == "1.5 KiB"
    assert throughput.format_size(12) == "12 bytes"
