"""One watchdog observer per inotify root: start, stop, restart, overflow detection.

One :class:`RootWatcher` owns one ``InotifyObserver`` (its own inotify instance and threads) for
one inotify root; :class:`Watchers` keeps them by root name. Polling roots are not watched here:
the service reconciles them on a timer.
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

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.observers.api import BaseObserver

from assetd.errors import WatchError
from assetd.fsutil import IgnoreRules, filesystem_type, is_network_filesystem
from assetd.live.backend import choose_backend
from assetd.live.changes import Kind
from assetd.live.crossroot import CrossRootPairer
from assetd.live.fanotify_emitter import FanotifyObserver
from assetd.live.inotify_bulk import BulkInotifyObserver
from assetd.live.limits import watch_error, watch_limit_reached
from assetd.live.watch import (
    EVENT_FILTER,
    ChangeSink,
    OverflowCallback,
    RootEventCallback,
    RootHandler,
    WatchedRoot,
)
from assetd.log import get_logger
from assetd.timing import Clock

log = get_logger(__name__)

ObserverFactory = Callable[[], BaseObserver]


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

    def notify(self, path: str) -> None:
        """The bulk emitter's overflow of the watch at ``path`` (no log record to filter)."""
        with self._lock:
            callback = self._by_path.get(os.fsencode(path))
        if callback is not None:
            callback()


_OVERFLOW_LOGGER = "watchdog.observers.inotify"
_overflow_filter = _KernelOverflowFilter()
_install_lock = threading.Lock()


