"""A watchdog emitter of our own that reads inotify in bulk (issue 15), and its observer.

watchdog's ``InotifyEmitter`` turns every kernel record into an ``InotifyEvent``, groups moves,
builds one or more event objects (a deletion also raises its parent's ``DirModifiedEvent``) and
sends each through the observer's queue and dispatcher, one at a time, on the thread that also
reads the fd. In a burst the kernel queue (``fs.inotify.max_queued_events``, 16,384 by default)
fills faster than that and overflows. This emitter stays inside watchdog's framework (an
``EventEmitter`` an ``BaseObserver`` runs, a handler's ``dispatch`` called by the observer) but:

- a reader thread does nothing but ``os.read`` the fd in 1 MiB reads and append the bytes to a
  list, so the kernel queue drains at memory speed;
- the emitter thread parses all the bytes read so far at once (``struct.unpack_from``), keeps only
  the records the root wants (no parent ``DirModifiedEvent``, no synthetic per-entry events, a
  file's run of modify/attrib/close-write records coalesced to one, none after its creation),
  and pairs moves by cookie within the round (a move-from that ends the data waits up to
  :data:`PAIR_WAIT` for its half);
- it hands the round's events to the observer as one :class:`EventBatch`, which the handler
  unpacks: one queue operation and one dispatch per round instead of per record. Records that
  name one path and ask nothing more (a file created, deleted or modified, a directory deleted)
  are not made into event objects: those of one kind in a row are one :class:`PathRun`, the
  paths of a burst's round in a list (``EventBatch.events`` spells them out for a handler that
  wants the objects).

Watches: one per directory, added by a walk at start and for each directory created or moved in
(:class:`~assetd.live.inotify_watches.WatchTable`). A directory's move-from detaches the watches
under it until its move-to is read: then they are rewritten under the new path, or, when the
directory left the root, removed. What they report meanwhile is not read at a stale path: a move
out of such a directory back into the root goes to the pairer with the parent move's cookie
(:class:`~assetd.live.crossroot.Under`), anything else gets the directory listed after its move.
An ``IN_Q_OVERFLOW`` record sets ``lost_since`` (the wall time from which events may have been
lost: the reader's last empty read before the round's data, :attr:`Reader.taken_since`) and
calls ``on_overflow`` (given to the observer);
the deletion of the root itself is a ``DirDeletedEvent`` of the root, and the emitter stops.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
import time
from collections.abc import Callable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import (
    DEFAULT_OBSERVER_TIMEOUT,
    BaseObserver,
    EventEmitter,
    EventQueue,
    ObservedWatch,
)
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import InotifyConstants as C

from assetd.live.crossroot import moved_in, moved_in_from, moved_out
from assetd.live.inotify_read import GATHER, READ_SIZE, STREAM, STREAM_BYTES, Rate, Reader
from assetd.live.inotify_watches import WatchTable
from assetd.live.rounds import EventBatch as EventBatch  # re-exported
from assetd.live.rounds import PathRun as PathRun  # re-exported

__all__ = [
    "GATHER",
    "PAIR_WAIT",
    "READ_SIZE",
    "STREAM",
    "STREAM_BYTES",
    "BulkInotifyEmitter",
    "BulkInotifyObserver",
    "EventBatch",
    "PathRun",
]

PAIR_WAIT = 0.01
"""Seconds a move-from that ends the data read so far waits for its move-to."""
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (inotify(7))
_MODIFY_FAMILY = C.IN_MODIFY | C.IN_ATTRIB | C.IN_CLOSE_WRITE
_DELETED = (FileDeletedEvent, DirDeletedEvent)  # by is_dir
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
"""``os.fsdecode``'s own, for a name decoded without its call."""
_DIR_WATCH_MASK = C.IN_DONT_FOLLOW  # added to the filter's mask unless symlinks are followed

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_IN_CLOEXEC = os.O_CLOEXEC
_IN_NONBLOCK = os.O_NONBLOCK


