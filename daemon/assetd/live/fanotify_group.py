"""One fanotify group per filesystem: its reader thread, its handle tree, its translation.

A :class:`FanotifyGroup` holds one ``FAN_MARK_FILESYSTEM`` mark for the filesystem of its
roots, an inode mark on each root directory (its own deletion or move), and a reader thread. The
reader drains the group, resolves each event's directory handle with a
:class:`~assetd.live.fanotify_tree.HandleTree` (in event order) and hands watchdog events to the
:class:`Receiver` (an emitter) whose root holds a path, one batch per root per read. A directory
outside every root is looked up once: its later events are dropped while the buffer is parsed
(:class:`~assetd.live.fanotify_sys.OutsideFilter`, sharing the tree's set of such directories).

- The queue is unlimited: no ``FAN_Q_OVERFLOW``; one that comes anyway is an overflow of every
  root of the group, as with inotify; so is a directory gone that no event read places (never a
  guess). ``read_since``: the last empty read before the current read (what was lost is newer).
- A directory's own FAN_ATTRIB (chmod; its record names the directory with the name ".") is a
  ``DirAttribEvent``, a look-again below it, as on the inotify backends.
- A move read before a directory rename still in the same read, through a directory looked up
  in this read (so its path is the one after the rename: a *careful* move), keeps its place in
  the order; its paths are taken back through the later directory renames of the read once they
  are all known (:func:`before_renames`), and it is routed then (before, a directory moved to
  another root just before its parent was renamed left its rows missing under the renamed
  parent). A lookup answers for now, so what the kernel queued before it (a rename that made
  that path "now") is read into the current read right after it (``_after_lookup``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from assetd.live import fanotify_sys as fsys
from assetd.live.fanotify_sys import Entry, RawEvent
from assetd.live.fanotify_tree import HandleTree, Node
from assetd.log import get_logger
from assetd.paths import is_under, relative_to

log = get_logger(__name__)


class Receiver(Protocol):
    """What a group feeds: one root's emitter, once per read, the events in order."""

    def deliver(self, events: list[FileSystemEvent]) -> None: ...

    def overflow(self, reason: str) -> None: ...


READ_SIZE = 1 << 20
MAX_DRAIN = 16 << 20  # bytes read before the events are applied
_CHANGE_BITS = fsys.FAN_MODIFY | fsys.FAN_CLOSE_WRITE | fsys.FAN_ATTRIB


def _join(parent: str, name: bytes) -> str:
    text = os.fsdecode(name)
    return parent + text if parent.endswith("/") else f"{parent}/{text}"


def _entry_path(root: str | None, parent: str | None, name: bytes) -> str | None:
    """The path of an event's entry: the root itself when the entry is a root (its parent is
    outside), else ``name`` in ``parent`` (None: outside every root)."""
    if root is not None:
        return root
    return None if parent is None else _join(parent, name)


@dataclass(slots=True)
class _Rename:
    """A move handed out in this read (``careful``: its paths are the ones after the read's
    later directory renames, to be taken back; until then it is a placeholder in every
    member's events)."""

    src: str
    dest: str
    is_dir: bool
    careful: bool


def _before(at: int, state: dict[str, int]) -> bool:
    """Whether a directory rename comes after event ``at`` in the read (as read so far)."""
    return at < state["last_dir_rename"]


def before_renames(path: str, later: list[_Rename]) -> str:
    """``path`` as it was before the directory renames ``later`` (in their order)."""
    for move in reversed(later):
        if move.is_dir and (path == move.dest or is_under(path, move.dest)):
            path = move.src + path[len(move.dest) :]
    return path


