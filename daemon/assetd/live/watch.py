"""The handler: a watchdog event becomes a Change, put without blocking (DESIGN §2, STYLE 2).

:class:`RootHandler` runs on the observer's dispatcher thread. It turns each watchdog event into a
frozen :class:`~assetd.live.changes.Change` and hands it to a :class:`ChangeSink` without
blocking; it does no I/O and never raises (an exception would kill watchdog's dispatcher thread
for good). Only :data:`EVENT_FILTER`'s classes are asked for: watchdog derives the inotify mask
from it, so the daemon's own reads raise no open/close events and a large tree does not overflow
(DESIGN §9). The observers that feed it are in :mod:`assetd.live.observers`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from assetd.fsutil import IgnoreRules, encode_path
from assetd.live.changes import Change, Kind
from assetd.live.crossroot import (
    CrossRootPairer,
    DirMovedIn,
    DirMovedInFrom,
    DirMovedOut,
    FileMovedIn,
    FileMovedInFrom,
    FileMovedOut,
    Half,
)
from assetd.live.rounds import EventBatch, PathRun, spelled
from assetd.log import get_logger
from assetd.paths import relative_to
from assetd.timing import Clock

log = get_logger(__name__)

OverflowCallback = Callable[[str], None]
"""``on_overflow(root_name)``: changes were lost, reconcile the root. Called from watchdog's
threads (dispatcher or inotify reader, the latter holding watchdog's locks): set a flag, never
block, never stop an observer from inside it."""
RootEventCallback = Callable[[str, Kind], None]
"""``on_root_event(root_name, kind)``: the root directory itself was deleted (``Kind.DELETED``) or
moved (``Kind.MOVED``). Called from the dispatcher thread; same rules as OverflowCallback."""
ObserverFactory = Callable[[], BaseObserver]

# The watchdog event classes used. watchdog builds the inotify mask from this list (the root's
# IN_DELETE_SELF and, recursively, IN_CREATE are always in it). DirModifiedEvent is not needed:
# creations, deletions and moves inside directories come from IN_CREATE/IN_DELETE/IN_MOVE, which
# the created/deleted/moved classes ask for. FileAttribEvent costs no extra kernel events (the
# IN_ATTRIB bit comes with FileModifiedEvent) and is the only report of an mtime set by utime();
# DirAttribEvent (the same bit) reports a directory made readable again.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileAttribEvent,
    DirAttribEvent,
]

# Exact event class -> (kind, is_dir) for the events that name one path. DirModifiedEvent is
# absent on purpose (one per child change, no information); so is every unasked-for class.
_SIMPLE: dict[type[FileSystemEvent], tuple[Kind, bool]] = {
    FileCreatedEvent: (Kind.CREATED, False),
    DirCreatedEvent: (Kind.CREATED, True),
    FileDeletedEvent: (Kind.DELETED, False),
    DirDeletedEvent: (Kind.DELETED, True),
    FileModifiedEvent: (Kind.MODIFIED, False),
    FileClosedEvent: (Kind.MODIFIED, False),  # IN_CLOSE_WRITE: the final size after a write
    FileAttribEvent: (Kind.MODIFIED, False),
    # chmod of a directory: what changed below it while the daemon could not read it (its
    # live batches skipped what they could not stat) is looked at again, as a new directory is
    DirAttribEvent: (Kind.CREATED, True),
    # the halves of a move watched apart (assetd.live.crossroot): alone, what they were
    FileMovedOut: (Kind.DELETED, False),
    DirMovedOut: (Kind.DELETED, True),
    FileMovedIn: (Kind.CREATED, False),
    DirMovedIn: (Kind.CREATED, True),
    FileMovedInFrom: (Kind.CREATED, False),
    DirMovedInFrom: (Kind.CREATED, True),
}
_MOVES = (FileMovedEvent, DirMovedEvent)
_PARENTS_KEPT = 50_000  # directory verdicts a handler keeps before it starts over


class WatchedRoot(Protocol):
    """What a watcher needs of a root: ``config.RootConfig`` and ``catalog.roots.RootSpec`` fit."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def follow_symlinks(self) -> bool: ...
    @property
    def polling(self) -> bool: ...


class ChangeSink(Protocol):
    """Where the handler puts changes; ``put`` never blocks."""

    def put(self, change: Change) -> bool:
        """Take ``change``; False when it was dropped because the sink is full."""
        ...


class QueueSink:
    """A :class:`ChangeSink` over the bounded queue the debouncer reads (``None`` is its stop
    sentinel, never put here). One per root, all sharing the queue.

    When the queue is full the change is dropped, a ``watch.overflow`` line is logged and
    ``on_overflow(root_name)`` called, once until :meth:`reset` (call it when the root's
    reconcile starts, so a later overflow flags it again).
    """

    def __init__(
        self,
        changes: queue.Queue[Change | None],
        on_overflow: OverflowCallback,
        *,
        root_name: str,
    ) -> None:
        self.root_name = root_name
        self.dropped = 0
        self.count = 0
        """Changes offered so far (kept or dropped): when it stops moving, the root is quiet."""
        self._queue = changes
        self._on_overflow = on_overflow
        self._flagged = False
        self._lock = threading.Lock()

    @property
    def overflowed(self) -> bool:
        """True from a drop until :meth:`reset`."""
        return self._flagged

    def put(self, change: Change) -> bool:
        self.count += 1
        try:
            self._queue.put_nowait(change)
            return True
        except queue.Full:
            pass
        with self._lock:
            self.dropped += 1
            first, self._flagged = not self._flagged, True
        if first:
            log.warning(
                "watch.overflow",
                root=self.root_name,
                reason="change-queue",
                queue_size=self._queue.maxsize,
            )
            self._on_overflow(self.root_name)
        return False

    def put_many(self, changes: list[Change]) -> int:
        """``put`` each of ``changes`` under one hold of the queue's lock, waking the reader
        once; returns how many were dropped (the queue was full)."""
        q = self._queue
        self.count += len(changes)
        with q.mutex:
            room = len(changes) if q.maxsize <= 0 else max(0, q.maxsize - q._qsize())
            taken = changes[:room]
            for change in taken:
                q._put(change)
            if taken:
                q.unfinished_tasks += len(taken)
                q.not_empty.notify()
        dropped = 0
        for change in changes[len(taken) :]:  # put() tries again, else counts, logs, flags
            if not self.put(change):
                dropped += 1
        return dropped

    def reset(self) -> None:
        with self._lock:
            self._flagged = False


class RootHandler(FileSystemEventHandler):
    """Converts one root's watchdog events into Changes (see :data:`_SIMPLE`, and moves).

    Events under ignored paths (IgnoreRules on the path below the root) are dropped; a move from
    an ignored or outside path is a creation of ``dest``, a move to one a deletion of the source.
    Events of the root itself are dropped, except its deletion or move: ``on_root_event``.
    """

    def __init__(
        self,
        root_name: str,
        root_path: str,
        sink: ChangeSink,
        ignore: IgnoreRules,
        on_root_event: RootEventCallback,
        *,
        clock: Clock = time.monotonic,
        pairer: CrossRootPairer | None = None,
    ) -> None:
        super().__init__()
        self.root_name = root_name
        self.root_path = root_path
        self.last_event_monotonic = 0.0
        """``clock()`` when the last event arrived (0.0: none yet), for status."""
        self.events = 0
        self.dropped = 0
        self.errors = 0
        self._sink = sink
        self._ignore = ignore
        self._patterns = bool(ignore.patterns)
        self._on_root_event = on_root_event
        self._clock = clock
        self._pairer = pairer
        self._failed_types: set[type[BaseException]] = set()
        self._parents: dict[str, bool] = {}  # directory below the root -> ignored

    def dispatch(self, event: FileSystemEvent) -> None:
        """watchdog's entry point, on its dispatcher thread: convert, put, never raise. An
        :class:`EventBatch` (the bulk emitter's round) is its events, in order."""
        if isinstance(event, EventBatch):
            self._dispatch_batch(event)
            return
        try:
            self.events += 1
            self.last_event_monotonic = self._clock()
            for change in self._ordered(self._items(event)):
                if not self._sink.put(change):
                    self.dropped += 1
        except Exception as err:
            self._failed(err, event)

    def _dispatch_batch(self, batch: EventBatch) -> None:
        """A bulk round: converted one by one, put in one go (one queue lock, one wake-up)."""
        items: list[Change | Half] = []
        self.last_event_monotonic = self._clock()
        for event in batch.items:
            try:
                if type(event) is PathRun:
                    self.events += len(event.paths) * (2 if event.written else 1)
                    items += self._run_changes(event, batch.src_path)
                else:
                    self.events += 1
                    items += self._items(event)
            except Exception as err:
                self._failed(err, event)
        if not items:
            return
        try:
            changes = self._ordered(items)
            put_many = getattr(self._sink, "put_many", None)
            if put_many is not None:
                self.dropped += put_many(changes)
            else:
                self.dropped += sum(1 for c in changes if not self._sink.put(c))
        except Exception as err:
            self._failed(err, batch)

    def _run_changes(self, run: PathRun, watched: object) -> list[Change]:
        """A run's changes: one kind, one ``seen``; each path lies strictly below the watched
        directory (a record's name in a watched directory), so below the root when that is
        what is watched, and only the ignore rules are asked (when there are any)."""
        if watched != self.root_path:  # watched under another spelling: event by event
            return [c for e in spelled(run) if (c := self.convert(e)) is not None]
        kind, is_dir = _SIMPLE[run.cls]
        seen = time.monotonic()
        paths = run.paths
        if self._patterns:
            paths = self._kept(paths, len(self.root_path.rstrip("/")) + 1)
        if run.written:  # each file's creation, then its write
            return [
                c
                for p in paths
                for c in (
                    Change(kind, p, False, None, seen),
                    Change(Kind.MODIFIED, p, False, None, seen),
                )
            ]
        return [Change(kind, p, is_dir, None, seen) for p in paths]

    def _items(self, event: FileSystemEvent) -> list[Change | Half]:
        """``event``'s change, or, for one end of a move watched apart, a :class:`Half`."""
        change = self.convert(event)
        half = self._half(event) if self._pairer is not None else None
        if half is not None:
            return [Half(half[0], half[1], change)]
        return [] if change is None else [change]

    def _ordered(self, items: list[Change | Half]) -> list[Change]:
        """What to put now: all of ``items``, unless the pairer holds this root's changes
        (:mod:`assetd.live.crossroot`: it then puts them itself, in order)."""
        if self._pairer is None:
            return items  # type: ignore[return-value]  # no Half without a pairer
        return self._pairer.submit(self._sink, items)

    def _half(self, event: FileSystemEvent) -> tuple[object, bool] | None:
        """(key, is the move-from end) when ``event`` is one end of a move watched apart: the
        bulk emitter's unpaired halves (the kernel's cookie), or a move with one end outside
        this root (fanotify gives each root's emitter the same event)."""
        key = getattr(event, "pair_key", None)
        if key is not None:
            return key, isinstance(event, (FileMovedOut, DirMovedOut))
        if not isinstance(event, _MOVES) or not event.src_path or not event.dest_path:
            return None
        src, dest = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        src_here, dest_here = self._relative(src), self._relative(dest)
        if src_here == "" or (src_here is None) == (dest_here is None):
            return None  # the root itself, or both ends here (or neither)
        return ("rename", src, dest, event.is_directory), src_here is not None

    def convert(self, event: FileSystemEvent) -> Change | None:
        """The Change for ``event``, or None when it is dropped (may call ``on_root_event``)."""
        if getattr(event, "is_synthetic", False):
            # watchdog's per-entry copies of a directory move or create: the worker moves every
            # row under a moved directory in one statement and lists a created one itself
            return None
        if isinstance(event, _MOVES):
            return self._convert_move(event)
        simple = _SIMPLE.get(type(event))
        if simple is None:
            return None
        kind, is_dir = simple
        path = os.fsdecode(event.src_path)
        relative = self._relative(path)
        if relative == "":
            if kind is Kind.DELETED and is_dir:
                self._on_root_event(self.root_name, Kind.DELETED)
            return None
        if relative is None or self._ignored(relative):
            return None
        return Change(kind, path, is_dir)

    def _convert_move(self, event: FileSystemEvent) -> Change | None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path)
        if src and self._relative(src) == "":
            self._on_root_event(self.root_name, Kind.MOVED)
            return None
        from_inside = bool(src) and self._wanted(src)
        to_inside = bool(dest) and self._wanted(dest)
        if from_inside and to_inside:
            return Change(Kind.MOVED, src, event.is_directory, dest)
        if to_inside:
            return Change(Kind.CREATED, dest, event.is_directory)
        if from_inside:
            return Change(Kind.DELETED, src, event.is_directory)
        return None

    def _relative(self, path: str) -> str | None:
        """``path`` below the root ("" for the root itself), or None when outside it."""
        return relative_to(path, self.root_path)

    def _wanted(self, path: str) -> bool:
        relative = self._relative(path)
        return relative is not None and relative != "" and not self._ignored(relative)

    def _kept(self, paths: list[str], cut: int) -> list[str]:
        """The paths of a run (each below the root, its relative form from ``cut`` on) that
        :meth:`_ignored` keeps: the names asked about at once (``ignored_among``), each
        directory's verdict from the handler's memo."""
        if not "".join(paths).isascii():  # a catalog form may differ: one by one
            return [p for p in paths if not self._ignored(p[cut:])]
        hits = self._ignore.ignored_among([p[p.rfind("/") + 1 :] for p in paths])
        kept = []
        for p in paths:
            slash = p.rfind("/")
            if hits and p[slash + 1 :] in hits:
                continue
            if slash >= cut and self._parent_ignored(p[cut:slash]):  # its directory is
                continue
            kept.append(p)
        return kept

    def _parent_ignored(self, parent: str) -> bool:
        """Whether a directory (relative, catalog form) is ignored, kept per handler."""
        verdict = self._parents.get(parent)
        if verdict is None:
            if len(self._parents) >= _PARENTS_KEPT:
                self._parents.clear()
            verdict = self._parents[parent] = self._ignore.is_ignored(parent)
        return verdict

    def _ignored(self, relative: str) -> bool:
        # Patterns match the catalog form of a name (a non-UTF-8 byte reads as \xNN). The
        # verdict on the directory part is kept per handler (its rules never change: a reload
        # re-adds the root), so a burst in one directory matches one name per event.
        if not self._patterns:  # no rules (the handler's only cost here was this call)
            return False
        catalog = encode_path(relative)[0]
        cut = catalog.rfind("/")
        if cut < 0:
            return self._ignore.is_ignored(catalog)
        parent, name = catalog[:cut], catalog[cut + 1 :]
        return self._parent_ignored(parent) or (
            name not in ("", ".") and self._ignore.name_ignored(name)
        )

    def _failed(self, err: Exception, event: object) -> None:
        """Count the failure; log its type the first time only. Never raises."""
        try:
            self.errors += 1
            if type(err) in self._failed_types:
                return
            self._failed_types.add(type(err))
            log.error(
                "watch.handler_error",
                root=self.root_name,
                error=repr(err),
                watchdog_event=repr(event),
                exc_info=err,
            )
        except Exception:
            pass