class BulkInotifyEmitter(EventEmitter):
    """One recursive (or not) watch, read in bulk; see the module docstring."""

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: float = 1.0,
        event_filter: list[type[FileSystemEvent]] | None = None,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._on_overflow = on_overflow
        self._root = os.fsencode(self.watch.path)
        self._mask: int = InotifyEmitter.get_event_mask_from_filter(self)  # type: ignore[arg-type]
        if not self.watch.follow_symlink:
            self._mask |= _DIR_WATCH_MASK
        self._mask |= C.IN_CREATE | C.IN_MOVE | C.IN_DELETE_SELF  # directories to follow
        self._fd = -1
        self._closing = threading.Lock()
        self._reader: Reader | None = None
        self._table = WatchTable()
        self.overflows = 0
        self.lost_since: float | None = None
        """Wall time from which the last overflow may have lost events (None: none yet)."""
        self._round_since = time.time()
        self._rate = Rate()

    # --- watches ------------------------------------------------------------------------------

    def _add_watch(self, path: bytes) -> bool:
        """False when ``path`` cannot be watched: gone or no directory any more (its parent's
        events say so) or the watch table is full (as watchdog, a subtree goes unwatched; the
        observer's owner probes the limit). Only the root's own failure raises."""
        wd = int(_libc.inotify_add_watch(self._fd, path, self._mask))
        if wd < 0:
            code = ctypes.get_errno()
            if path == self._root:
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return False
        self._table.add(wd, path)
        return True

    def _add_tree(self, top: bytes, found: list[FileSystemEvent] | None = None) -> None:
        """Watch ``top`` and, when recursive, every directory below it. ``found`` (a directory
        created or moved in) gets a created event for each entry below ``top``: they may have
        been made before their directory's watch existed (as watchdog does)."""
        if not self._add_watch(top) or not self.watch.is_recursive:
            return
        stack = [top]
        follow = self.watch.follow_symlink
        while stack:
            path = stack.pop()
            try:
                with os.scandir(path) as entries:
                    listed = [(e.path, e.is_dir(follow_symlinks=follow)) for e in entries]
            except OSError:
                continue
            for sub, is_dir in listed:
                if is_dir and self._add_watch(sub):
                    stack.append(sub)
                if found is not None:
                    cls = DirCreatedEvent if is_dir else FileCreatedEvent
                    found.append(cls(os.fsdecode(sub)))

    # --- thread -------------------------------------------------------------------------------

    def on_thread_start(self) -> None:
        made = time.time()  # an overflow before the first empty read lost events from here on
        fd = int(_libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self._fd = fd
        self._add_tree(self._root)
        name = f"assetd-inotify-read-{os.path.basename(self.watch.path)}"
        self._reader = Reader(fd, name, since=made)
        self._reader.start()

    def on_thread_stop(self) -> None:
        with self._closing:
            reader, self._reader = self._reader, None
            fd, self._fd = self._fd, -1
        if reader is not None:
            reader.stop()
        if fd >= 0:
            os.close(fd)

    def watched(self) -> list[str]:
        """The directories watched now."""
        return [os.fsdecode(p) for p in self._table.wds]

    def kill_reader(self) -> None:
        """End the reader thread alone (a test's stand-in for a failed read)."""
        reader = self._reader
        if reader is not None:
            reader.stop()

    def activity(self) -> int:
        """Bytes the reader has taken from the kernel so far (moves while events come)."""
        reader = self._reader
        return reader.read_bytes if reader is not None else 0

    def reader_alive(self) -> bool:
        reader = self._reader
        return reader is not None and reader.is_alive()

    def queue_events(self, timeout: float) -> None:
        reader = self._reader
        if reader is None:
            return
        data = reader.take(timeout)
        if not data:
            if reader.error is not None:
                raise reader.error
            if not reader.is_alive() and self.should_keep_running():
                self.stop()  # the reader ended by itself: so does this emitter (seen as dead)
            return
        self._round_since = reader.taken_since
        if self._rate.streaming(time.monotonic()):
            time.sleep(GATHER)  # a stream: gather more records into this round
            data += reader.take(0.0)
        self._rate.add(len(data))
        events = self._parse(data, reader)
        if events:
            self.queue_event(EventBatch(os.fsdecode(self._root), tuple(events)))

    def queue_event(self, event: FileSystemEvent) -> None:
        self._event_queue.put((event, self.watch))  # the filter was applied while parsing

    def _overflowed(self) -> None:
        """Events were lost: report it, and watch directories made meanwhile (their creation
        may be among the lost events; a watch already held is kept as it is)."""
        self.overflows += 1
        self.lost_since = self._round_since
        if self._on_overflow is not None:
            self._on_overflow(self.watch.path)
        if self.watch.is_recursive:
            self._add_tree(self._root)

    # --- parsing ------------------------------------------------------------------------------

    def _parse(self, data: bytes, reader: Reader) -> list[FileSystemEvent]:
        out: list[FileSystemEvent | None] = []
        moves: dict[int, tuple[int, bytes, bool]] = {}  # cookie -> (index in out, src, is_dir)
        taken: dict[int, dict[int, bytes]] = {}  # cookie -> the watches its move detached
        spoke: set[int] = set()  # cookies whose detached watches reported something meanwhile
        within: dict[int, tuple[int, bytes]] = {}  # cookie -> (parent cookie, path below it)
        went: dict[int, bytes] = {}  # cookie of a directory move paired here -> its dest
        modified = b""  # the file of the last record when that was a modify-family one
        table, root = self._table, self._root
        root_text, decode = os.fsdecode(root), bytes.decode
        created = b""  # the file of the last record when that was its creation
        paths, detached = table.paths, table.detached
        unpack, size = _HEADER.unpack_from, _HEADER.size
        pos, end = 0, len(data)
        while True:
            if pos >= end:
                if not moves or not isinstance(out[-1], _PendingFrom):
                    break
                more = reader.take(PAIR_WAIT)  # a move-from ended the data: its half may follow
                if not more:
                    break
                data, pos, end = more, 0, len(more)
            wd, mask, cookie, length = unpack(data, pos)
            just_created, created = created, b""
            name = data[pos + size : pos + size + length].rstrip(b"\0")
            pos += size + length
            if wd == -1:
                if mask & C.IN_Q_OVERFLOW:
                    self._overflowed()
                continue
            base = paths.get(wd)
            if base is None:  # no watch of ours, or one whose directory is moving (its path
                parent = detached.get(wd) if name else None  # unknown until its move-to)
                if parent is not None and mask & C.IN_MOVED_FROM:  # out of it: from where?
                    rel = taken[parent][wd][len(moves[parent][1]) :] + b"/" + name
                    within[cookie] = (parent, rel)
                    moves[cookie] = (len(out), b"", bool(mask & C.IN_ISDIR))
                    out.append(_PendingFrom(""))
                elif parent is not None:  # what it saw is looked at after the move
                    spoke.add(parent)
                elif mask & C.IN_IGNORED:
                    table.ignored(wd)
                continue
            if mask & C.IN_IGNORED:
                table.ignored(wd)
                continue
            is_dir = bool(mask & C.IN_ISDIR)
            if not name:  # an event of the watched directory itself
                if mask & C.IN_DELETE_SELF and base == root:
                    out.append(DirDeletedEvent(os.fsdecode(root)))
                    self.stop()
                continue
            path = base + b"/" + name
            if mask & _MODIFY_FAMILY:
                if is_dir:  # a chmod: look again at what it may have hidden (live/watch.py)
                    if mask & C.IN_ATTRIB:
                        out.append(DirAttribEvent(os.fsdecode(path)))
                        if path not in table.wds and self.watch.is_recursive:
                            self._add_tree(path)  # unreadable when walked: watchable now?
                    continue
                if path == modified:  # a write's IN_MODIFY run, then IN_CLOSE_WRITE
                    continue
                modified = path
                cls: type[FileSystemEvent] = FileModifiedEvent
                written = path == just_created  # its creation's record came right before:
                if written:  # the two are one path of a run of created-and-written files
                    _unrun_last(out)
                    cls = FileCreatedEvent
            elif mask & C.IN_CREATE and is_dir:
                modified = b""
                out.append(DirCreatedEvent(os.fsdecode(path)))
                if self.watch.is_recursive:
                    self._add_tree(path, found=out)  # type: ignore[arg-type]
                continue
            elif mask & C.IN_CREATE:
                modified, created, written = b"", path, False
                cls = FileCreatedEvent
            elif mask & C.IN_DELETE:
                modified, written = b"", False
                cls = _DELETED[is_dir]
            elif mask & C.IN_MOVED_FROM:
                modified = b""
                moves[cookie] = (len(out), path, is_dir)
                if is_dir:
                    taken[cookie] = table.detach(path, cookie)
                out.append(_PendingFrom(os.fsdecode(path)))
                continue
            elif mask & C.IN_MOVED_TO:
                modified = b""
                half = moves.pop(cookie, None)
                if half is not None:
                    at, src, _ = half
                    out[at] = None
                    if cookie in within:  # from below a directory on its way somewhere
                        parent, rel = within.pop(cookie)
                        if parent not in went:  # another root's: the pairer knows where
                            out.append(
                                moved_in_from(os.fsdecode(path), is_dir, parent, os.fsdecode(rel))
                            )
                            if is_dir and self.watch.is_recursive:
                                self._add_tree(path)
                            continue
                        src = went[parent] + rel
                    moved = DirMovedEvent if is_dir else FileMovedEvent
                    out.append(moved(os.fsdecode(src), os.fsdecode(path)))
                    if is_dir:
                        went[cookie] = path
                        table.attach(taken.pop(cookie, {}), src, path)
                        if cookie in spoke:  # what happened in it meanwhile: look at it
                            out.append(DirCreatedEvent(os.fsdecode(path)))
                else:  # its half may be another root's (assetd.live.crossroot)
                    out.append(moved_in(os.fsdecode(path), is_dir, cookie))
                    if is_dir and self.watch.is_recursive:
                        self._add_tree(path)  # moved in whole: the worker lists it
                continue
            else:
                modified = b""
                continue
            # a record naming one path, nothing else to do: into the run of its kind
            last = out[-1] if out else None
            if type(last) is PathRun and last.cls is cls and last.written is written:
                last.paths.append(decode(path, _FS_ENCODING, _FS_ERRORS))
            else:
                out.append(
                    PathRun(
                        root_text, cls, [decode(path, _FS_ENCODING, _FS_ERRORS)], written=written
                    )
                )
        for cookie, (at, src, is_dir) in moves.items():  # moved out of the root (to another?)
            for wd in table.release(taken.pop(cookie, {})):  # their tree left the root
                _libc.inotify_rm_watch(self._fd, wd)
            # one from below a directory that left too: its new root's watch saw it, if any
            out[at] = None if cookie in within else moved_out(os.fsdecode(src), is_dir, cookie)
        return [e for e in out if e is not None]


def _unrun_last(out: list[FileSystemEvent | None]) -> None:
    """Take the last path off the run that ends ``out`` (and the run, when that empties it)."""
    run = out[-1]
    assert type(run) is PathRun
    run.paths.pop()
    if not run.paths:
        out.pop()


class _PendingFrom(FileSystemEvent):
    """A move-from waiting for its move-to (never leaves the emitter)."""

    event_type = "pending_from"


class BulkInotifyObserver(BaseObserver):
    """A watchdog observer whose emitters are :class:`BulkInotifyEmitter` (each with its own fd).
    ``on_overflow(path)`` is called on the emitter thread for each kernel queue overflow."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_OBSERVER_TIMEOUT,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(BulkInotifyEmitter, timeout=timeout, on_overflow=on_overflow)