def bulk_observer() -> BaseObserver:
    """The default observer: :class:`BulkInotifyObserver` (issue 15), its overflows reported
    through the same per-root registry as watchdog's own observer's."""
    return BulkInotifyObserver(on_overflow=_overflow_filter.notify)


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
        observer_factory: ObserverFactory = bulk_observer,
        clock: Clock = time.monotonic,
        backend: str = "inotify",
        pairer: CrossRootPairer | None = None,
    ) -> None:
        self.root = root
        self.backend = backend
        """``inotify`` or ``fanotify`` (:mod:`assetd.live.backend`)."""
        self.name = root.name
        self.path = root.path
        self.handler = RootHandler(
            root.name, root.path, sink, ignore, self._root_event, clock=clock, pairer=pairer
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
        if backend == "fanotify":
            self._observer_factory = lambda: FanotifyObserver(
                ignore=ignore, on_overflow=self._kernel_overflow
            )
        self._clock = clock
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self._overflow_logged_at = -1e18
        self._overflows_unlogged = 0
        self._lost: list[float | None] = []  # each overflow's lost_since, until taken

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
                if self.backend == "inotify" and watch_limit_reached(self.path):
                    raise OSError(errno.ENOSPC, "inotify watch limit reached")
            except BaseException as err:
                _overflow_filter.unregister(self.path, self._kernel_overflow)
                if observer is not None:
                    _stop_observer(observer, self._stop_timeout, self.name)
                if isinstance(err, OSError):
                    raise watch_error(
                        self.name, self.path, err, follow_symlinks=self.root.follow_symlinks
                    ) from err
                raise
            self._observer = observer
        log.info("watch.started", root=self.name, path=self.path, backend=self.backend)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching; False when watchdog's threads did not end within ``timeout`` (default:
        ``stop_timeout``)."""
        with self._lock:
            self.wanted = False
            observer, self._observer = self._observer, None
            _overflow_filter.unregister(self.path, self._kernel_overflow)
        if observer is None:
            return True
        wait = self._stop_timeout if timeout is None else timeout
        return _stop_observer(observer, wait, self.name)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def observer(self) -> BaseObserver | None:
        """The running observer, if any (for status and tests)."""
        return self._observer

    def is_alive(self) -> bool:
        """The observer thread, its emitter (a root deletion ends it) and its inotify reader run.

        The reader is watchdog's private ``_inotify_fd`` thread, or the bulk emitter's own
        (``reader_alive``), looked at when present: when it dies (an OSError from read()) the
        other two keep running and nothing arrives any more.
        """
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        reader = getattr(observer, "_inotify_fd", None)
        if isinstance(reader, threading.Thread) and not reader.is_alive():
            return False
        return all(
            emitter.is_alive() and getattr(emitter, "reader_alive", lambda: True)()
            for emitter in observer.emitters
        )

    def limit_reached(self) -> bool:
        """See :func:`watch_limit_reached` (new subdirectories would go unwatched)."""
        return self.backend == "inotify" and watch_limit_reached(self.path)

    def _root_event(self, root_name: str, kind: Kind) -> None:
        self.root_gone = True
        log.warning("watch.root_gone", root=root_name, kind=kind.value, path=self.path)
        self._on_root_event(root_name, kind)

    def _kernel_overflow(self, reason: str = "inotify-queue") -> None:
        """watchdog lost events and is rebuilding the watches (or the fanotify reader could not
        place an event, ``reason``): the root needs a reconcile. Logged at most once a minute
        (a pathological tree overflows every ~250 ms)."""
        self.overflows += 1
        self._overflows_unlogged += 1
        observer = self._observer
        emitters = list(observer.emitters) if observer is not None else []
        self._lost.append(getattr(emitters[0], "lost_since", None) if emitters else None)
        now = self._clock()
        if now - self._overflow_logged_at >= 60.0:
            log.warning(
                "watch.overflow",
                root=self.name,
                reason=reason,
                count=self._overflows_unlogged,
            )
            self._overflow_logged_at = now
            self._overflows_unlogged = 0
        self._on_overflow(self.name)

    def activity(self) -> int:
        """A count that moves while the kernel hands this root's watch events (the bulk
        inotify reader's bytes; 0 for a backend without one)."""
        observer = self._observer
        emitters = list(observer.emitters) if observer is not None else []
        return sum(int(getattr(e, "activity", lambda: 0)()) for e in emitters)

    def take_lost_since(self) -> tuple[bool, float | None]:
        """Whether an overflow was reported since the last call, and the wall time from which
        its events may be lost (the earliest of them; None: not known, e.g. an overflow during
        the start's walk or a kernel that said nothing of when)."""
        lost, self._lost = self._lost, []
        if not lost:
            return False, None
        return True, None if None in lost else min(t for t in lost if t is not None)


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
        backend: str = "inotify",
    ) -> None:
        self.backend = backend
        """``[watch] backend`` (auto, inotify, fanotify): see :func:`choose_backend`."""
        self._sink_for = sink_for
        self._ignore = ignore
        self._on_overflow = on_overflow
        self._on_root_event = on_root_event
        self._stop_timeout = stop_timeout
        self._watchers: dict[str, RootWatcher] = {}
        self.pairer = CrossRootPairer()
        """Pairs a move's halves seen by two roots into one move (:mod:`assetd.live.crossroot`)."""

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
        backend, why = choose_backend(self.backend, root.path)
        if why is not None and self.backend == "fanotify":
            log.warning(
                "watch.fanotify_unavailable", root=root.name, reason=why, fallback="inotify"
            )
        elif why is not None:
            log.info("watch.fanotify_unavailable", root=root.name, reason=why, fallback="inotify")
        watcher = RootWatcher(
            root,
            self._sink_for(root.name),
            self._ignore,
            on_overflow=self._on_overflow,
            on_root_event=self._on_root_event,
            stop_timeout=self._stop_timeout,
            backend=backend,
            pairer=self.pairer,
        )
        self._watchers[root.name] = watcher
        watcher.start()
        return watcher

    def backends(self) -> dict[str, str]:
        """Root name -> the backend that watches it (``inotify`` or ``fanotify``)."""
        return {name: watcher.backend for name, watcher in self._watchers.items()}

    def remove(self, name: str) -> bool:
        """Stop and forget ``name``; False when it was unknown."""
        watcher = self._watchers.pop(name, None)
        if watcher is None:
            return False
        watcher.stop()
        return True

    def restart(self, name: str) -> None:
        self._watchers[name].restart()

    def set_ignore(self, ignore: IgnoreRules) -> None:
        """New ignore rules (a reload) for the roots added from now on: re-add a root (the
        service does, for every root whose rules changed) to apply them to it."""
        self._ignore = ignore

    def stop_all(self, timeout: float | None = None) -> list[str]:
        """Stop every observer, all within ``timeout`` seconds if given (each within its own
        ``stop_timeout`` otherwise); the roots whose observer did not end in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        late = []
        for name, watcher in self._watchers.items():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not watcher.stop(left):
                late.append(name)
        self.pairer.flush()  # a half held back is put now, for the final drain
        return late

    def check(self) -> list[str]:
        """Roots that should be watched and are not (a dead observer, a failed start), except
        those whose directory was reported gone: restart them with backoff, then reconcile."""
        return [
            name
            for name, watcher in self._watchers.items()
            if watcher.wanted and not watcher.root_gone and not watcher.is_alive()
        ]


def warn_network_roots(roots: Iterable[WatchedRoot]) -> None:
    """A root on a network filesystem without ``polling``: inotify misses other hosts' changes."""
    for root in roots:
        fs_type = filesystem_type(root.path)
        if is_network_filesystem(fs_type) and not root.polling:
            log.warning(
                "root.network_filesystem",
                root=root.name,
                path=root.path,
                fs_type=fs_type,
                advice="inotify does not see other hosts' changes: set polling = true",
            )
