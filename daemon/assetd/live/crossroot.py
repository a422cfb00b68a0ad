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

:class:`CrossRootPairer` (one for all roots; handlers call it from their observers' threads) holds
a half for up to :data:`PAIR_WINDOW` seconds. When the other half comes, the two become one
``MOVED`` change (the worker moves the row, or every row under a directory, from one root to the
other), followed by a look at both ends: what the other roots' changes said about ``src`` or
``dest`` while the half was held may have gone to the queue before the move (a new file at
``src``, a write to ``dest``), and the disk decides. A half with no partner in time is released
as what it was (a deletion or a creation). A half whose handler ignores its path is offered as
``None``: its partner is then released as it was, at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable
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
    "DirMovedOut",
    "FileMovedIn",
    "FileMovedOut",
]

PAIR_WINDOW = 0.25
"""Seconds a half waits for its partner. The two ends are read by two threads (one per root)
and the move-from of a round waits for its half 10 ms before it is sent (``PAIR_WAIT``); the
rest is room for a loaded machine. Only a move from or to an unwatched place waits it out."""


class _Sink(Protocol):
    def put(self, change: Change) -> bool: ...


_Held = tuple[float, Change | None, _Sink]  # (deadline, the change alone, where it goes)


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


def moved_out(path: str, is_dir: bool, cookie: int) -> FileMovedOut | DirMovedOut:
    return DirMovedOut(path, cookie) if is_dir else FileMovedOut(path, cookie)


def moved_in(path: str, is_dir: bool, cookie: int) -> FileMovedIn | DirMovedIn:
    return DirMovedIn(path, cookie) if is_dir else FileMovedIn(path, cookie)


class CrossRootPairer:
    """Pairs the halves of a move watched apart; see the module docstring."""

    def __init__(self, window: float = PAIR_WINDOW, clock: Clock = time.monotonic) -> None:
        self.window = window
        self.paired = 0
        """Moves made of two halves (for tests and status)."""
        self._clock = clock
        # (key, is the move-from end) -> the halves held, oldest first (a key may come twice:
        # fanotify's is (src, dest), and a file may go back and forth within the window)
        self._held: dict[tuple[Hashable, bool], list[_Held]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def offer(self, key: Hashable, out: bool, change: Change | None, sink: _Sink) -> list[Change]:
        """A half (``out``: the move-from end) and the change it stands for alone (None: its
        path is ignored here). Returns the changes to put now; a held half is put into
        ``sink`` later, by this pairer's thread, if no partner comes."""
        with self._cond:
            waiting = self._held.get((key, not out))
            other = waiting.pop(0) if waiting else None
            if waiting == []:
                del self._held[(key, not out)]
            if other is None:
                held = (self._clock() + self.window, change, sink)
                self._held.setdefault((key, out), []).append(held)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._release_loop, name="assetd-crossroot", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
                return []
        src, dest = (change, other[1]) if out else (other[1], change)
        if src is None or dest is None:
            return [c for c in (src, dest) if c is not None]
        self.paired += 1
        look = [Change(Kind.CREATED, src.path, src.is_dir)]  # the disk decides what is at src
        if not src.is_dir:  # (a directory's records under dest are kept: the worker stats them)
            look.append(Change(Kind.MODIFIED, dest.path))
        return [Change(Kind.MOVED, src.path, src.is_dir, dest.path, seen=src.seen), *look]

    def flush(self) -> None:
        """Release every held half now (the watchers stop: the queue is drained after)."""
        with self._cond:
            held, self._held = self._held, {}
            thread = self._thread
            self._cond.notify()
        _release(h for halves in held.values() for h in halves)
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)  # it ends, nothing being held

    def _release_loop(self) -> None:
        while True:
            with self._cond:
                if not self._held:
                    self._thread = None
                    return
                now = self._clock()
                released: list[_Held] = []
                for k in [k for k, halves in self._held.items() if halves[0][0] <= now]:
                    halves = self._held[k]
                    while halves and halves[0][0] <= now:
                        released.append(halves.pop(0))
                    if not halves:
                        del self._held[k]
                if not released:
                    self._cond.wait(min(halves[0][0] for halves in self._held.values()) - now)
                    continue
            _release(released)


def _release(held: Iterable[_Held]) -> None:
    for _deadline, change, sink in held:
        if change is not None:
            sink.put(change)
