"""The watchdog canary (DESIGN §6): what ``WATCHDOG=1`` proves.

The service touches a file in a dedicated, non-recursive directory under the state directory
(never the database's own directory) every ``touch_every`` seconds. Its events travel observer
-> queue -> pipeline thread like any other change; the pipeline notes when it takes one off the
queue (``Pipeline.canary_seen``).

**What the canary proves**: the pipeline thread keeps taking changes off the queue — the oldest
touch it has not taken yet is younger than ``stall_after``. That is what a wedged thread breaks:
a worker call that never returns, a dead pipeline or observer thread, a lost inotify watch. Then
:meth:`Liveness.alive` turns false, the service stops ``WATCHDOG=1`` (logging
``canary.stalled`` once) and systemd restarts the daemon after ``WatchdogSec``.

**What it does not judge**: a database that is down or locked is not a hang. The pipeline keeps
draining the queue while the database is unavailable (the daemon is degraded, says so in
``STATUS=`` and ``assetd status``, and keeps pinging), so a restart, which would not bring the
database back, is never asked for. A slow batch is not a hang either, as long as the pipeline
takes the next touch within ``stall_after`` (half of ``WatchdogSec``: 30 s with the units' 60 s).
The pipeline thread must therefore never block longer than that on one call, database waits
included.

:class:`Liveness` is the pure logic on an injected clock; :func:`timing` derives the periods from
``WatchdogSec``; :class:`Canary` does the file and the observer.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from watchdog.events import (
    FileClosedEvent,
    FileModifiedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from assetd import log
from assetd.live.changes import Change, Kind
from assetd.timing import Clock

__all__ = ["Canary", "Liveness", "Timing", "timing"]

_log = log.get_logger(__name__)


def _private(path: str, flags: int) -> int:
    """Open the canary file 0640 whatever the umask (it lives in the 0750 state directory)."""
    return os.open(path, flags, 0o640)


DEFAULT_WATCHDOG = 60.0  # the units' WatchdogSec: the periods used when systemd sets none


@dataclass(frozen=True, slots=True)
class Timing:
    touch_every: float
    """Seconds between two touches of the canary file."""
    stall_after: float
    """A touch the pipeline has not taken after this long means it is stuck."""
    tick: float
    """The service's main-loop period (and so the ``WATCHDOG=1`` period)."""


def timing(watchdog_sec: float | None) -> Timing:
    """Periods for ``WatchdogSec`` (None: not under a systemd watchdog). A wedge just after a
    touch was taken stops the pings within ``touch_every + stall_after + tick``, at most 3/4 of
    ``WatchdogSec``; pings go out every ``tick``, at most half of it."""
    w = DEFAULT_WATCHDOG if watchdog_sec is None or watchdog_sec <= 0 else watchdog_sec
    touch_every = min(5.0, w / 8)
    tick = min(1.0, w / 8)
    return Timing(touch_every=touch_every, stall_after=w / 2, tick=tick)


class Liveness:
    """When the canary was touched and when the pipeline took touches off the queue."""

    def __init__(self, stall_after: float, clock: Clock = time.monotonic) -> None:
        self.stall_after = stall_after
        self.clock = clock
        self._unseen: collections.deque[float] = collections.deque(maxlen=1024)

    def touched(self) -> None:
        """A touch was just made."""
        self._unseen.append(self.clock())

    def seen(self, at: float) -> None:
        """The pipeline took a canary change off the queue at ``at`` (monotonic): every touch
        made before then has gone through."""
        while self._unseen and self._unseen[0] <= at:
            self._unseen.popleft()

    def stalled_for(self) -> float:
        """How long the oldest touch not yet taken has waited (0.0: none waiting)."""
        return self.clock() - self._unseen[0] if self._unseen else 0.0

    def alive(self) -> bool:
        """No touch has waited ``stall_after`` seconds or more."""
        return self.stalled_for() < self.stall_after


class _Sink(Protocol):
    def put(self, change: Change) -> bool: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: _Sink) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        with contextlib.suppress(Exception):  # never kill watchdog's dispatcher thread
            self.sink.put(Change(Kind.MODIFIED, os.fsdecode(event.src_path)))


class Canary:
    def __init__(
        self,
        directory: str,
        sink: _Sink,
        *,
        stall_after: float = DEFAULT_WATCHDOG / 2,
        clock: Clock = time.monotonic,
    ) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "beat")
        self.sink = sink
        self.liveness = Liveness(stall_after, clock)
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._count = 0
        self._failing = False
        self._alive = True

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        observer = Observer()
        observer.schedule(
            _Handler(self.sink),
            self.directory,
            recursive=False,
            event_filter=[FileModifiedEvent, FileClosedEvent],
        )
        observer.daemon = True
        observer.start()
        self._observer = observer

    def touch(self) -> None:
        """Write the canary file. A write that fails (the state directory's disk is full) is
        logged once and proves nothing either way: no touch is counted."""
        self._count += 1
        try:
            with open(self.path, "w", encoding="ascii", opener=_private) as f:
                f.write(f"{self._count}\n")
        except OSError as err:
            if not self._failing:
                _log.warning("canary.failed", path=self.path, error=err.strerror)
                self._failing = True
            return
        self._failing = False
        self.liveness.touched()

    def alive(
        self, seen_at: float, describe: Callable[[], Mapping[str, object]] | None = None
    ) -> bool:
        """The pipeline took every touch older than ``stall_after`` (``seen_at``: when it last
        took a canary change off the queue). Logs ``canary.stalled`` once when that stops being
        true (with ``describe()``: what the pipeline is doing) and ``canary.recovered`` after."""
        self.liveness.seen(seen_at)
        alive = self.liveness.alive()
        if alive != self._alive:
            self._alive = alive
            if alive:
                _log.warning("canary.recovered")
            else:
                _log.error(
                    "canary.stalled",
                    stalled_s=round(self.liveness.stalled_for(), 1),
                    stall_after_s=self.liveness.stall_after,
                    action="WATCHDOG=1 stopped: systemd restarts the daemon after WatchdogSec",
                    **(describe() if describe is not None else {}),
                )
        return alive

    def stalled_for(self) -> float:
        return self.liveness.stalled_for()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the observer; False when it did not end within ``timeout``."""
        observer, self._observer = self._observer, None
        if observer is None:
            return True
        observer.stop()
        observer.join(timeout)
        return not observer.is_alive()
