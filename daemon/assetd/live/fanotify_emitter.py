"""The fanotify watch backend: a watchdog emitter fed by one fanotify group per filesystem.

Roots stay watched by watchdog observers: :class:`FanotifyObserver` is a ``BaseObserver`` whose
emitter class is :class:`FanotifyEmitter`, so :class:`~assetd.live.watch.RootHandler` turns its
events into the same ``Change`` values, into the same queue, as the inotify path.

Each emitter joins the :class:`~assetd.live.fanotify_group.FanotifyGroup` of its root's
filesystem (by ``f_fsid``): one group, one filesystem mark and one reader thread per filesystem,
however many roots it holds. Nothing walks the tree: a root is live once its marks are in place
(no race with directories created meanwhile, no per-directory watch, no watch limit). Events
under ignored paths are dropped here, before they are queued.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent
from watchdog.observers.api import (
    DEFAULT_EMITTER_TIMEOUT,
    DEFAULT_OBSERVER_TIMEOUT,
    BaseObserver,
    EventEmitter,
    EventQueue,
    ObservedWatch,
)

from assetd.fsutil import IgnoreRules, encode_path
from assetd.live import fanotify_sys as fsys
from assetd.live.fanotify_group import FanotifyGroup
from assetd.live.rounds import EventBatch
from assetd.paths import relative_to

ReasonCallback = Callable[[str], None]
"""``on_overflow(reason)``: this root's events were lost; reconcile it."""


_groups: dict[bytes, FanotifyGroup] = {}
_groups_lock = threading.Lock()


def join_group(emitter: FanotifyEmitter, path: str) -> FanotifyGroup:
    """The running group of ``path``'s filesystem (started if needed), with ``path`` added."""
    fsid = fsys.fsid_of(path)
    with _groups_lock:
        group = _groups.get(fsid)
        if group is None or not group.alive:
            if group is not None:
                group.close()
            group = _groups[fsid] = FanotifyGroup(fsid)
        try:
            group.add(emitter, path)
        except BaseException:
            if group.members == 0:
                group.close()
                del _groups[fsid]
            raise
        return group


def leave_group(group: FanotifyGroup, emitter: FanotifyEmitter) -> None:
    with _groups_lock:
        if group.remove(emitter) == 0:
            group.close()
            if _groups.get(group.fsid) is group:
                del _groups[group.fsid]


def group_count() -> int:
    """Groups running (one per filesystem holding a fanotify root): for tests and status."""
    with _groups_lock:
        return len(_groups)


class FanotifyEmitter(EventEmitter):
    """One root's emitter: its events come from the filesystem's :class:`FanotifyGroup`."""

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: float = DEFAULT_EMITTER_TIMEOUT,
        event_filter: list[type[FileSystemEvent]] | None = None,
        ignore: IgnoreRules | None = None,
        on_overflow: ReasonCallback | None = None,
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._ignore = ignore
        self._on_overflow = on_overflow
        self._group: FanotifyGroup | None = None
        self.lost_since: float | None = None
        """Wall time from which the last overflow may have lost events (None: not known)."""
        self._root = watch.path
        self._wanted: tuple[type[FileSystemEvent], ...] | None = (
            None if event_filter is None else tuple(event_filter)
        )

    def on_thread_start(self) -> None:
        self._group = join_group(self, self._root)

    def on_thread_stop(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            leave_group(group, self)

    def queue_events(self, timeout: float) -> None:
        """Nothing to read here (the group's reader delivers): wait, and end with the group."""
        group = self._group
        if group is not None and not group.alive:
            self.stop()
            return
        self.stopped_event.wait(timeout)

    def deliver(self, events: list[FileSystemEvent]) -> None:
        """From the group's reader, one read's events for this root: queued as one batch (one
        queue put, one dispatch, as the bulk inotify emitter does), less the ignored ones."""
        wanted = self._wanted
        if wanted is not None:
            events = [e for e in events if isinstance(e, wanted)]
        if self._ignore is not None:
            events = [e for e in events if not self._ignored(e)]
        if events:  # the filter is applied: past queue_event's, which a batch would not pass
            self._event_queue.put((EventBatch(self._root, tuple(events)), self.watch))

    def overflow(self, reason: str) -> None:
        group = self._group  # what may be lost is newer than the group's last empty read
        self.lost_since = group.read_since if group is not None else None
        if self._on_overflow is not None:
            self._on_overflow(reason)

    def _ignored(self, event: FileSystemEvent) -> bool:
        assert self._ignore is not None
        paths = [os.fsdecode(event.src_path)]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        for path in paths:
            relative = relative_to(path, self._root)
            if relative is None or relative == "":
                return False
            if not self._ignore.is_ignored(encode_path(relative)[0]):
                return False
        return True


class FanotifyObserver(BaseObserver):
    """A watchdog observer whose emitters are :class:`FanotifyEmitter`."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_OBSERVER_TIMEOUT,
        ignore: IgnoreRules | None = None,
        on_overflow: ReasonCallback | None = None,
    ) -> None:
        super().__init__(FanotifyEmitter, timeout=timeout, ignore=ignore, on_overflow=on_overflow)
