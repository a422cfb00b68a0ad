"""Debounce with a quiet window and a latency cap, on an injected monotonic clock (STYLE 4).

A batch is due when nothing new arrived for ``quiet_ms`` or the oldest pending change is
``max_delay_ms`` old, whichever comes first, so a busy writer cannot postpone it forever.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

from assetd.changes import Change

Clock = Callable[[], float]
DRAIN_LIMIT = 50_000  # changes taken from the queue per wake-up, so the flush check keeps up


class Debouncer:
    def __init__(
        self, quiet_ms: int = 50, max_delay_ms: int = 1000, clock: Clock = time.monotonic
    ) -> None:
        self.quiet = quiet_ms / 1000
        self.max_delay = max_delay_ms / 1000
        self.clock = clock
        self._pending: list[Change] = []
        self._first = 0.0
        self._last = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, change: Change) -> None:
        now = self.clock()
        if not self._pending:
            self._first = now
        self._last = now
        self._pending.append(change)

    def add_many(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self.add(change)

    def seconds_until_due(self) -> float | None:
        if not self._pending:
            return None
        now = self.clock()
        remaining = min(self._last + self.quiet - now, self._first + self.max_delay - now)
        return max(remaining, 0.0)

    def due(self) -> bool:
        remaining = self.seconds_until_due()
        return remaining is not None and remaining <= 0.0

    def take(self) -> list[Change]:
        pending, self._pending = self._pending, []
        return pending


def drain(
    q: queue.Queue[Change | None],
    debouncer: Debouncer,
    *,
    stop: threading.Event,
    max_wait: float = 0.5,
) -> list[Change] | None:
    """Feed ``debouncer`` from ``q`` until a batch is due; return it. Returns the pending batch
    at once when ``stop`` is set (so shutdown flushes it), or None when nothing is pending and
    ``max_wait`` passed (or ``stop`` is set). ``None`` on the queue is a wake-up sentinel."""
    while True:
        if stop.is_set():
            for _ in range(DRAIN_LIMIT):  # what arrived before the stop still counts
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    debouncer.add(item)
            return debouncer.take() or None
        if debouncer.due():
            return debouncer.take()
        wait = debouncer.seconds_until_due()
        try:
            item = q.get(timeout=max_wait if wait is None else max(wait, 0.001))
        except queue.Empty:
            if wait is None:
                return None
            continue
        if item is not None:
            debouncer.add(item)
        for _ in range(DRAIN_LIMIT):
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                debouncer.add(item)
