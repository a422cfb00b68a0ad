"""watchdog observers and the handler: convert and enqueue, nothing else (DESIGN §2, STYLE 2).

One :class:`RootWatcher` owns one ``InotifyObserver`` (its own inotify instance and threads) for
one inotify root; :class:`Watchers` keeps them by root name. Polling roots are not watched here:
the service reconciles them on a timer.

:class:`RootHandler` runs on the observer's dispatcher thread. It turns each watchdog event into a
frozen :class:`~assetd.live.changes.Change` and hands it to a :class:`ChangeSink` without
blocking; it does no I/O and never raises (an exception would kill watchdog's dispatcher thread
for good).

What the service must know (watchdog 7.1.0, read in ``observers/inotify.py``, ``inotify_c.py``):

- Only :data:`EVENT_FILTER`'s classes are asked for: watchdog derives the inotify mask from it, so
  the daemon's own reads raise no open/close events and a large tree does not overflow (§9).
- A kernel queue overflow (``IN_Q_OVERFLOW``) is handled inside watchdog: it logs a warning,
  drops its pending move halves and rebuilds the root's watches; no event reaches the handler.
  The warning of ``InotifyWatchGroup.on_queue_overflow`` names the root's path, so a filter on
  that logger turns it into ``on_overflow(root_name)`` (and a ``watch.overflow`` line instead).
- watchdog raises ``ENOSPC`` (watch limit) only when the root's own watch fails; a subdirectory's
  failure is swallowed and that subtree goes unwatched. :meth:`RootWatcher.start` therefore
  probes the limit after starting and raises :class:`WatchLimitError` in both cases.
- When the root directory is deleted watchdog reports it (``DirDeletedEvent`` of the root) and
  stops that emitter; a rename or unmount of the root is not reported at all (watchdog does not
  ask for ``IN_MOVE_SELF``; ``IN_UNMOUNT`` only drops the watches): the service's own root
  checks (directory and device, §4) must catch those.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import queue
import resource
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from watchdog.events import (
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
from watchdog.observers.inotify import InotifyObserver

from assetd.errors import AssetdError
from assetd.fsutil import IgnoreRules, encode_path
from assetd.live.changes import Change, Kind
from assetd.log import get_logger

__all__ = [
    "EVENT_FILTER",
    "ChangeSink",
    "QueueSink",
    "RootHandler",
    "RootWatcher",
    "WatchError",
    "WatchLimitError",
    "WatchedRoot",
    "Watchers",
    "watch_limit_reached",
]

log = get_logger(__name__)

OverflowCallback = Callable[[str], None]
"""``on_overflow(root_name)``: changes were lost, reconcile the root. Called from watchdog's
threads (dispatcher or inotify reader, the latter holding watchdog's locks): set a flag, never
block, never stop an observer from inside it."""
RootEventCallback = Callable[[str, Kind], None]
"""``on_root_event(root_name, kind)``: the root directory itself was deleted (``Kind.DELETED``) or
moved (``Kind.MOVED``). Called from the dispatcher thread; same rules as OverflowCallback."""
Clock = Callable[[], float]
ObserverFactory = Callable[[], BaseObserver]

# The watchdog event classes used. watchdog builds the inotify mask from this list (the root's
# IN_DELETE_SELF and, recursively, IN_CREATE are always in it). DirModifiedEvent is not needed:
# creations, deletions and moves inside directories come from IN_CREATE/IN_DELETE/IN_MOVE, which
# the created/deleted/moved classes ask for. FileAttribEvent costs no extra kernel events (the
# IN_ATTRIB bit comes with FileModifiedEvent) and is the only report of an mtime set by utime().
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
}
_MOVES = (FileMovedEvent, DirMovedEvent)

WATCHES_KEY = "fs.inotify.max_user_watches"
INSTANCES_KEY = "fs.inotify.max_user_instances"
_LIMIT_FILES = {
    WATCHES_KEY: ("/proc/sys/fs/inotify/max_user_watches", "/proc/sys/user/max_inotify_watches"),
    INSTANCES_KEY: (
        "/proc/sys/fs/inotify/max_user_instances",
        "/proc/sys/user/max_inotify_instances",
    ),
}


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
        self._queue = changes
        self._on_overflow = on_overflow
        self._flagged = False
        self._lock = threading.Lock()

    @property
    def overflowed(self) -> bool:
        """True from a drop until :meth:`reset`."""
        return self._flagged

    def put(self, change: Change) -> bool:
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
    ) -> None:
        super().__init__()
        self.root_name = root_name
        self.root_path = root_path
        self.last_event_monotonic = 0.0
        """``clock()`` when the last event arrived (0.0: none yet), for status."""
        self.events = 0
        self.dropped = 0
        self.errors = 0
        self._prefix = root_path if root_path.endswith("/") else root_path + "/"
        self._sink = sink
        self._ignore = ignore
        self._on_root_event = on_root_event
        self._clock = clock
        self._failed_types: set[type[BaseException]] = set()

    def dispatch(self, event: FileSystemEvent) -> None:
        """watchdog's entry point, on its dispatcher thread: convert, put, never raise."""
        try:
            self.events += 1
            self.last_event_monotonic = self._clock()
            change = self.convert(event)
            if change is not None and not self._sink.put(change):
                self.dropped += 1
        except Exception as err:
            self._failed(err, event)

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
        if path == self.root_path:
            return ""
        if path.startswith(self._prefix):
            return path[len(self._prefix) :]
        return None

    def _wanted(self, path: str) -> bool:
        relative = self._relative(path)
        return relative is not None and relative != "" and not self._ignored(relative)

    def _ignored(self, relative: str) -> bool:
        # Patterns match the catalog form of a name (a non-UTF-8 byte reads as \xNN).
        return self._ignore.is_ignored(encode_path(relative)[0])

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


class WatchError(AssetdError):
    """A root could not be watched; the message says why and what to do."""

    def __init__(self, root_name: str, message: str) -> None:
        self.root_name = root_name
        super().__init__(f"root {root_name!r}: {message}")


class WatchLimitError(WatchError):
    """An inotify limit (``fs.inotify.max_user_watches``, or ``max_user_instances`` when
    ``key`` says so) is too low for this root; the message carries the ``sysctl`` line."""

    def __init__(
        self,
        root_name: str,
        needed_dirs: int,
        current_limit: int,
        *,
        key: str = WATCHES_KEY,
        root_path: str = "",
    ) -> None:
        self.needed_dirs = needed_dirs
        self.current_limit = current_limit
        self.key = key
        if key == INSTANCES_KEY:
            floor = 1024
            what = "the inotify instance limit is reached (assetd uses one per watched root); "
        else:
            floor = 524288
            under = f" under {root_path}" if root_path else ""
            what = f"the inotify watch limit is reached: {needed_dirs} directories{under} need "
            what += "one watch each; "
        suggested = max(needed_dirs * 2, floor)
        if suggested <= current_limit:
            suggested = current_limit * 2
        self.suggested = suggested
        super().__init__(
            root_name,
            f"{what}{key} is {current_limit}, shared by every process of this user; raise it "
            f"with: sysctl {key}={suggested} (and keep it in /etc/sysctl.d/), "
            "or set polling = true for this root",
        )


def read_inotify_limit(key: str) -> int:
    """The effective value of ``key`` (the lower of the sysctl and this user namespace's own
    ``/proc/sys/user`` value); 0 when unreadable."""
    values = []
    for path in _LIMIT_FILES[key]:
        try:
            with open(path, encoding="ascii") as f:
                values.append(int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return min(values) if values else 0


def count_dirs(path: str, *, follow_symlinks: bool = False) -> int:
    """Directories watchdog would watch under ``path``, itself included (unreadable ones count
    once, their content not at all)."""
    count, stack = 0, [path]
    while stack:
        current = stack.pop()
        count += 1
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=follow_symlinks) and (
                            follow_symlinks or not entry.is_symlink()
                        ):
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return count


_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_IN_DELETE_SELF = 0x400
_libc: ctypes.CDLL | None = None


def watch_limit_reached(path: str) -> bool:
    """True when one more inotify watch cannot be added (ENOSPC) for this user: watchdog then
    leaves new or remaining subdirectories unwatched without a word. Probes with a throw-away
    inotify instance watching ``path``; False when it cannot tell (no instance left, no path)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = _libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
    if fd < 0:
        return False
    try:
        wd = _libc.inotify_add_watch(
            fd, ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint32(_IN_DELETE_SELF)
        )
        return wd < 0 and ctypes.get_errno() == errno.ENOSPC
    finally:
        os.close(fd)


class _KernelOverflowFilter(logging.Filter):
    """Turns watchdog's overflow warning into a per-root callback (and swallows that line).

    watchdog 7.1.0 logs ``"Inotify queue overflowed; reconciling recursive watches below %r"``
    with the watched path (bytes) from ``InotifyWatchGroup.on_queue_overflow``, on the inotify
    reader thread, once per overflow and recursive watch. Unregistered paths pass through.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._by_path: dict[bytes, Callable[[], None]] = {}

    def register(self, path: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._by_path[os.fsencode(path)] = callback

    def unregister(self, path: str, callback: Callable[[], None]) -> None:
        with self._lock:
            if self._by_path.get(os.fsencode(path)) is callback:
                del self._by_path[os.fsencode(path)]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if "overflow" not in str(record.msg).lower():
                return True
            args = record.args if isinstance(record.args, tuple) else ()
            if not args or not isinstance(args[0], bytes | str):
                return True
            with self._lock:
                callback = self._by_path.get(os.fsencode(args[0]))
            if callback is None:
                return True
            callback()
            return False
        except Exception:
            return True


_OVERFLOW_LOGGER = "watchdog.observers.inotify"
_overflow_filter = _KernelOverflowFilter()
_install_lock = threading.Lock()


def _install_overflow_filter() -> None:
    """Attach the filter once; hold the logger at WARNING so a quieter log level (which
    ``configure_logging`` also applies to ``watchdog``) cannot hide the overflow from it."""
    with _install_lock:
        logger = logging.getLogger(_OVERFLOW_LOGGER)
        if _overflow_filter not in logger.filters:
            logger.addFilter(_overflow_filter)
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)


def _stop_observer(observer: BaseObserver, timeout: float, root_name: str) -> bool:
    """Stop and join ``observer`` within ``timeout`` (watchdog's own stop joins its threads
    without a bound, so it runs on a helper thread); False when that did not finish in time."""

    def stop() -> None:
        try:
            observer.stop()
            if observer.ident is not None:
                observer.join()
        except Exception as err:
            log.warning("watch.stop_failed", root=root_name, error=repr(err))

    helper = threading.Thread(target=stop, name=f"assetd-watch-stop-{root_name}", daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        log.warning("watch.stop_timeout", root=root_name, timeout_s=timeout)
        return False
    return True


class RootWatcher:
    """One inotify root: an ``InotifyObserver`` scheduled recursively with :data:`EVENT_FILTER`.

    ``start`` walks the whole tree adding watches (it takes as long as the tree is big) and
    raises :class:`WatchLimitError` or :class:`WatchError`; ``stop`` is bounded by
    ``stop_timeout``. A watchdog observer cannot start twice: ``restart`` builds a new one.
    """

    def __init__(
        self,
        root: WatchedRoot,
        sink: ChangeSink,
        ignore: IgnoreRules,
        *,
        on_overflow: OverflowCallback,
        on_root_event: RootEventCallback,
        stop_timeout: float = 5.0,
        observer_factory: ObserverFactory = InotifyObserver,
        clock: Clock = time.monotonic,
    ) -> None:
        self.root = root
        self.name = root.name
        self.path = root.path
        self.handler = RootHandler(
            root.name, root.path, sink, ignore, self._root_event, clock=clock
        )
        self.overflows = 0
        self.root_gone = False
        """True once the root directory itself was reported deleted or moved (until a start)."""
        self.wanted = False
        """True between a start (even one that failed) and a stop."""
        self._on_overflow = on_overflow
        self._on_root_event = on_root_event
        self._stop_timeout = stop_timeout
        self._observer_factory = observer_factory
        self._clock = clock
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self._overflow_logged_at = -1e18
        self._overflows_unlogged = 0

    def start(self) -> None:
        """Start watching (no-op when already running)."""
        with self._lock:
            if self._observer is not None and self._observer.is_alive():
                return
            self.wanted = True
            self.root_gone = False
            _install_overflow_filter()
            observer: BaseObserver | None = None
            try:
                if not os.path.isdir(self.path):  # watchdog would watch a file's directory
                    code = errno.ENOTDIR if os.path.lexists(self.path) else errno.ENOENT
                    raise OSError(code, os.strerror(code), self.path)
                observer = self._observer_factory()
                observer.schedule(
                    self.handler,
                    self.path,
                    recursive=True,
                    event_filter=EVENT_FILTER,
                    follow_symlink=self.root.follow_symlinks,
                )
                _overflow_filter.register(self.path, self._kernel_overflow)
                observer.start()
                if watch_limit_reached(self.path):
                    raise OSError(errno.ENOSPC, "inotify watch limit reached")
            except BaseException as err:
                _overflow_filter.unregister(self.path, self._kernel_overflow)
                if observer is not None:
                    _stop_observer(observer, self._stop_timeout, self.name)
                if isinstance(err, OSError):
                    raise self._error(err) from err
                raise
            self._observer = observer
        log.info("watch.started", root=self.name, path=self.path)

    def stop(self) -> bool:
        """Stop watching; False when watchdog's threads did not end within the timeout."""
        with self._lock:
            self.wanted = False
            observer, self._observer = self._observer, None
            _overflow_filter.unregister(self.path, self._kernel_overflow)
        if observer is None:
            return True
        return _stop_observer(observer, self._stop_timeout, self.name)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def observer(self) -> BaseObserver | None:
        """The running observer, if any (for status and tests)."""
        return self._observer

    def is_alive(self) -> bool:
        """The observer thread, its emitter (a root deletion ends it) and its inotify reader run.

        The reader is watchdog's private ``_inotify_fd`` thread, looked at when present: when it
        dies (an OSError from read()) the other two keep running and nothing arrives any more.
        """
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        reader = getattr(observer, "_inotify_fd", None)
        if isinstance(reader, threading.Thread) and not reader.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def limit_reached(self) -> bool:
        """See :func:`watch_limit_reached` (new subdirectories would go unwatched)."""
        return watch_limit_reached(self.path)

    def _error(self, err: OSError) -> WatchError:
        if err.errno == errno.ENOSPC:
            needed = count_dirs(self.path, follow_symlinks=self.root.follow_symlinks)
            limit = read_inotify_limit(WATCHES_KEY)
            return WatchLimitError(self.name, needed, limit, root_path=self.path)
        if err.errno == errno.EMFILE:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            try:
                open_fds = len(os.listdir("/proc/self/fd"))
            except OSError:
                open_fds = 0
            if soft != resource.RLIM_INFINITY and open_fds >= soft - 2:
                return WatchError(
                    self.name,
                    f"the open-file limit ({soft}) is reached; raise LimitNOFILE= in the unit",
                )
            limit = read_inotify_limit(INSTANCES_KEY)
            return WatchLimitError(self.name, 0, limit, key=INSTANCES_KEY)
        return WatchError(self.name, f"cannot watch {self.path}: {err.strerror or err}")

    def _root_event(self, root_name: str, kind: Kind) -> None:
        self.root_gone = True
        log.warning("watch.root_gone", root=root_name, kind=kind.value, path=self.path)
        self._on_root_event(root_name, kind)

    def _kernel_overflow(self) -> None:
        """watchdog lost events and is rebuilding the watches: the root needs a reconcile.
        Logged at most once a minute (a pathological tree overflows every ~250 ms)."""
        self.overflows += 1
        self._overflows_unlogged += 1
        now = self._clock()
        if now - self._overflow_logged_at >= 60.0:
            log.warning(
                "watch.overflow",
                root=self.name,
                reason="inotify-queue",
                count=self._overflows_unlogged,
            )
            self._overflow_logged_at = now
            self._overflows_unlogged = 0
        self._on_overflow(self.name)


class Watchers:
    """The RootWatchers of the inotify roots, by name. Not thread-safe: one owner thread."""

    def __init__(
        self,
        *,
        sink_for: Callable[[str], ChangeSink],
        ignore: IgnoreRules,
        on_overflow: OverflowCallback,
        on_root_event: RootEventCallback,
        stop_timeout: float = 5.0,
    ) -> None:
        self._sink_for = sink_for
        self._ignore = ignore
        self._on_overflow = on_overflow
        self._on_root_event = on_root_event
        self._stop_timeout = stop_timeout
        self._watchers: dict[str, RootWatcher] = {}

    @property
    def names(self) -> list[str]:
        return list(self._watchers)

    def get(self, name: str) -> RootWatcher | None:
        return self._watchers.get(name)

    def start_all(self, roots: Iterable[WatchedRoot]) -> dict[str, WatchError]:
        """Add and start every non-polling root; the roots that failed, with why (they stay
        registered and appear in :meth:`check`)."""
        failed: dict[str, WatchError] = {}
        for root in roots:
            if root.polling:
                continue
            try:
                self.add(root)
            except WatchError as err:
                failed[root.name] = err
        return failed

    def add(self, root: WatchedRoot) -> RootWatcher:
        """Register and start ``root``; a start failure is raised, the root stays registered."""
        if root.polling:
            raise ValueError(f"root {root.name!r} is a polling root: it is not watched")
        if root.name in self._watchers:
            raise ValueError(f"root {root.name!r} is already watched")
        watcher = RootWatcher(
            root,
            self._sink_for(root.name),
            self._ignore,
            on_overflow=self._on_overflow,
            on_root_event=self._on_root_event,
            stop_timeout=self._stop_timeout,
        )
        self._watchers[root.name] = watcher
        watcher.start()
        return watcher

    def remove(self, name: str) -> bool:
        """Stop and forget ``name``; False when it was unknown."""
        watcher = self._watchers.pop(name, None)
        if watcher is None:
            return False
        watcher.stop()
        return True

    def restart(self, name: str) -> None:
        self._watchers[name].restart()

    def stop_all(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()

    def check(self) -> list[str]:
        """Roots that should be watched and are not (a dead observer, a failed start), except
        those whose directory was reported gone: restart them with backoff, then reconcile."""
        return [
            name
            for name, watcher in self._watchers.items()
            if watcher.wanted and not watcher.root_gone and not watcher.is_alive()
        ]
