"""Debouncing: an adaptive quiet window and a latency cap on an injected clock (DESIGN §2, STYLE 4).

A batch is due when nothing new arrived for the current quiet window *or* the oldest pending change
is ``max_delay_ms`` old, whichever comes first, so a writer that never pauses still gets its changes
flushed once a second (watchdog's own debouncer resets on every event with no cap; not that). A
batch is also due once :data:`MAX_BATCH` changes are pending: a burst is large batches anyway, and
the worker starts on the first of them a fraction of a second into the burst instead of a second
(it applied 100,000 deletions behind the burst otherwise; ``docs/benchmarks.md``).

The quiet window adapts: the first change of a batch opens it at ``min_quiet_ms`` (a lone change is
flushed a few milliseconds after it arrived), and every further arrival while the batch is pending
widens it by ``min_quiet_ms`` (at least 1 ms), up to ``quiet_ms``, the widest window. So a burst
still coalesces into large batches once it has shown itself (a handful of arrivals), and a
single change does not wait out a window sized for bursts. With ``min_quiet_ms >= quiet_ms`` (or
``min_quiet_ms`` not given) the window is fixed at ``quiet_ms``, as before.

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

__all__ = ["DRAIN_CHUNK", "MAX_BATCH", "Clock", "Debouncer", "drain"]

"""Monotonic seconds (``time.monotonic`` or a test's fake)."""

DRAIN_CHUNK = 50_000
"""Changes taken off the queue in one go before the flush check runs again."""

MAX_BATCH = 10_000
"""Pending changes that make a batch due whatever the windows say (a batch holds what the
queue had at that check, so it may be larger)."""

_US = 1_000_000  # the debouncer counts in whole microseconds, so fake clocks compare exactly
_MIN_STEP = 1000  # the window widens by at least 1 ms per arrival


def _limits(quiet_ms: int, max_delay_ms: int, min_quiet_ms: int | None) -> tuple[int, int, int]:
    if quiet_ms < 0 or max_delay_ms < 0 or (min_quiet_ms is not None and min_quiet_ms < 0):
        raise ValueError(
            "quiet_ms, max_delay_ms and min_quiet_ms must be >= 0: "
            f"{quiet_ms}, {max_delay_ms}, {min_quiet_ms}"
        )
    quiet = round(quiet_ms * 1000)
    low = quiet if min_quiet_ms is None else min(quiet, round(min_quiet_ms * 1000))
    return quiet, round(max_delay_ms * 1000), low


class Debouncer:
    """Pending changes, the arrival times of the first and the last of them, and the quiet
    window they have earned so far."""

    __slots__ = (
        "_clock",
        "_first",
        "_last",
        "_limits",
        "_max_batch",
        "_pending",
        "_window",
    )

    def __init__(
        self,
        quiet_ms: int = 50,
        max_delay_ms: int = 1000,
        clock: Clock = time.monotonic,
        *,
        min_quiet_ms: int | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._limits = _limits(quiet_ms, max_delay_ms, min_quiet_ms)  # (quiet, cap, min) in us
        self._max_batch = max(1, max_batch)
        self._clock = clock
        self._pending: list[Change] = []
        self._first = 0  # arrival of the oldest pending change, in microseconds
        self._last = 0  # arrival of the newest pending change, in microseconds
        self._window = 0  # the quiet window of the pending batch, in microseconds

    def retime(self, quiet_ms: int, max_delay_ms: int, min_quiet_ms: int | None = None) -> None:
        """New limits (a reload): they apply from the next check on. The three are one tuple
        stored at once, so the draining thread sees the old or the new limits, never a mix."""
        self._limits = _limits(quiet_ms, max_delay_ms, min_quiet_ms)
        quiet, _, low = self._limits
        self._window = min(quiet, max(low, self._window))

    def _now(self) -> int:
        return round(self._clock() * _US)

    def _arrived(self, now: int, was_empty: bool) -> None:
        quiet, _, low = self._limits
        if was_empty:
            self._first = now
            self._window = low
        else:  # changes keep coming: widen toward the widest window
            self._window = min(quiet, self._window + max(low, _MIN_STEP))
        self._last = now

    def add(self, change: Change) -> None:
        """Record one change arriving now."""
        was_empty = not self._pending
        self._pending.append(change)
        self._arrived(self._now(), was_empty)

    def add_many(self, changes: Iterable[Change]) -> None:
        """Record several changes arriving now (one clock reading, one arrival)."""
        was_empty = not self._pending
        before = len(self._pending)
        self._pending.extend(changes)
        if len(self._pending) > before:
            self._arrived(self._now(), was_empty)

    def _remaining(self, now: int) -> int:
        return min(self._last + self._window, self._first + self._limits[1]) - now

    def due(self) -> bool:
        """Whether pending changes should be flushed now."""
        if len(self._pending) >= self._max_batch:
            return True
        return bool(self._pending) and self._remaining(self._now()) <= 0

    def seconds_until_due(self) -> float | None:
        """None when nothing is pending, 0.0 when due, else the seconds left to the nearer limit."""
        if not self._pending:
            return None
        if len(self._pending) >= self._max_batch:
            return 0.0
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
    """Up to ``limit`` items without blocking, under one hold of the queue's lock (a burst
    otherwise pays a lock and a wake-up per change); ``None`` sentinels are dropped."""
    with q.mutex:
        n = min(limit, q._qsize())
        items = [q._get() for _ in range(n)]
        if n:
            q.not_full.notify_all()
    debouncer.add_many([item for item in items if item is not None])
