"""Small helpers for latency percentiles and throughput."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Latency:
        ordered = sorted(samples_ms)
        if not ordered:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return cls(len(ordered), pick(0.50), pick(0.99), ordered[-1], statistics.fmean(ordered))

    def row(self) -> str:
        return f"{self.p50_ms:.2f} ms | {self.p99_ms:.2f} ms | {self.max_ms:.2f} ms | {self.count}"
