"""Latency measurement: warm-up, then repeated runs within a time budget, then percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    runs: int
    warmup: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def measure_latency(
    fn: Callable[[], object],
    *,
    warmup: int = 2,
    min_runs: int = 5,
    max_runs: int = 200,
    budget_s: float = 5.0,
) -> Latency:
    """Time ``fn`` after ``warmup`` untimed calls.

    Runs at least ``min_runs`` times, then keeps going until ``budget_s`` seconds or
    ``max_runs`` runs: slow models get few runs and fast ones many, and the run count is
    reported beside the percentiles so a p99 from five runs is read for what it is.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (
        len(times) < min_runs or time.perf_counter() - start < budget_s
    ):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return summarize(times, warmup)


def summarize(times_ms: list[float], warmup: int = 0) -> Latency:
    """Percentiles of call times already measured (ms), e.g. one call per test image."""
    arr = np.asarray(times_ms)
    return Latency(
        p50_ms=float(np.percentile(arr, 50)),
        p90_ms=float(np.percentile(arr, 90)),
        p99_ms=float(np.percentile(arr, 99)),
        mean_ms=float(arr.mean()),
        runs=len(times_ms),
        warmup=warmup,
    )
