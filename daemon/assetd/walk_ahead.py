"""Reading a walk's next directories ahead of it, on a few threads.

A walk spends most of its time in ``getdents`` and ``stat``, which release the GIL: while the
walk's own thread merges one directory with the catalog, worker threads list and stat the
directories it will descend into next. :class:`ReadAhead` keeps up to ``window`` of them read or
being read, in the order the walk will reach them (depth first: a directory's subdirectories
before its later siblings); :class:`ReadNow` is the same interface without threads (a test's
scandir seam, which orders a race, must see the walk's own order).

The threads live as long as one walk (:meth:`ReadAhead.close`, called by the walk when it ends
or is abandoned); nothing is shared between walks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)

WORKERS = 2  # the machine the goals are set on has 2 cores; more threads only queue on them
WINDOW = 4  # directories read ahead at most: memory is a few listings, whatever the tree
SMALL = 16  # entries: directories smaller than this on average are read in place


class Reader(Protocol[K, V_co]):
    """What the walk asks of a reader; ``K`` names a directory, ``V`` is what reading it gives."""

    def enter(self, upcoming: list[K]) -> None:
        """The walk descended into a directory whose subdirectories are ``upcoming``."""

    def leave(self) -> None:
        """The walk is done with the directory of the last :meth:`enter`."""

    def read(self, key: K) -> V_co:
        """The walk descends into ``key`` (one of the upcoming): its contents."""

    def drop(self, key: K) -> None:
        """The walk will not descend into ``key`` (a loop, a duplicate)."""

    def close(self) -> None:
        """The walk ended: stop reading ahead."""


class ReadNow(Generic[K, V]):
    """Reads each directory when the walk reaches it, on the walk's thread."""

    def __init__(self, read: Callable[[K], V]) -> None:
        self._read = read

    def enter(self, upcoming: list[K]) -> None:
        pass

    def leave(self) -> None:
        pass

    def read(self, key: K) -> V:
        return self._read(key)

    def drop(self, key: K) -> None:
        pass

    def close(self) -> None:
        pass


class ReadAhead(Generic[K, V]):
    """Reads the walk's next directories on ``workers`` threads, ``window`` at most at once.

    A hand-off to a thread costs about as much as listing and stat'ing a few entries, so while
    the directories read hold fewer than ``few`` entries on average (``size`` counts them; a
    moving mean over the last few), the walk reads them itself, with ``small`` (default
    ``read``), and nothing is read ahead."""

    def __init__(
        self,
        read: Callable[[K], V],
        *,
        small: Callable[[K], V] | None = None,
        size: Callable[[V], int] = lambda _: SMALL,
        workers: int = WORKERS,
        window: int = WINDOW,
        few: int = SMALL,
    ) -> None:
        self._read, self._size, self._small = read, size, few
        self._read_small = small or read
        self._mean = 2.0 * few  # start reading ahead
        self._workers, self._window = workers, window
        self._pool: ThreadPoolExecutor | None = None  # started at the first directory to read
        self._frames: list[tuple[list[K], list[int]]] = []  # per level: its subdirs, next index
        self._pending: dict[int, Future[V]] = {}  # id(key) -> its read

    def enter(self, upcoming: list[K]) -> None:
        self._frames.append((upcoming, [0]))
        self._fill()

    def leave(self) -> None:
        self._frames.pop()

    def read(self, key: K) -> V:
        future = self._pending.pop(id(key), None)
        if future is None:  # not read ahead (the window was full when it came up): read now
            self._skip(key)
        self._fill()
        if future is not None:
            value = future.result()
        else:
            value = (self._read if self._mean >= self._small else self._read_small)(key)
        self._mean += (self._size(value) - self._mean) / 8
        return value

    def drop(self, key: K) -> None:
        future = self._pending.pop(id(key), None)
        if future is None:
            self._skip(key)
        else:
            future.cancel()
        self._fill()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._frames.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a listing under way ends; no thread outlives a walk
            self._pool = None

    def _skip(self, key: K) -> None:
        """``key`` is being read now: the deepest frame's index moves past it."""
        for keys, index in reversed(self._frames):
            if index[0] < len(keys) and keys[index[0]] is key:
                index[0] += 1
                return

    def _fill(self) -> None:
        """Submit the next directories in the walk's order (deepest level first) up to the
        window."""
        if self._mean < self._small:
            return  # small directories: each read where the walk reaches it
        for keys, index in reversed(self._frames):
            while index[0] < len(keys):
                if len(self._pending) >= self._window:
                    return
                key = keys[index[0]]
                index[0] += 1
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="assetd-walk")
                self._pending[id(key)] = self._pool.submit(self._read, key)
