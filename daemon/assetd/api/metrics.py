"""``GET /metrics``: Prometheus text from a registry the API owns, every name ``assetd_``.

One custom collector computes every value when scraped (lesson: metrics read state, they do
not add work to the hot path): counters the daemon keeps anyway (batches, overflows, bytes
hashed), the queue's depth, the hashing backlog, root availability, and cache states by root
and state from one GROUP BY (cached for ``DB_TTL`` seconds, so scrapes cost the catalog little).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from assetd import __version__
from assetd.api.context import ApiContext
from assetd.api.stats import Histogram
from assetd.catalog.api_assets import cache_states_by_root

DB_TTL = 5.0


class DaemonCollector(Collector):
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._db: tuple[float, dict[tuple[str, str], int] | None] = (-1e18, None)
        self._lock = threading.Lock()

    def _cache_states(self) -> dict[tuple[str, str], int] | None:
        with self._lock:
            at, value = self._db
            if time.monotonic() - at < DB_TTL:
                return value
            try:
                with self.ctx.read_sessions() as s:
                    value = cache_states_by_root(s)
            except SQLAlchemyError:
                value = None
            self._db = (time.monotonic(), value)
            return value

    def collect(self) -> Iterator[Metric]:
        daemon, stats = self.ctx.daemon, self.ctx.runtime.stats
        info = GaugeMetricFamily("assetd_info", "assetd's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        watchers = [w for w in (daemon.watchers.get(n) for n in daemon.watchers.names) if w]
        yield CounterMetricFamily(
            "assetd_events_received",
            "filesystem events the watchers handed to the pipeline",
            value=sum(w.handler.events for w in watchers),
        )
        yield CounterMetricFamily(
            "assetd_overflows",
            "kernel queue overflows (the directories changed since the loss are rescanned)",
            value=sum(w.overflows for w in watchers),
        )
        yield GaugeMetricFamily(
            "assetd_queue_depth", "changes waiting for the debouncer", value=daemon.changes.qsize()
        )
        with stats.lock:
            batches, changes = stats.batches, dict(stats.batch_changes)
            batch_h, reconciles = _copy(stats.batch_seconds), stats.reconciles
            reconcile_h = _copy(stats.reconcile_seconds)
            latency_h = _copy(stats.batch_latency)
        yield CounterMetricFamily("assetd_batches", "batches committed", value=batches)
        kinds = CounterMetricFamily(
            "assetd_batch_changes", "files changed by committed batches", labels=["kind"]
        )
        for kind, n in sorted(changes.items()):
            kinds.add_metric([kind], n)
        yield kinds
        yield _histogram(
            "assetd_batch_duration_seconds",
            "a batch from flush to commit (stat + one transaction)",
            batch_h,
        )
        yield _histogram(
            "assetd_batch_latency_seconds",
            "a batch from its oldest change seen by the watcher to its commit",
            latency_h,
        )
        yield CounterMetricFamily(
            "assetd_reconciles", "reconcile passes finished", value=reconciles
        )
        yield _histogram("assetd_reconcile_duration_seconds", "a reconcile pass", reconcile_h)
        yield CounterMetricFamily(
            "assetd_database_errors",
            "batches that failed on a database error",
            value=daemon.pipeline.failed_batches,
        )
        yield GaugeMetricFamily(
            "assetd_database_up",
            "the pipeline's database answers",
            value=int(daemon.pipeline.db_ok),
        )
        hasher = daemon.hasher
        files, size = hasher.backlog if hasher is not None else (0, 0)
        yield GaugeMetricFamily("assetd_hashing_backlog_files", "files to hash", value=files)
        yield GaugeMetricFamily("assetd_hashing_backlog_bytes", "bytes to hash", value=size)
        yield CounterMetricFamily(
            "assetd_hashed_bytes", "bytes read by the hasher", value=hasher.bytes if hasher else 0
        )
        available = GaugeMetricFamily(
            "assetd_root_available", "1 when the root is present", labels=["root"]
        )
        for root in daemon.roots:
            available.add_metric([root.name], 0 if root.id in daemon.unavailable else 1)
        yield available
        states = self._cache_states()
        if states is not None:
            family = GaugeMetricFamily(
                "assetd_cache_states",
                "catalogued paths by root and state",
                labels=["root", "state"],
            )
            for (root_name, state), n in sorted(states.items()):
                family.add_metric([root_name, state], n)
            yield family
        ring = self.ctx.ring
        yield GaugeMetricFamily(
            "assetd_api_event_clients", "clients on /api/events", value=len(ring.subscribers)
        )
        yield CounterMetricFamily(
            "assetd_api_events", "events published on /api/events", value=ring.published
        )
        yield CounterMetricFamily(
            "assetd_api_clients_dropped",
            "event clients dropped for not reading",
            value=ring.dropped_clients,
        )


def _copy(h: Histogram) -> Histogram:
    out = Histogram(h.bounds)
    out.counts, out.total, out.n = list(h.counts), h.total, h.n
    return out


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], [(b, float(c)) for b, c in h.cumulative()], sum_value=h.total)
    return family


def render(ctx: ApiContext) -> tuple[bytes, str]:
    registry = ctx.metrics
    if not isinstance(registry, CollectorRegistry):
        registry = ctx.metrics = CollectorRegistry(auto_describe=False)
        registry.register(DaemonCollector(ctx))
    return generate_latest(registry), CONTENT_TYPE_LATEST
