"""The daemon's cyclic garbage collector: no long pause in a burst.

A burst of 100,000 deletions makes a few hundred thousand short-lived objects (the changes, the
coalescing records, the batch's lists). With CPython's default thresholds (700, 10, 10) they
set off full collections in the middle of the burst, each walking every object of the process:
pauses of 0.1-0.6 s holding the GIL, during which the inotify reader cannot drain the kernel
queue, which then overflows (tens of thousands of events lost, then a rescan of what changed).

So the daemon collects its young generation every :data:`YOUNG` allocations instead of 700,
and once its start-up reconcile is done, collects everything and *freezes* what is left: the
long-lived objects (modules, the engine, the watches) are never walked again.
(`bench/live_bench.py --burst --backend inotify --deleters 8`, docs/benchmarks.md, session 7:
0 events lost in 3 runs out of 3, against 32,000-54,000 in 2 runs out of 3.)
"""

from __future__ import annotations

import gc
import threading

YOUNG = 50_000
"""Allocations (less deallocations) between two collections of the youngest generation."""


class GcPolicy:
    """:meth:`start` as the daemon starts; :meth:`after_pass` after each reconcile pass (the
    first one settles the collector; the later ones do nothing)."""

    def __init__(self) -> None:
        self._settled = False
        self._lock = threading.Lock()

    def start(self) -> None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(YOUNG, middle, old)

    def after_pass(self) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        gc.collect()  # what the start-up left as garbage is freed, not frozen
        gc.freeze()
