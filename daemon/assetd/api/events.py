"""The change feed behind ``GET /api/events``: what committed batches, reconciles, root
checks and the hasher changed, in order, with ids a client resumes from.

Two halves, one per side of the thread boundary:

- :class:`EventSource` is called by the daemon's threads *after* the commit that made a change
  true (``on_applied``, ``on_finished``, a root check, the hasher's ``on_recorded``). It only
  builds small dicts and puts them on a bounded queue (never blocks, never does I/O); if the
  queue is full the loss is remembered and becomes one ``reset`` event.
- :class:`EventRing` lives on the API's event loop: it numbers events, keeps the last
  ``size`` in memory for ``Last-Event-ID`` resume (fewer when they carry more than ``paths``
  paths in all: memory does not grow with the tree), and fans them out to subscribers, each with a
  bounded queue: a subscriber that falls ``queue_size`` events behind is dropped, never
  buffered without bound.

Ids are ``"<run>-<n>"``: ``n`` increases by one per event; ``run`` changes with each daemon
start, so an id from an earlier run is answered with ``reset`` (re-list), not a wrong replay.
No web framework is imported here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assetd.paths import is_under

RING_SIZE = 10_000  # events kept for Last-Event-ID resume
RING_PATHS = 20_000  # ... holding at most this many paths (a hash.recorded carries up to 256)
SOURCE_QUEUE = 10_000  # raw events waiting for the API thread
CLIENT_QUEUE = 1_000  # events a subscriber may fall behind before it is dropped

RESET = "reset"


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An event as a daemon thread hands it over: paths still to be resolved to info ids."""

    name: str
    data: dict[str, Any]
    paths: tuple[str, ...] = ()


class EventSource:
    """The daemon threads' side: cheap, bounded, never blocking."""

    def __init__(self, root_paths: Callable[[], Sequence[tuple[str, str]]]) -> None:
        self._root_paths = root_paths  # (name, path) of each root
        self._queue: queue.Queue[RawEvent] = queue.Queue(maxsize=SOURCE_QUEUE)
        self._lost = threading.Event()
        self._wake: Callable[[], None] | None = None
        self._unavailable: set[str] = set()

    def attach(self, wake: Callable[[], None] | None) -> None:
        """The API loop's wake-up (thread-safe), or None when it stops."""
        self._wake = wake

    def put(self, event: RawEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._lost.set()
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                wake()

    def drain(self) -> tuple[list[RawEvent], bool]:
        """What arrived, and whether some was lost (the queue was full) since the last drain."""
        out: list[RawEvent] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        lost = self._lost.is_set()
        self._lost.clear()
        return out, lost

    def _root_of(self, path: str) -> str | None:
        for name, root_path in self._root_paths():
            if path == root_path or is_under(path, root_path):
                return name
        return None

    def paths_event(self, name: str, paths: Sequence[str], count: int) -> None:
        """``cache_state.*`` for a committed batch: one event per root of the sampled paths."""
        by_root: dict[str | None, list[str]] = {}
        for path in paths:
            by_root.setdefault(self._root_of(path), []).append(path)
        truncated = count > len(paths)
        for root, sample in by_root.items():
            data = {"root": root, "count": len(sample), "truncated": truncated}
            self.put(RawEvent(name, data, tuple(sample)))

    def batch_applied(self, counts: dict[str, Any], samples: dict[str, Sequence[str]]) -> None:
        """A live batch was committed: its sampled paths by kind, then ``batch.applied``."""
        for name, paths in samples.items():
            kind = name.removeprefix("cache_state.")
            if paths:
                self.paths_event(name, paths, int(counts.get(kind, len(paths))))
        self.put(RawEvent("batch.applied", dict(counts)))

    def hash_recorded(self, items: Sequence[tuple[str, str, str]]) -> None:
        """The hasher committed digests, ``(path, digest, outcome)`` each: one ``hash.recorded``
        per root and outcome, with the paths and their digests in the same order."""
        groups: dict[tuple[str | None, str], list[tuple[str, str]]] = {}
        for path, digest, outcome in items:
            groups.setdefault((self._root_of(path), outcome), []).append((path, digest))
        for (root, outcome), pairs in groups.items():
            data = {
                "root": root,
                "outcome": outcome,
                "count": len(pairs),
                "hashes": [digest for _, digest in pairs],
            }
            self.put(RawEvent("hash.recorded", data, tuple(path for path, _ in pairs)))

    def reconcile_finished(self, counts: dict[str, Any], available: Sequence[str]) -> None:
        for name in sorted(self._unavailable & set(available)):
            self.put(RawEvent("root.restored", {"root": name}))
        self._unavailable -= set(available)
        self.put(RawEvent("reconcile.finished", dict(counts)))

    def root_unavailable(self, name: str, path: str, missing: int) -> None:
        self._unavailable.add(name)
        self.put(RawEvent("root.unavailable", {"root": name, "path": path, "missing": missing}))


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set when an event is queued


def _paths_of(event: Event) -> int:
    paths = event.data.get("paths")
    return len(paths) if isinstance(paths, list | tuple) else 0


class EventRing:
    """The API loop's side: ids, the resume ring, the subscribers. Loop thread only."""

    def __init__(
        self, size: int = RING_SIZE, run: str | None = None, paths: int = RING_PATHS
    ) -> None:
        self.run = run or format(int(time.time() * 1000), "x")
        self.events: collections.deque[Event] = collections.deque()
        self.size = size
        self.max_paths = paths
        self.held_paths = 0  # paths of the events kept
        self.next_n = 1
        self.subscribers: set[Subscriber] = set()
        self.dropped_clients = 0
        self.published = 0
        self.closing = False

    def close(self) -> None:
        """End every stream (the daemon stops)."""
        self.closing = True
        for sub in list(self.subscribers):
            sub.dropped.set()
        self.subscribers.clear()

    def publish(self, name: str, data: dict[str, Any]) -> Event | None:
        """Number an event, keep it, queue it for each subscriber; one too far behind is
        dropped."""
        event = Event(f"{self.run}-{self.next_n}", name, data)
        self.next_n += 1
        self.published += 1
        self.events.append(event)
        self.held_paths += _paths_of(event)
        while len(self.events) > 1 and (
            len(self.events) > self.size or self.held_paths > self.max_paths
        ):
            self.held_paths -= _paths_of(self.events.popleft())
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(event)
                sub.ready.set()
            except asyncio.QueueFull:
                self.subscribers.discard(sub)
                self.dropped_clients += 1
                sub.dropped.set()
        return event

    def reset_event(self) -> Event:
        """A ``reset`` for one client, not numbered (it is not part of the history)."""
        last = self.next_n - 1
        return Event(f"{self.run}-{last}", RESET, {"reason": "re-list: events were lost"})

    def since(self, last_event_id: str | None) -> list[Event] | None:
        """Events after ``last_event_id`` (none for a new client), or None when the ring no
        longer reaches back, or the id is from another run: the client re-lists."""
        if last_event_id is None:
            return []
        run, _, number = last_event_id.strip().rpartition("-")
        if run != self.run or not number.isdigit():
            return None
        n = int(number)
        last = self.next_n - 1
        if n > last:
            return None
        if n == last:
            return []
        oldest = int(self.events[0].id.rpartition("-")[2]) if self.events else self.next_n
        if n + 1 < oldest:
            return None
        return [e for e in self.events if int(e.id.rpartition("-")[2]) > n]

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