@dataclass(slots=True)
class _Member:
    emitter: Receiver
    path: str  # the root as configured
    real: str  # its real path (what /proc/self/fd shows)
    mount_fd: int
    key: bytes
    out: list[FileSystemEvent] = field(default_factory=list)  # this read's events for it

    def placed(self, event: FileSystemEvent | _Rename) -> FileSystemEvent | None:
        """``event``, or the move a careful placeholder stands for when it concerns this root."""
        if not isinstance(event, _Rename):
            return event
        if not any(p == self.path or is_under(p, self.path) for p in (event.src, event.dest)):
            return None
        return (DirMovedEvent if event.is_dir else FileMovedEvent)(event.src, event.dest)


class FanotifyGroup:
    """One fanotify group for one filesystem, its reader thread and its handle tree."""

    def __init__(self, fsid: bytes) -> None:
        self.fsid = fsid
        self.error: BaseException | None = None
        self.events = 0
        self.clear_at = self.read_since = time.time()  # see the module docstring
        self._fd = fsys.init_group()
        self._marked = False
        self._members: list[_Member] = []
        self._lock = threading.Lock()
        self._tree = HandleTree(self._lookup)
        self._after_lookup: Callable[[], None] | None = None  # set while a read is applied
        self._renames: list[_Rename] = []  # this read's moves, in order
        self._filter = fsys.OutsideFilter(self._tree.outside_keys, self._tree.root_keys)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"assetd-fanotify-{fsid.hex()[:8]}", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    @property
    def members(self) -> int:
        return len(self._members)

    def add(self, emitter: Receiver, path: str) -> None:
        """Watch root ``path`` for ``emitter`` (OSError, FanotifyUnsupported)."""
        real = os.path.realpath(path)
        key = fsys.handle_key(real)
        mount_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not self._marked:
                flags = fsys.FAN_MARK_ADD | fsys.FAN_MARK_FILESYSTEM
                fsys.mark(self._fd, flags, fsys.FS_MASK, real)
                self._marked = True
            flags = fsys.FAN_MARK_ADD | fsys.FAN_MARK_ONLYDIR
            fsys.mark(self._fd, flags, fsys.ROOT_MASK, real)
        except BaseException:
            os.close(mount_fd)
            raise
        with self._lock:
            self._members.append(_Member(emitter, path, real, mount_fd, key))
            self._tree.add_root(key, path)

    def remove(self, emitter: Receiver) -> int:
        """Stop feeding ``emitter``; the members left."""
        with self._lock:
            gone = [m for m in self._members if m.emitter is emitter]
            self._members = [m for m in self._members if m.emitter is not emitter]
            for member in gone:
                os.close(member.mount_fd)
                if not any(m.path == member.path for m in self._members):
                    self._tree.remove_root(member.path)
            return len(self._members)

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with self._lock:
            for member in self._members:
                os.close(member.mount_fd)
            self._members = []

    # --- the reader -------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping:
                poller.poll(1000)
                if self._stopping:
                    return
                with self._lock:  # held by add/remove, and by tests to make one read
                    self.read_since = self.clear_at
                    events = self._drain()
                    if events:
                        self._apply(events)
                    self._flush()
                    self._filter.rearm()
        except Exception as err:  # the emitters see the group dead and stop: restarted
            self.error = err
            log.error("watch.fanotify_failed", fsid=self.fsid.hex(), error=repr(err))

    def _drain(self) -> list[RawEvent]:
        """Every event queued now (up to MAX_DRAIN bytes): read first, then parsed, so the queue
        empties at the speed of reads (each event queued behind others costs the process that
        caused it a merge check against them: an unlink took twice as long with a long queue)."""
        chunks: list[bytes] = []
        size = 0
        while size < MAX_DRAIN:
            chunk = fsys.read_events(self._fd, READ_SIZE)
            if not chunk:
                self.clear_at = time.time()
                break
            chunks.append(chunk)
            size += len(chunk)
        events: list[RawEvent] = []
        for chunk in chunks:
            events += fsys.parse_events(chunk, self._filter)
        return events

    def _lookup(self, key: bytes) -> str | None:
        """:meth:`_lookup_now`, then what was queued meanwhile read into the current read."""
        path = self._lookup_now(key)
        if self._after_lookup is not None:
            self._after_lookup()
        return path

    def _lookup_now(self, key: bytes) -> str | None:
        """The path of directory ``key`` now, as a root names it; None: outside every root.

        Each root's mount is asked (roots on two bind mounts of one filesystem see different
        parts of it; a directory a mount cannot reach reads as ``/``)."""
        last: OSError | None = None
        for member in self._members:
            try:
                path = fsys.handle_path(member.mount_fd, key)
            except OSError as err:
                last = err
                continue
            last = None
            for other in self._members:
                rest = relative_to(path, other.real)
                if rest is not None:
                    return os.path.join(other.path, rest) if rest else other.path
        if last is not None:
            raise last
        return None

    def _apply(self, events: list[RawEvent]) -> None:
        """Resolve and hand out one drained read, in order.

        ``pending`` maps each directory a later event of the read deletes or renames to the
        entry it had: a directory gone by the time it is looked up is placed by it. When the
        deletion is not in the read yet, the queue is drained again (the deletion happened
        before the lookup failed, so its event is queued) and the event retried once.
        """
        pending: dict[bytes, Entry] = {}
        state = {"last_dir_rename": -1}

        def index(start: int) -> None:
            for at in range(start, len(events)):
                event = events[at]
                if event.mask & fsys.FAN_ONDIR and event.target is not None and event.entry:
                    if event.mask & (fsys.FAN_DELETE | fsys.FAN_RENAME):
                        pending.setdefault(event.target, event.entry)
                    if event.mask & fsys.FAN_RENAME:
                        state["last_dir_rename"] = at

        def more() -> None:
            found = self._drain()
            if found:
                start = len(events)
                events.extend(found)
                index(start)

        index(0)
        self._tree.fresh.clear()  # anchors looked up from now on: paths of now
        at = 0
        try:
            while at < len(events):
                # a lookup answers for now: a rename done before it is queued by then, read into
                # this read at once so that a move resolved through it knows it is careful (for
                # a move only: in a burst, reading on would hold the whole burst in one read)
                self._after_lookup = more if events[at].mask & fsys.FAN_RENAME else None
                careful = functools.partial(_before, at, state)
                if not self._one(events[at], pending, careful=careful, last_try=False):
                    more()
                    self._one(events[at], pending, careful=careful, last_try=True)
                self.events += 1
                at += 1
        finally:
            self._after_lookup = None

    def _one(
        self,
        event: RawEvent,
        pending: dict[bytes, Entry],
        *,
        careful: Callable[[], bool],
        last_try: bool,
    ) -> bool:
        """Hand out one event; False (nothing done) when its directory could not be placed
        and this is not ``last_try``."""
        mask = event.mask
        if mask & fsys.FAN_Q_OVERFLOW:
            self._overflow_all("fanotify-queue")
            return True
        root = self._tree.root_of_key(event.target)
        if event.entry is None:
            if root is not None and mask & (fsys.FAN_DELETE_SELF | fsys.FAN_MOVE_SELF):
                gone = DirDeletedEvent(root) if mask & fsys.FAN_DELETE_SELF else None
                self._send(gone or DirMovedEvent(root, ""), root)
            return True
        if event.entry.name == b"." and not mask & fsys.FAN_ATTRIB:
            return True
        resolved = self._tree.resolve(event.entry.dir_handle, pending)
        if resolved is None:
            if last_try:
                self._overflow_all("fanotify-unresolved")
            return last_try
        node, parent = resolved
        if event.entry.name == b".":  # an event on a directory itself: its handle, name "."
            if mask & fsys.FAN_ATTRIB and parent is not None:  # chmod: a look-again below it
                self._send(DirAttribEvent(parent), parent)
            return True
        if mask & fsys.FAN_RENAME:
            return self._rename(
                event, node, parent, root, pending, careful=careful, last_try=last_try
            )
        path = _entry_path(root, parent, event.entry.name)
        if path is None:  # outside every root
            if mask & fsys.FAN_CREATE and event.is_dir and event.target is not None:
                self._tree.outside(event.target)  # known: never looked up, never "gone"
            return True
        is_dir = event.is_dir
        if mask & fsys.FAN_CREATE:
            self._send(DirCreatedEvent(path) if is_dir else FileCreatedEvent(path), path)
            if is_dir:
                self._tree.created(node, os.fsdecode(event.entry.name), event.target)
        if mask & _CHANGE_BITS and not is_dir:
            closed = mask & fsys.FAN_CLOSE_WRITE
            self._send(FileClosedEvent(path) if closed else FileModifiedEvent(path), path)
        if mask & fsys.FAN_DELETE:
            self._send(DirDeletedEvent(path) if is_dir else FileDeletedEvent(path), path)
            if is_dir:
                self._tree.deleted(event.target)
        return True

    def _rename(
        self,
        event: RawEvent,
        node: Node,
        parent: str | None,
        root: str | None,
        pending: dict[bytes, Entry],
        *,
        careful: Callable[[], bool],
        last_try: bool,
    ) -> bool:
        assert event.entry is not None
        src = _entry_path(root, parent, event.entry.name)
        new = event.new_entry
        dest_node: tuple[Node, str | None] | None = None
        dest = None
        if new is not None:
            dest_node = self._tree.resolve(new.dir_handle, pending)
            if dest_node is None and not last_try:
                return False
            if dest_node is not None and dest_node[1] is not None:
                dest = _join(dest_node[1], new.name)
        is_dir = event.is_dir
        if is_dir and dest_node is not None and new is not None:
            self._tree.renamed(
                src, dest_node[0], os.fsdecode(new.name), event.target, from_outside=parent is None
            )
        elif is_dir:
            self._tree.deleted(event.target)
        fresh = careful()  # a directory rename follows in this read: were these paths of now?
        if fresh:
            fresh = self._tree.is_fresh(node) or (
                dest_node is not None and self._tree.is_fresh(dest_node[0])
            )
        if src is not None and dest is not None:
            move = _Rename(src, dest, is_dir, fresh)
            self._renames.append(move)
            if fresh:  # its paths are fixed, and it is routed, at the end of the read
                for member in self._members:
                    member.out.append(move)  # type: ignore[arg-type]
            else:
                moved = DirMovedEvent(src, dest) if is_dir else FileMovedEvent(src, dest)
                self._send(moved, src, dest)
            return True
        if src is not None:
            self._send(DirDeletedEvent(src) if is_dir else FileDeletedEvent(src), src)
        if dest is not None:
            self._send(DirCreatedEvent(dest) if is_dir else FileCreatedEvent(dest), dest)
        if new is not None and dest_node is None:
            self._overflow_all("fanotify-unresolved")  # where it went is not known
        return True

    def _send(self, event: FileSystemEvent, *paths: str) -> None:
        members = self._members
        if len(members) == 1:  # the tree gives paths inside the roots only
            members[0].out.append(event)
            return
        for member in members:
            if any(is_under(p, member.path) for p in paths if p):
                member.out.append(event)

    def _flush(self) -> None:
        """Hand each member its events of this read, in one go (careful moves fixed)."""
        renames, self._renames = self._renames, []
        careful = [i for i, m in enumerate(renames) if m.careful]
        for i in reversed(careful):  # the last first: the earlier ones go back through it
            move, later = renames[i], renames[i + 1 :]
            move.src, move.dest = before_renames(move.src, later), before_renames(move.dest, later)
            move.careful = False
        for member in self._members:
            if member.out:
                out, member.out = member.out, []
                if careful:
                    out = [e for e in map(member.placed, out) if e is not None]
                member.emitter.deliver(out)

    def _overflow_all(self, reason: str) -> None:
        self._flush()  # what came before the loss first
        for member in self._members:
            member.emitter.overflow(reason)
