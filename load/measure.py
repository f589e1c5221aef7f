"""Timing helpers, the figure record and how figures are printed."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MiB = 1024 * 1024


class NullSink:
    """A sink that only counts: the codec's output goes nowhere."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def alternate(variants: dict, rounds: int, cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run every variant once per round, in turn (rotating the order), and
    return the wall times of each. Rotating keeps a slow phase of the machine
    from always landing on the same variant.

    A variant is a callable, or a ``(prepare, run)`` pair whose ``prepare``
    is not timed. If ``cpu`` is given, this process's CPU seconds (all
    threads) per run are appended to it too.
    """
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            variant = variants[name]
            if isinstance(variant, tuple):
                variant[0]()
                variant = variant[1]
            began_cpu = time.process_time()
            times[name].append(timed(variant))
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - began_cpu)
    return times


def median_ratio(numer: list[float], denom: list[float]) -> float:
    """Median over rounds of numer[i]/denom[i] (both measured in round i)."""
    return statistics.median(n / d for n, d in zip(numer, denom, strict=False))


@dataclass
class Figure:
    """One measured figure: a value, and optionally a target it must meet."""

    name: str
    label: str
    value: float
    unit: str = "x"
    target: float | None = None
    higher_is_better: bool = True
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "INFO"
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "PASS" if ok else "SHORT"

    def line(self) -> str:
        value = f"{self.value:.3f}{self.unit}" if self.unit == "x" else f"{self.value:.1f} {self.unit}"
        if self.target is None:
            goal = "(no target)"
        else:
            op = ">=" if self.higher_is_better else "<="
            t = f"{self.target:g}{self.unit}" if self.unit == "x" else f"{self.target:g} {self.unit}"
            goal = f"target {op} {t}"
        text = f"{self.verdict:5} {self.name:44} {value:>12}  {goal:22} {self.label}"
        if self.detail:
            text += f"\n      {self.detail}"
        return text


def say(*parts: object) -> None:
    """Progress and chatter: stderr, so stdout holds only the report."""
    print(*parts, file=sys.stderr, flush=True)
