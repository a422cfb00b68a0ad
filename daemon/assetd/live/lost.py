"""Lost events -> their recovery: the overflows any thread reports, turned by the daemon's main
loop into a rescan (or a reconcile) once the root's burst pauses (:mod:`assetd.live.recovery`).

A kernel queue overflow (inotify or fanotify) or an event the fanotify reader could not place
comes with the wall time from which events may be lost (the watcher's ``take_lost_since``):
the recovery is then a rescan of the directories changed since (:mod:`assetd.touched`). A
change dropped because the daemon's own queue was full, or an overflow of unknown time, makes
it a reconcile of the whole root. Either way the root's epoch is bumped at once (DESIGN §4).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from assetd import log
from assetd.catalog.roots import RootSpec
from assetd.live.recovery import Recovery
from assetd.live.scheduler import ReconcileScheduler
from assetd.live.watch import QueueSink

_log = log.get_logger(__name__)

__all__ = ["LostEvents", "Watched"]


class Watched(Protocol):
    """What the recovery asks of a root's watcher (:class:`~assetd.live.observers.RootWatcher`)."""

    def take_lost_since(self) -> tuple[bool, float | None]: ...

    def activity(self) -> int: ...


class LostEvents:
    """:meth:`report` from any thread (no I/O there); :meth:`handle` and :meth:`wait` from the
    main loop only."""

    def __init__(
        self,
        *,
        wake: Callable[[], None],
        roots: Callable[[], Sequence[RootSpec]],
        sinks: Mapping[str, QueueSink],
        watcher: Callable[[str], Watched | None],
        bump: Callable[[RootSpec, str], None],
        scheduler: Callable[[], ReconcileScheduler],
        recovery: Recovery | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wake = wake
        self._roots = roots
        self._sinks = sinks
        self._watcher = watcher
        self._bump = bump
        self._scheduler = scheduler
        self.recovery = recovery or Recovery()
        self._clock = clock
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def _count(self, name: str) -> int:
        """What moves while root ``name`` still gets events: the changes its sink was offered,
        and the bytes its kernel reader took (the reader drains the kernel queue even while
        the emitter is busy, e.g. re-walking the watches after an overflow)."""
        sink = self._sinks.get(name)
        watcher = self._watcher(name)
        return (sink.count if sink is not None else 0) + (watcher.activity() if watcher else 0)

    def report(self, root_name: str) -> None:
        """Root ``root_name`` lost events (called on a watcher's or a sink's thread)."""
        with self._lock:
            self._reported.add(root_name)
        self._wake()

    def wait(self) -> float | None:
        """Seconds until a recovery may be due (None: none pending)."""
        return self.recovery.wait(self._clock())

    def handle(self) -> None:
        """Open or extend the episodes reported since the last call; start those now due."""
        with self._lock:
            names, self._reported = self._reported, set()
        now = self._clock()
        by_name = {r.name: r for r in self._roots()}
        for name in names:
            root = by_name.get(name)
            if root is None:
                continue
            watcher = self._watcher(name)
            had, since = watcher.take_lost_since() if watcher is not None else (True, None)
            sink = self._sinks.get(name)
            if sink is not None and sink.overflowed:  # a change dropped after it was read: its
                since, had = None, True  # time is not known
                sink.reset()
            if not had:  # a second report of a loss an earlier call already took
                continue
            self._bump(root, "overflow")
            self.recovery.lost(name, since, self._count(name), now)
        if not self.recovery.episodes:
            return
        counts = {name: self._count(name) for name in self.recovery.episodes}
        for name, episode in self.recovery.due(counts, now):
            root = by_name.get(name)
            if root is None:
                continue
            waited = round(now - episode.first, 3)
            scheduler = self._scheduler()
            _log.info(
                "overflow.recovery",
                root=name,
                rescan="root" if episode.since is None else "changed",
                losses=episode.losses,
                waited_s=waited,
            )
            if episode.since is None:
                scheduler.request("overflow", root.id)
            else:
                scheduler.request_rescan("overflow", root.id, episode.since)
