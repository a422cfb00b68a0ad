"""``assetd run``: wiring, threads, signals and sd_notify, in a fixed start and stop order.

Start: host lock -> catalog (schema) -> roots -> pipeline thread -> observers -> canary ->
READY=1 -> API thread -> start-up reconcile (observers first, so nothing changes unseen in
between). Stop (SIGTERM/SIGINT): STOPPING=1 -> API -> observers -> pipeline flushes its last
batch -> reconcile thread -> daemons row -> exit 0. Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from assetd import __version__, log
from assetd.api.runtime import ApiRuntime
from assetd.catalog import daemons
from assetd.catalog.engine import make_engine, one_line, session_factory, sqlite_path
from assetd.catalog.prune import mark_missing_outside_prefixes_safely
from assetd.catalog.roots import (
    RootSpec,
    RootState,
    bump_epoch,
    mark_root_unavailable,
    record_root_mode,
    root_is_present,
)
from assetd.catalog.schema import Upgrade
from assetd.catalog_access import Catalog, open_catalog
from assetd.config import Config, ensure_state_dir
from assetd.errors import ConfigError, WatchError
from assetd.fsutil import IgnoreRules
from assetd.hashing.background import Hasher
from assetd.hostlock import HostLock
from assetd.live.canary import Canary
from assetd.live.changes import Change, Kind
from assetd.live.limits import WatchLimitError
from assetd.live.observers import Watchers, warn_network_roots
from assetd.live.pipeline import Pipeline
from assetd.live.scheduler import ReconcileScheduler
from assetd.live.watch import QueueSink
from assetd.live.worker import BatchResult, Worker
from assetd.notify import Notifier
from assetd.reconcile import ReconcileResult
from assetd.timing import Backoff

_log = log.get_logger(__name__)

TICK = 1.0  # main loop period: root presence, watcher liveness, canary, heartbeat
HEARTBEAT_EVERY = 15.0
CANARY_EVERY = 5.0
OVERFLOW_SETTLE = 2.0  # an overflow's reconcile waits for the burst to pass


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    reconcile: bool = False
    overflow: set[str] = field(default_factory=set)
    wake: threading.Event = field(default_factory=threading.Event)


class Service:
    def __init__(self, config: Config, reload_config: Callable[[], Config]) -> None:
        self.config = config
        self.reload_config = reload_config
        self.notifier = Notifier()
        self.flags = _Flags()
        self._overflow_lock = threading.Lock()
        self.roots: list[RootSpec] = []
        self.unavailable: set[int] = set()
        self.polling: set[int] = set()  # inotify roots that fell back to polling
        self.degraded_reason: dict[int, str] = {}  # why they did (for the roots table)
        # observer restarts: the root's backoff, and not before when
        self._restarts: dict[str, tuple[Backoff, float]] = {}
        self.catalog: Catalog | None = None
        self.hasher: Hasher | None = None
        self._read_engine: Engine | None = None

    # --- signals ---------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.flags.stop = True
        elif signum == signal.SIGHUP:
            self.flags.reload = True
        elif signum == signal.SIGUSR1:
            self.flags.reconcile = True
        self.flags.wake.set()

    def _on_overflow(self, root_name: str) -> None:  # called on watchdog's thread: no I/O
        with self._overflow_lock:
            self.flags.overflow.add(root_name)
        self.flags.wake.set()

    # --- run -------------------------------------------------------------------------------

    def run(self) -> int:
        state_dir = ensure_state_dir(self.config)
        lock = HostLock(state_dir)
        lock.acquire()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._on_signal)
        try:
            return self._run(state_dir)
        finally:
            lock.release()

    def _run(self, state_dir: str) -> int:
        config = self.config
        self.api = ApiRuntime(config, self)  # checks [api] (exit 78); serves after READY
        upgrade = Upgrade.ALWAYS if sqlite_path(config.database_url) else Upgrade.CREATE
        self.catalog = cat = open_catalog(config, write=True, upgrade=upgrade)
        self.roots = cat.register_roots()
        warn_network_roots(self.roots)
        self._prune_removed_roots()
        with cat.sessions() as s, s.begin():
            daemons.record_start(s, cat.host, os.getpid(), __version__)
        self.changes: queue.Queue[Change | None] = queue.Queue(maxsize=config.watch.queue_size)
        self.sinks: dict[str, QueueSink] = {}
        self.worker = Worker(cat.sessions, self.roots)
        self.scheduler = ReconcileScheduler(
            cat.sessions,
            lambda: [r for r in self.roots if r.id not in self.unavailable],
            interval=config.reconcile.interval,
            poll_intervals=self._poll_intervals,
            on_finished=self._reconciled,
        )
        canary_dir = os.path.join(state_dir, "canary")
        self.pipeline = Pipeline(
            self.changes,
            self.worker,
            quiet_ms=config.watch.quiet_ms,
            max_delay_ms=config.watch.max_delay_ms,
            root_paths=lambda: [r.path for r in self.roots],
            request_reconcile=lambda why: self.scheduler.request(why),
            canary_dir=canary_dir,
            on_applied=self._applied,
        )
        self.pipeline.start()
        self._start_hasher()
        self.watchers = Watchers(
            sink_for=self._sink,
            ignore=IgnoreRules(config.watch.ignore),
            on_overflow=self._on_overflow,
            on_root_event=self._on_root_event,
        )
        for root in self.roots:
            self._watch(root)
        self._record_root_modes()
        self.canary = Canary(
            canary_dir, QueueSink(self.changes, lambda _: None, root_name="canary")
        )
        self.canary.start()
        self.scheduler.start()
        self.scheduler.request("start")
        self.notifier.ready()
        self.api.start()  # its own thread imports the web stack, after READY
        self._heartbeat()  # the daemons row says "running" from READY on
        _log.info(
            "daemon.started",
            version=__version__,
            host=cat.host,
            roots=[r.name for r in self.roots],
            database=cat.url if sqlite_path(cat.url) else "postgresql",
        )
        code = self._loop()
        self._shutdown()
        return code

    def _start_hasher(self) -> None:
        """Background hashing at low priority; it yields while the live pipeline has work."""
        assert self.catalog is not None
        if not self.config.hashing.enabled:
            return
        self._read_engine = make_engine(self.catalog.url, readonly=True)
        self.hasher = Hasher(
            self.catalog.sessions,
            self.roots,
            workers=self.config.hashing.workers,
            max_bytes_per_sec=self.config.hashing.max_bytes_per_sec,
            busy=self.pipeline.busy,
            read_sessions=session_factory(self._read_engine),
        )
        self.hasher.start()

    def _sink(self, root_name: str) -> QueueSink:
        sink = self.sinks.get(root_name)
        if sink is None:
            sink = self.sinks[root_name] = QueueSink(
                self.changes, self._on_overflow, root_name=root_name
            )
        return sink

    def _watch(self, root: RootSpec) -> None:
        if root.polling or root.id in self.polling:
            return
        if not root_is_present(root):
            self.unavailable.add(root.id)
            return
        self.watchers.remove(root.name)
        try:
            self.watchers.add(root)
        except WatchLimitError as err:
            _log.error("watch.limit", root=root.name, message=str(err), fallback="polling")
            self.watchers.remove(root.name)
            self.polling.add(root.id)
            self.degraded_reason[root.id] = f"polling instead of inotify: {err}"
        except WatchError as err:  # e.g. the root vanished between the check and the watch
            _log.warning("watch.failed", root=root.name, error=str(err))

    def _poll_intervals(self) -> dict[int, float]:
        by_name = {r.name: r for r in self.config.roots}
        out = {}
        for root in self.roots:
            if (root.polling or root.id in self.polling) and root.id not in self.unavailable:
                out[root.id] = by_name[root.name].poll_interval if root.name in by_name else 60.0
        return out

    def _loop(self) -> int:
        last_heartbeat = last_canary = 0.0
        while True:
            self.flags.wake.wait(TICK)
            self.flags.wake.clear()
            if self.flags.stop:
                return 0
            for part, name in ((self.pipeline, "pipeline"), (self.scheduler, "reconcile")):
                if part.error is not None:
                    _log.critical("daemon.failed", part=name, error=repr(part.error))
                    return 1
            if self.flags.reload:
                self.flags.reload = False
                self._reload()
            if self.flags.reconcile:
                self.flags.reconcile = False
                self.scheduler.request("SIGUSR1")
            self._handle_overflows()
            self._check_roots()
            now = time.monotonic()
            if now - last_canary >= CANARY_EVERY:
                self.canary.touch()
                last_canary = now
            if self.canary.alive(self.pipeline.canary_seen):
                self.notifier.watchdog()
            if now - last_heartbeat >= HEARTBEAT_EVERY:
                self._heartbeat()
                last_heartbeat = now

    # --- what the loop does ----------------------------------------------------------------

    def _status_text(self) -> str:
        watching = sum(
            1
            for r in self.roots
            if not (r.polling or r.id in self.polling or r.id in self.unavailable)
        )
        polling = len(self._poll_intervals())
        db = "ok" if self.pipeline.db_ok else "DEGRADED (database unavailable)"
        hashing = (
            f"; hashing backlog {self.hasher.backlog[0]} files" if self.hasher is not None else ""
        )
        return (
            f"{len(self.roots)} roots: {watching} watching, {polling} polling, "
            f"{len(self.unavailable)} unavailable; {self.pipeline.batches} batches{hashing}; "
            f"db {db}"
        )

    def _heartbeat(self) -> None:
        assert self.catalog is not None
        status = "running" if self.pipeline.db_ok else "degraded"
        try:
            with self.catalog.sessions() as s, s.begin():
                daemons.heartbeat(s, self.catalog.host, status)
        except SQLAlchemyError as err:
            _log.debug("heartbeat.failed", error=one_line(err))
        self.notifier.status(self._status_text())

    def _applied(self, result: BatchResult) -> None:
        self.api.batch_applied(result)  # committed: publish (cheap, never blocks)
        if self.hasher is not None and (result.new or result.changed or result.restored):
            self.hasher.wake()

    def _reconciled(self, result: ReconcileResult) -> None:
        self._record_root_modes()  # a root back from unavailable was set to watching/polling
        self.api.reconciled(result)
        if self.hasher is not None:
            self.hasher.wake()
        self.notifier.status(self._status_text())

    def _record_root_modes(self) -> None:
        """Write each present root's mode to the roots table, for ``assetd status``."""
        assert self.catalog is not None
        try:
            with self.catalog.sessions() as s, s.begin():
                for root in self.roots:
                    if root.id in self.unavailable:
                        continue
                    if root.id in self.polling:
                        reason = self.degraded_reason.get(root.id, "polling instead of inotify")
                        record_root_mode(s, root.id, RootState.DEGRADED, reason)
                    else:
                        state = RootState.POLLING if root.polling else RootState.WATCHING
                        record_root_mode(s, root.id, state, None)
        except SQLAlchemyError as err:
            _log.debug("root_state.failed", error=one_line(err))

    def _handle_overflows(self) -> None:
        with self._overflow_lock:
            names, self.flags.overflow = self.flags.overflow, set()
        for name in names:
            root = next((r for r in self.roots if r.name == name), None)
            if root is None:
                continue
            # watch.py logged watch.overflow; the root's events were lost: reconcile it
            if name in self.sinks:
                self.sinks[name].reset()
            self._bump(root, "overflow")
            self.scheduler.request("overflow", root.id, delay=OVERFLOW_SETTLE)

    def _bump(self, root: RootSpec, reason: str | None = None) -> None:
        assert self.catalog is not None
        try:
            with self.catalog.sessions() as s, s.begin():
                bump_epoch(s, root.id, reason)
        except SQLAlchemyError as err:
            _log.debug("epoch.failed", error=one_line(err))

    def _on_root_event(self, root_name: str, kind: Kind) -> None:  # the root itself went away
        self.flags.wake.set()

    def _check_roots(self) -> None:
        assert self.catalog is not None
        for root in self.roots:
            present = root_is_present(root)
            if present and root.id in self.unavailable:
                self.unavailable.discard(root.id)
                self._bump(root)
                self._watch(root)
                self.scheduler.request("root back", root.id)
            elif not present and root.id not in self.unavailable:
                self.unavailable.add(root.id)
                self.watchers.remove(root.name)
                try:
                    with self.catalog.sessions() as s, s.begin():
                        count = mark_root_unavailable(s, root, "directory gone or unmounted")
                except SQLAlchemyError as err:
                    _log.error("root.unavailable_failed", root=root.name, error=one_line(err))
                    continue
                _log.warning("root.unavailable", root=root.name, path=root.path, missing=count)
                self.api.root_unavailable(root, count)
        now = time.monotonic()
        for name in self.watchers.check():
            dead = next((r for r in self.roots if r.name == name), None)
            if dead is None or dead.id in self.unavailable:
                continue
            backoff, not_before = self._restarts.get(name, (Backoff(1.0, 300.0), 0.0))
            if now < not_before:
                continue  # backing off: 1 s, 2 s, 4 s ... 5 min between restarts
            self._restarts[name] = (backoff, now + backoff.next())
            root = dead
            _log.error("watch.failed", root=name, reason="observer stopped; restarting")
            self.watchers.remove(name)
            self._bump(root, "watcher restarted")
            self._watch(root)
            self.scheduler.request("watcher restarted", root.id)

    def _prune_removed_roots(self) -> None:
        """Roots of this host no longer configured: their files are marked missing (kept)."""
        assert self.catalog is not None
        configured = {r.id for r in self.roots}
        removed = [i for i in self.catalog.host_root_ids() if i not in configured]
        if removed and self.roots:
            mark_missing_outside_prefixes_safely(
                self.catalog.sessions, [r.path for r in self.roots], roots=removed
            )

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            new = self.reload_config()
        except ConfigError as err:
            _log.error("config.invalid", error=str(err), action="kept the running configuration")
            self.notifier.ready()
            return
        assert self.catalog is not None
        old = {r.name: r for r in self.roots}
        if new.api != self.config.api:  # the API keeps its addresses and token until a restart
            _log.warning("config.restart_needed", key="api", action="restart assetd to apply")
        self.config = new
        self.catalog.config = new
        try:
            specs = self.catalog.register_roots()
        except Exception as err:
            _log.error("config.reload_failed", error=str(err))
            self.notifier.ready()
            return
        new_by_name = {r.name: r for r in specs}
        for name, root in old.items():
            if name not in new_by_name or new_by_name[name] != root:
                self.watchers.remove(name)
        self.roots = specs
        self.worker.set_roots(specs)
        if self.hasher is not None:
            self.hasher.set_roots(specs)
        self._prune_removed_roots()
        for root in specs:
            if root.name not in old or old[root.name] != root:
                self._watch(root)
                self.scheduler.request("reload", root.id)
        self._record_root_modes()
        _log.info(
            "config.reloaded",
            added=sorted(set(new_by_name) - set(old)),
            removed=sorted(set(old) - set(new_by_name)),
        )
        self.notifier.ready()
        self.notifier.status(self._status_text())

    def _shutdown(self) -> None:
        self.notifier.stopping()
        _log.info("daemon.stopping")
        self.api.stop()  # bounded; the catalog it reads stays open until below
        self.canary.stop()
        self.watchers.stop_all()
        if self.hasher is not None:
            self.hasher.stop(5)
        self.pipeline.stop()
        self.scheduler.stop()
        if self.catalog is not None:
            try:
                with self.catalog.sessions() as s, s.begin():
                    daemons.heartbeat(s, self.catalog.host, "stopped")
            except SQLAlchemyError as err:
                _log.debug("heartbeat.failed", error=one_line(err))
            self.catalog.close()
        if self._read_engine is not None:
            self._read_engine.dispose()
        _log.info("daemon.stopped", batches=self.pipeline.batches)
