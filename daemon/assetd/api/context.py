"""What every route reads: the daemon (through :class:`~assetd.api.runtime.ApiRuntime`), the
API's own read-only engine, the event ring, and a short-lived cache of list totals."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from assetd.api.events import EventRing
from assetd.api.runtime import ApiRuntime, DaemonView
from assetd.catalog.engine import SessionFactory

TOTAL_TTL = 5.0  # seconds a filter's exact total is reused (a count over 1M rows is ~0.5 s)
TOTAL_CACHE = 256


@dataclass
class TotalsCache:
    """Exact ``total`` per filter, reused for ``TOTAL_TTL`` seconds: paging through a large
    list counts once, not once per page."""

    ttl: float = TOTAL_TTL
    _values: dict[Hashable, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable) -> int | None:
        with self._lock:
            hit = self._values.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, key: Hashable, total: int) -> None:
        with self._lock:
            if len(self._values) >= TOTAL_CACHE:
                self._values.clear()
            self._values[key] = (time.monotonic(), total)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


@dataclass
class ApiContext:
    runtime: ApiRuntime
    read_sessions: SessionFactory
    ring: EventRing
    totals: TotalsCache = field(default_factory=TotalsCache)
    closing: bool = False
    metrics: object = None  # the API's own prometheus registry, made on the first scrape

    @property
    def daemon(self) -> DaemonView:
        return self.runtime.daemon

    @property
    def write_sessions(self) -> SessionFactory:
        catalog = self.runtime.daemon.catalog
        assert catalog is not None
        return catalog.sessions
