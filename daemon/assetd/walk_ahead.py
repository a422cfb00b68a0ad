"""Reading a walk's next directories ahead of it, on a few threads.

A walk spends most of its time in ``getdents`` and ``stat``, which release the GIL: while the
walk's own thread merges one directory with the catalog, worker threads list and stat the
directories it will descend into next. :class:`ReadAhead` keeps up to ``window`` of them read or
being read, in the order the walk will reach them (depth first: a directory's subdirectories
before its later siblings); :class:`ReadNow` is the same interface without threads (a test's
scandir seam, which orders a race, must see the walk's own order).

The threads live as long as one walk (:meth:`ReadAhead.close`, called by the walk when it ends
or is abandoned); nothing is shared between walks. Another ``pool`` may read instead of the
threads: worker processes (:mod:`assetd.walk_procs`), whose ``stat`` calls run in parallel
with the walk's thread where the threads' mostly wait for the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)
K_contra = TypeVar("K_contra", contravariant=True)

WORKERS = 2  # the machine the goals are set on has 2 cores; more threads only queue on them
WINDOW = 4  # directories read ahead at most: memory is a few listings, whatever the tree
SMALL = 16  # entries: directories smaller than this on average are read in place


class Pending(Protocol[V_co]):
    """A directory submitted to a pool: its contents when read."""

    def result(self) -> V_co: ...

    def cancel(self) -> bool: ...


class Pool(Protocol[K_contra, V_co]):
    """What reads directories ahead for :class:`ReadAhead` (threads unless told otherwise)."""

    def submit(self, key: K_contra) -> Pending[V_co]: ...

    def shutdown(self) -> None:
        """Stop: a read under way ends first; nothing of the pool outlives the walk."""


class _Threads(Generic[K, V]):
    def __init__(self, read: Callable[[K], V], workers: int) -> None:
        self._read = read
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="assetd-walk")

    def submit(self, key: K) -> Future[V]:
        return self._executor.submit(self._read, key)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


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
    ``read``), and nothing is read ahead. Nor before the walk has read ``after`` entries
    itself (a pool that is slow to start pays off on a large walk only). ``pool`` makes
    what reads ahead (default: ``workers`` threads calling ``read``), at the first directory
    to read ahead."""

    def __init__(
        self,
        read: Callable[[K], V],
        *,
        small: Callable[[K], V] | None = None,
        size: Callable[[V], int] = lambda _: SMALL,
        workers: int = WORKERS,
        window: int = WINDOW,
        few: int = SMALL,
        pool: Callable[[], Pool[K, V]] | None = None,
        after: int = 0,
    ) -> None:
        self._read, self._size, self._small = read, size, few
        self._read_small = small or read
        self._mean = 2.0 * few  # start reading ahead
        self._window = window
        self._make_pool: Callable[[], Pool[K, V]] = pool or (lambda: _Threads(read, workers))
        self._before = after  # entries the walk reads itself before reading ahead
        self._pool: Pool[K, V] | None = None  # started at the first directory to read ahead
        # per level: its subdirs, [the next one's index, how many of them are being read ahead]
        self._frames: list[tuple[list[K], list[int]]] = []
        self._pending: dict[int, tuple[Pending[V], list[int]]] = {}  # id(key) -> its read, level

    def enter(self, upcoming: list[K]) -> None:
        self._frames.append((upcoming, [0, 0]))
        self._fill()

    def leave(self) -> None:
        self._frames.pop()

    def _take(self, key: K) -> Pending[V] | None:
        taken = self._pending.pop(id(key), None)
        if taken is None:
            return None
        taken[1][1] -= 1
        return taken[0]

    def read(self, key: K) -> V:
        future = self._take(key)
        if future is None:  # not read ahead (the window was full when it came up): read now
            self._skip(key)
        self._fill()
        if future is not None:
            value = future.result()
        else:
            value = (self._read if self._mean >= self._small else self._read_small)(key)
        size = self._size(value)
        self._mean += (size - self._mean) / 8
        self._before -= size
        return value

    def drop(self, key: K) -> None:
        future = self._take(key)
        if future is None:
            self._skip(key)
        else:
            future.cancel()
        self._fill()

    def close(self) -> None:
        for future, _ in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._frames.clear()
        if self._pool is not None:
            self._pool.shutdown()  # a listing under way ends; no thread outlives a walk
            self._pool = None

    def _skip(self, key: K) -> None:
        """``key`` is being read now: the deepest frame's index moves past it."""
        for keys, index in reversed(self._frames):
            if index[0] < len(keys) and keys[index[0]] is key:
                index[0] += 1
                return

    def _fill(self) -> None:
        """Submit the next directories in the walk's order (deepest level first): up to the
        window in all, and up to the window of the deepest level's own whatever is read ahead
        for the levels above it (the walk reaches those later: a directory's subdirectories
        come before its later siblings). At most a window of listings per level of the
        current descent, then."""
        if self._mean < self._small or self._before > 0:
            return  # small directories, or a walk not yet large: each read where it is reached
        deepest = True
        for keys, index in reversed(self._frames):
            while index[0] < len(keys):
                if (index[1] if deepest else len(self._pending)) >= self._window:
                    return
                key = keys[index[0]]
                index[0] += 1
                index[1] += 1
                if self._pool is None:
                    self._pool = self._make_pool()
                self._pending[id(key)] = (self._pool.submit(key), index)
            deepest = False
