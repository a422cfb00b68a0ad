"""A rename whose two ends are watched apart becomes one move again (DESIGN §2, content rule 1).

Each root has its own watch: its own inotify instance (:mod:`assetd.live.inotify_bulk`), or its
own share of a fanotify group's events. ``mv r0/a r1/b`` therefore reaches root ``r0`` as a
*half* (a move out of it: for the handler, a deletion) and root ``r1`` as the other half (a move
in: a creation). Left so, the row of ``a`` is marked missing and ``b`` is a new file: metadata
follows only if the hasher confirms a guessed pairing (rule 8), and never if ``b`` is edited
before it is read. The halves can be paired, though:

- inotify: the kernel's rename cookie comes from one counter for the whole system (fsnotify's),
  so an ``IN_MOVED_FROM`` read by one instance and an ``IN_MOVED_TO`` read by another carry the
  same cookie. The bulk emitter sends an unpaired half as :class:`FileMovedOut` or
  :class:`FileMovedIn` (or the directory forms) with that cookie; a pair split over two read
  rounds of one root meets here too.
- fanotify: ``FAN_RENAME`` carries both ends, and the group hands the same move event to the
  emitter of each root holding an end; each handler sees a move with one end outside its root.

:class:`CrossRootPairer` (one for all roots; handlers call it from their observers' threads)
keeps each root's changes in kernel order. A root's changes pass straight through while none of
its halves waits; from a half on, they queue behind it. A half waits up to :data:`PAIR_WINDOW`
seconds for its partner; when both halves of a pair are at the head of their roots' queues
(everything either root saw before the rename has gone out), they go out as one ``MOVED`` change
(the worker moves the row, or every row under a directory, from one root to the other),
followed by a look at the source (the disk decides what stands there now) and, for a directory,
a listing of it at its destination (its new root watches it only from when it read the move).
So ``mv r1/y r0/x; mv r0/x r0/z`` is applied in that order: ``x`` gains ``y``'s tags (rule 7),
then goes to ``z``.
A half with no partner in time goes out as what it was (a deletion or a creation); one whose
handler ignores its path is a half with no change, and its pair goes out as the other half alone.
A pair whose other half stays stuck behind something else for another window goes out as two
halves alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
)

from assetd.live.changes import Change, Kind
from assetd.timing import Clock

__all__ = [
    "PAIR_WINDOW",
    "CrossRootPairer",
    "DirMovedIn",
    "DirMovedInFrom",
    "DirMovedOut",
    "FileMovedIn",
    "FileMovedInFrom",
    "FileMovedOut",
    "Half",
    "Under",
]

WENT_KEPT = 1024
"""Paired directory moves whose destination is remembered (for :class:`Under`, which comes
within the same read round as its parent's move)."""
PAIR_WINDOW = 0.25
"""Seconds a half waits for its partner. The two ends are read by two threads (one per root)
and the move-from of a round waits for its half 10 ms before it is sent (``PAIR_WAIT``); the
rest is room for a loaded machine. Only a move from or to an unwatched place waits it out."""


class _Sink(Protocol):
    def put(self, change: Change) -> bool: ...


class FileMovedOut(FileDeletedEvent):
    """A file moved out of the root, with the kernel's rename ``cookie``."""

    def __init__(self, src_path: str, cookie: int) -> None:
        super().__init__(src_path)
        self.pair_key: Hashable = ("cookie", cookie)


class DirMovedOut(DirDeletedEvent):
    """A directory moved out of the root, with the kernel's rename ``cookie``."""

    def __init__(self, src_path: str, cookie: int) -> None:
        super().__init__(src_path)
        self.pair_key: Hashable = ("cookie", cookie)


class FileMovedIn(FileCreatedEvent):
    """A file moved into the root, with the kernel's rename ``cookie``."""

    def __init__(self, src_path: str, cookie: int) -> None:
        super().__init__(src_path)
        self.pair_key: Hashable = ("cookie", cookie)


class DirMovedIn(DirCreatedEvent):
    """A directory moved into the root, with the kernel's rename ``cookie``."""

    def __init__(self, src_path: str, cookie: int) -> None:
        super().__init__(src_path)
        self.pair_key: Hashable = ("cookie", cookie)


@dataclass(frozen=True, slots=True)
class Under:
    """The key of a move into the root from ``rel`` below a directory that the move ``parent``
    (a pair key) took elsewhere meanwhile: its source is known once ``parent``'s halves are
    paired (the bulk emitter read it through a watch of that directory, at its old path)."""

    parent: Hashable
    rel: str


class FileMovedInFrom(FileMovedIn):
    """A file moved into the root from below a directory on its way elsewhere (:class:`Under`)."""

    def __init__(self, src_path: str, parent_cookie: int, rel: str) -> None:
        super().__init__(src_path, parent_cookie)
        self.pair_key = Under(("cookie", parent_cookie), rel)


class DirMovedInFrom(DirMovedIn):
    """A directory moved into the root from below one on its way elsewhere (:class:`Under`)."""

    def __init__(self, src_path: str, parent_cookie: int, rel: str) -> None:
        super().__init__(src_path, parent_cookie)
        self.pair_key = Under(("cookie", parent_cookie), rel)


def moved_in_from(
    path: str, is_dir: bool, parent_cookie: int, rel: str
) -> FileMovedInFrom | DirMovedInFrom:
    return (DirMovedInFrom if is_dir else FileMovedInFrom)(path, parent_cookie, rel)


def moved_out(path: str, is_dir: bool, cookie: int) -> FileMovedOut | DirMovedOut:
    return DirMovedOut(path, cookie) if is_dir else FileMovedOut(path, cookie)


def moved_in(path: str, is_dir: bool, cookie: int) -> FileMovedIn | DirMovedIn:
    return DirMovedIn(path, cookie) if is_dir else FileMovedIn(path, cookie)


@dataclass(eq=False, slots=True)
class Half:
    """One end of a move watched apart: ``key`` names the move (``out``: its move-from end),
    ``change`` is what it stands for alone (None: its path is ignored here)."""

    key: Hashable
    out: bool
    change: Change | None
    sink: _Sink | None = None
    deadline: float = 0.0
    partner: Half | None = None


Item = Change | Half


class CrossRootPairer:
    """Pairs the halves of a move watched apart, in each root's order; see the module
    docstring."""

    def __init__(self, window: float = PAIR_WINDOW, clock: Clock = time.monotonic) -> None:
        self.window = window
        self.paired = 0
        """Moves made of two halves (for tests and status)."""
        self._clock = clock
        self._queues: dict[int, tuple[_Sink, deque[Item]]] = {}  # id(sink) -> its held items
        # (key, is the move-from end) -> halves waiting for a partner, oldest first (a key may
        # come twice: fanotify's is (src, dest), a file may go back and forth in the window)
        self._open: dict[tuple[Hashable, bool], list[Half]] = {}
        self._went: dict[Hashable, str] = {}  # a paired directory move's key -> its dest (recent)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, sink: _Sink, items: list[Item]) -> list[Change]:
        """A root's changes and halves, in its order. Returns the changes the caller puts into
        ``sink`` now (nothing of this root is held); otherwise they are put, in order, by this
        pairer (at once, or by its thread once a half is paired or given up)."""
        with self._cond:
            held = self._queues.get(id(sink))
            if held is None and not any(isinstance(i, Half) for i in items):
                return items  # type: ignore[return-value]  # no Half among them
            if held is None:
                held = self._queues[id(sink)] = (sink, deque())
            now = self._clock()
            for item in items:
                if isinstance(item, Half):
                    self._open_half(item, sink, now)
                held[1].append(item)
            self._drain(now)
            if self._queues and self._thread is None:
                self._thread = threading.Thread(
                    target=self._release_loop, name="assetd-crossroot", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return []

    def _open_half(self, half: Half, sink: _Sink, now: float) -> None:
        half.sink, half.deadline = sink, now + self.window
        if isinstance(half.key, Under):  # no partner of its own: see _head_goes
            return
        waiting = self._open.get((half.key, not half.out))
        if waiting:
            other = waiting.pop(0)
            if not waiting:
                del self._open[(half.key, not half.out)]
            half.partner, other.partner = other, half
        else:
            self._open.setdefault((half.key, half.out), []).append(half)

    def _close_half(self, half: Half) -> None:
        waiting = self._open.get((half.key, half.out))
        if waiting and half in waiting:
            waiting.remove(half)
            if not waiting:
                del self._open[(half.key, half.out)]

    def _drain(self, now: float) -> None:
        """Put out what is at the head of each root's queue and may go: changes, pairs whose
        two halves are both at a head, halves given up. Called holding the lock (so what one
        root puts keeps its order)."""
        progress = True
        while progress:
            progress = False
            for key, (sink, held) in list(self._queues.items()):
                while held and self._head_goes(sink, held, now):
                    progress = True
                if not held:
                    del self._queues[key]

    def _head_goes(self, sink: _Sink, held: deque[Item], now: float) -> bool:
        head = held[0]
        if isinstance(head, Change):
            held.popleft()
            sink.put(head)
            return True
        if isinstance(head.key, Under):  # its parent's halves, before it in this root's
            held.popleft()  # order, have gone out: paired (the source is known) or alone
            for change in self._from_under(head.key, head.change):
                sink.put(change)
            return True
        other = head.partner
        if other is not None:
            assert other.sink is not None
            others = self._queues.get(id(other.sink))
            if others is not None and others[1] and others[1][0] is other:
                held.popleft()
                others[1].popleft()
                for change in self._joined(head, other):
                    sink.put(change)
                return True
            if head.deadline + self.window > now:
                return False
            head.partner = other.partner = None  # stuck behind something else: go alone
        if head.deadline > now:
            return False
        held.popleft()
        self._close_half(head)
        if head.change is not None:
            sink.put(head.change)
        return True

    def _joined(self, a: Half, b: Half) -> list[Change]:
        src, dest = (a.change, b.change) if a.out else (b.change, a.change)
        if src is None or dest is None:
            return [c for c in (src, dest) if c is not None]
        if dest.is_dir:
            self._went[a.key] = dest.path
            if len(self._went) > WENT_KEPT:
                del self._went[next(iter(self._went))]
        return self._move(src.path, dest, seen=src.seen)

    def _from_under(self, key: Under, dest: Change | None) -> list[Change]:
        parent = self._went.get(key.parent)
        if dest is None or parent is None:  # its parent went out alone: a creation
            return [] if dest is None else [dest]
        return self._move(parent + key.rel, dest, seen=dest.seen)

    def _move(self, src: str, dest: Change, *, seen: float) -> list[Change]:
        self.paired += 1
        moved = Change(Kind.MOVED, src, dest.is_dir, dest.path, seen=seen)
        looks = [Change(Kind.CREATED, src, dest.is_dir)]  # the disk decides at src
        if dest.is_dir:  # watched in its new root only once that root read the move: what
            looks.append(Change(Kind.CREATED, dest.path, True))  # was done in it before, listed
        return [moved, *looks]

    def flush(self) -> None:
        """Put out everything held now, halves alone (the watchers stop: the queue is drained
        after)."""
        with self._cond:
            for sink, held in self._queues.values():
                for item in held:
                    change = item.change if isinstance(item, Half) else item
                    if change is not None:
                        sink.put(change)
            self._queues.clear()
            self._open.clear()
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)  # it ends, nothing being held

    def _release_loop(self) -> None:
        with self._cond:
            while self._queues:
                now = self._clock()
                self._drain(now)
                heads = [h[0] for _, h in self._queues.values() if isinstance(h[0], Half)]
                if heads:
                    due = min(h.deadline + (self.window if h.partner else 0) for h in heads)
                    self._cond.wait(max(due - now, 0.001))
            self._thread = None
