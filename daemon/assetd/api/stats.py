"""Counters the daemon's threads bump in O(1) and ``GET /metrics`` reads at scrape time.

Plain integers under a lock, no metrics library: the daemon records them from READY on,
before the API thread has imported anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# seconds: a batch's apply (stat + one transaction), and a reconcile's duration
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# seconds: a batch's latency, from its oldest change seen by the watcher to its commit (the
# debouncer's quiet window, up to its max delay, plus the apply)
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECONCILE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        i = next((k for k, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[i] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, cumulative count) pairs, ``+Inf`` last, as Prometheus wants them."""
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class DaemonStats:
    batches: int = 0
    batch_changes: dict[str, int] = field(default_factory=dict)  # missing, new, moved, ...
    batch_seconds: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    batch_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    reconciles: int = 0
    reconcile_seconds: Histogram = field(default_factory=lambda: Histogram(RECONCILE_BUCKETS))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def batch(
        self, duration_s: float, counts: dict[str, int | float], latency_s: float | None = None
    ) -> None:
        with self.lock:
            self.batches += 1
            self.batch_seconds.observe(duration_s)
            if latency_s is not None:
                self.batch_latency.observe(latency_s)
            for kind, n in counts.items():
                if kind != "duration_s" and n:
                    self.batch_changes[kind] = self.batch_changes.get(kind, 0) + int(n)

    def reconcile(self, duration_s: float) -> None:
        with self.lock:
            self.reconciles += 1
            self.reconcile_seconds.observe(duration_s)
