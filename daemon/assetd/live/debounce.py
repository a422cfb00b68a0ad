"""Debouncing: a quiet window and a latency cap, on an injected clock (DESIGN §2, STYLE 4).

A batch is due when nothing new arrived for ``quiet_ms`` *or* the oldest pending change is
``max_delay_ms`` old, whichever comes first, so a writer that never pauses still gets its changes
flushed once a second (watchdog's own debouncer resets on every event with no cap; not that).

:class:`Debouncer` is pure bookkeeping on a clock a test can replace; it is not thread-safe and is
meant to be owned by the one thread that drains the queue. :func:`drain` is that thread's loop
step, and the only code here that touches ``queue`` and ``threading``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable

from assetd.live.changes import Change
from assetd.timing import Clock

__all__ = ["DRAIN_CHUNK", "Clock", "Debouncer", "drain"]

"""Monotonic seconds (``time.monotonic`` or a test's fake)."""

DRAIN_CHUNK = 50_000
"""Changes taken off the queue in one go before the flush check runs again."""

_US = 1_000_000  # the debouncer counts in whole microseconds, so fake clocks compare exactly


class Debouncer:
    """Pending changes plus the arrival times of the first and the last of them."""

    __slots__ = ("_clock", "_first", "_last", "_max_delay", "_pending", "_quiet")

    def __init__(
        self, quiet_ms: int = 50, max_delay_ms: int = 1000, clock: Clock = time.monotonic
    ) -> None:
        if quiet_ms < 0 or max_delay_ms < 0:
            raise ValueError(f"quiet_ms and max_delay_ms must be >= 0: {quiet_ms}, {max_delay_ms}")
        self._quiet = round(quiet_ms * 1000)
        self._max_delay = round(max_delay_ms * 1000)
        self._clock = clock
        self._pending: list[Change] = []
        self._first = 0  # arrival of the oldest pending change, in microseconds
        self._last = 0  # arrival of the newest pending change, in microseconds

    def retime(self, quiet_ms: int, max_delay_ms: int) -> None:
        """New limits (a reload): they apply from the next check on. Each is one attribute
        store, so the draining thread sees the old or the new value of each, never a torn one."""
        if quiet_ms < 0 or max_delay_ms < 0:
            raise ValueError(f"quiet_ms and max_delay_ms must be >= 0: {quiet_ms}, {max_delay_ms}")
        self._quiet = round(quiet_ms * 1000)
        self._max_delay = round(max_delay_ms * 1000)

    def _now(self) -> int:
        return round(self._clock() * _US)

    def add(self, change: Change) -> None:
        """Record one change arriving now."""
        now = self._now()
        if not self._pending:
            self._first = now
        self._last = now
        self._pending.append(change)

    def add_many(self, changes: Iterable[Change]) -> None:
        """Record several changes arriving now (one clock reading)."""
        was_empty = not self._pending
        self._pending.extend(changes)
        if self._pending:
            now = self._now()
            if was_empty:
                self._first = now
            self._last = now

    def _remaining(self, now: int) -> int:
        return min(self._last + self._quiet, self._first + self._max_delay) - now

    def due(self) -> bool:
        """Whether pending changes should be flushed now."""
        return bool(self._pending) and self._remaining(self._now()) <= 0

    def seconds_until_due(self) -> float | None:
        """None when nothing is pending, 0.0 when due, else the seconds left to the nearer limit."""
        if not self._pending:
            return None
        return max(0, self._remaining(self._now())) / _US

    def take(self) -> list[Change]:
        """The pending changes in arrival order; the debouncer is empty afterwards."""
        pending, self._pending = self._pending, []
        return pending

    def __len__(self) -> int:
        return len(self._pending)


def drain(
    q: queue.Queue[Change | None],
    debouncer: Debouncer,
    *,
    stop: threading.Event,
    max_wait: float = 0.5,
    chunk: int = DRAIN_CHUNK,
) -> list[Change] | None:
    """Feed ``debouncer`` from ``q`` until a batch is due, and return it.

    Blocks in ``q.get`` with a timeout (the time left until the pending batch is due, or
    ``max_wait`` when nothing is pending, never longer than ``max_wait``), so an idle queue costs
    no CPU. After each wake-up it takes at most ``chunk`` more changes without blocking, then checks
    the flush again, so a flood cannot hold a due batch back. A ``None`` on the queue is a wake-up
    sentinel. Once ``stop`` is set it takes what the queue holds (up to ``chunk``) and returns the
    pending changes at once, or None when there are none: call it until it returns None to flush
    everything on shutdown.
    """
    while True:
        if stop.is_set():
            _take_available(q, debouncer, chunk)
            return debouncer.take() if len(debouncer) else None
        wait = debouncer.seconds_until_due()
        if wait is not None and wait <= 0.0:
            return debouncer.take()
        try:
            item = q.get(timeout=max_wait if wait is None else min(wait, max_wait))
        except queue.Empty:
            continue
        if item is not None:
            debouncer.add(item)
        _take_available(q, debouncer, chunk)


def _take_available(q: queue.Queue[Change | None], debouncer: Debouncer, limit: int) -> None:
    batch: list[Change] = []
    for _ in range(limit):
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is not None:
            batch.append(item)
    debouncer.add_many(batch)
