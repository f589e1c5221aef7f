"""The speed table and the time budget of POST /jobs."""
import pytest

from chalicelib import throughput
from chalicelib.domain import Algorithm

GiB = 1024**3
BUDGET = throughput.budget_seconds(900, 30_000)


def test_the_table_has_every_level_of_every_algorithm_and_slows_with_the_level():
    for algorithm in Algorithm:
        low, high = algorithm.level_range
        row = throughput.SPEEDS[algorithm]
        assert sorted(row) == list(range(low, high + 1))
        speeds = [row[level] for level in sorted(row)]
        assert all(s > 0 for s in speeds) and speeds == sorted(speeds, reverse=True)


def test_budget_is_the_worker_time_less_its_margin_times_the_safety_factor():
    assert BUDGET == (900 - 30) * throughput.SAFETY
    assert throughput.budget_seconds(10, 30_000) == 0


def test_estimate_scales_with_size():
    one = throughput.estimate_seconds(Algorithm.GZIP, 6, GiB)
    assert throughput.estimate_seconds(Algorithm.GZIP, 6, 2 * GiB) == pytest.approx(2 * one)


@pytest.mark.parametrize(("algorithm", "level"), [(Algorithm.BROTLI, 9), (Algorithm.BROTLI, 11), (Algorithm.ZSTD, 19)])
def test_five_gib_at_a_slow_level_does_not_fit_and_the_advice_fits(algorithm, level):
    too_slow = throughput.check(algorithm, level, 5 * GiB, BUDGET)
    assert too_slow is not None and too_slow.seconds > BUDGET
    assert too_slow.same_algorithm_level is not None and too_slow.same_algorithm_level < level
    assert throughput.check(algorithm, too_slow.same_algorithm_level, 5 * GiB, BUDGET) is None
    assert throughput.check(algorithm, too_slow.same_algorithm_level + 1, 5 * GiB, BUDGET) is not None
    assert f"{algorithm.value} level {too_slow.same_algorithm_level} or lower" in too_slow.advice(algorithm)


def test_five_gib_at_zstd_3_fits():
    assert throughput.check(Algorithm.ZSTD, 3, 5 * GiB, BUDGET) is None


def test_another_algorithm_is_named_when_no_level_of_this_one_fits():
    size = throughput.largest_size(Algorithm.GZIP, 1, BUDGET) + 1
    too_slow = throughput.check(Algorithm.GZIP, 9, size, BUDGET)
    assert too_slow.same_algorithm_level is None and too_slow.other[0] is Algorithm.ZSTD
    assert throughput.check(*too_slow.other, size, BUDGET) is None
    assert "use zstd level" in too_slow.advice(Algorithm.GZIP)
