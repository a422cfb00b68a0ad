"""``assetd run``: wiring, threads, signals and sd_notify, in a fixed start and stop order.

Start: state directory (checked writable) -> host lock -> catalog (schema) -> roots -> pipeline
thread -> observers -> canary -> READY=1 -> API thread -> start-up reconcile (observers first,
so nothing changes unseen in between); ``EXTEND_TIMEOUT_USEC`` goes out from the lock to READY=1.
Stop (SIGTERM/SIGINT): STOPPING=1 -> API -> observers -> pipeline flushes its last batch ->
reconcile thread -> daemons row -> exit 0. Every wait takes from one budget
(:mod:`assetd.lifecycle`); a part that runs out of time is logged (``daemon.stop_timeout``)
and the exit is 1.
Signal handlers only set flags (:class:`~assetd.lifecycle.SignalFlags`); the main loop sleeps on
a self-pipe the signals and the other threads wake. A reload is :mod:`assetd.reload`.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from assetd import __version__, log
from assetd.api.runtime import ApiRuntime
from assetd.catalog import daemons
from assetd.catalog.engine import make_engine, one_line, session_factory, sqlite_path
from assetd.catalog.hostlock_pg import AdvisoryHostLock
from assetd.catalog.roots import (
    RootSpec,
    RootState,
    bump_epoch,
    record_root_mode,
)
from assetd.catalog.schema import Upgrade
from assetd.catalog_access import Catalog, open_catalog, prepare_state_dir
from assetd.config import Config
from assetd.errors import HostLocked, WatchError
from assetd.faults import pipeline_fault, worker_fault
from assetd.fsutil import IgnoreRules
from assetd.gcpolicy import GcPolicy
from assetd.hashing.background import Hasher
from assetd.hostlock import CatalogFileLock, HostLock
from assetd.lifecycle import SignalFlags, StartKeeper, StopBudget, Waker
from assetd.live.backend import write_backends
from assetd.live.canary import Canary, timing
from assetd.live.changes import Change, Kind
from assetd.live.limits import WatchLimitError
from assetd.live.lost import LostEvents
from assetd.live.observers import Watchers, warn_network_roots
from assetd.live.pipeline import Pipeline
from assetd.live.rootkeeper import RootKeeper
from assetd.live.rootstate import RootMonitor
from assetd.live.scheduler import ReconcileScheduler
from assetd.live.watch import QueueSink
from assetd.live.worker import BatchResult, Worker
from assetd.notify import Notifier, watchdog_interval
from assetd.reconcile import ReconcileResult
from assetd.reload import apply_reload
from assetd.rootfacts import Verdict
from assetd.timing import Backoff

_log = log.get_logger(__name__)

HEARTBEAT_EVERY = 15.0
# the main loop's period and the canary's come from WatchdogSec: assetd.live.canary.timing


class Service:
    watchers: Watchers
    scheduler: ReconcileScheduler

    def __init__(self, config: Config, reload_config: Callable[[], Config]) -> None:
        self.config = config
        self.reload_config = reload_config
        self.notifier = Notifier()
        self.signals = SignalFlags()
        self.gc = GcPolicy()
        self.waker = Waker()
        self.timing = timing(watchdog_interval())
        self.sinks: dict[str, QueueSink] = {}
        self.lost = LostEvents(  # overflows -> rescans once the burst pauses (live/lost.py)
            wake=self.waker.wake,
            roots=lambda: self.roots,
            sinks=self.sinks,
            watcher=lambda name: self.watchers.get(name),
            bump=self._bump,
            scheduler=lambda: self.scheduler,
        )
        self.roots: list[RootSpec] = []
        self.unavailable: dict[int, Verdict] = {}  # roots away (unavailable, covered): rootkeeper's
        self.polling: set[int] = set()  # inotify roots that fell back to polling
        self.degraded_reason: dict[int, str] = {}  # why they did (for the roots table)
        # observer restarts: the root's backoff, and not before when
        self._restarts: dict[str, tuple[Backoff, float]] = {}
        self.catalog: Catalog | None = None
        self.hasher: Hasher | None = None
        self._read_engine: Engine | None = None
        self._failure: str | None = None  # why the daemon is ending with exit 1 (daemons.error)
        self._db_ok = True  # the pipeline's database state at the last heartbeat

    def _on_overflow(self, root_name: str) -> None:  # called on watchdog's thread: no I/O
        self.lost.report(root_name)

    # --- run -------------------------------------------------------------------------------

    def run(self) -> int:
        state_dir = prepare_state_dir(self.config)  # exit 78 if it cannot be used
        lock = HostLock(state_dir).acquire()
        db_path = sqlite_path(self.config.database_url)
        self._catalog_lock: CatalogFileLock | AdvisoryHostLock | None = None
        if db_path:  # the catalog's own lock: another state directory, the same catalog
            self._catalog_lock = CatalogFileLock(db_path)
            try:
                self._catalog_lock.acquire()
            except BaseException:
                lock.release()
                raise
        self.signals.install(self.waker)
        # EXTEND_TIMEOUT_USEC while the start lasts (a schema upgrade, watching a large tree)
        self.keeper = StartKeeper(self.notifier, "opening the catalog").start()
        try:
            return self._run(state_dir)
        finally:
            self.keeper.done()
            self.signals.uninstall()
            if self._catalog_lock is not None:
                self._catalog_lock.release()
            lock.release()

    def _run(self, state_dir: str) -> int:
        config = self.config
        self.gc.start()  # no collector pause in a burst (gcpolicy.py)
        self.api = ApiRuntime(config, self)  # checks [api] (exit 78); serves after READY
        upgrade = Upgrade.ALWAYS if sqlite_path(config.database_url) else Upgrade.CREATE
        self.catalog = cat = open_catalog(config, write=True, upgrade=upgrade)
        if self._catalog_lock is None:  # PostgreSQL: an advisory lock keyed on the host id
            self._catalog_lock = AdvisoryHostLock(cat.engine, cat.host, self.waker.wake)
            self._catalog_lock.acquire()  # kept: re-taken if the server ends its session
        self.roots = cat.register_roots()
        cat.prune_removed_roots(self.roots)
        with cat.sessions() as s, s.begin():
            daemons.record_start(s, cat.host, os.getpid(), __version__)
        self.changes: queue.Queue[Change | None] = queue.Queue(maxsize=config.watch.queue_size)
        self.sinks.clear()
        self.worker = Worker(  # a root found away by a batch: judged afresh, as a lost watch
            cat.sessions, self.roots, fault=worker_fault(), on_root_away=self._root_lost
        )
        self.scheduler = ReconcileScheduler(
            cat.sessions,
            lambda: [r for r in self.roots if r.id not in self.unavailable],
            interval=config.reconcile.interval,
            poll_intervals=self._poll_intervals,
            on_finished=self._reconciled,
            on_db_error=lambda err, ids: self.pipeline.note_outage(err, ids),
            link_roots=lambda: [r.path for r in self.roots],
            live_busy=lambda: self.pipeline.busy(),
        )
        canary_dir = os.path.join(state_dir, "canary")
        self.pipeline: Pipeline = Pipeline(
            self.changes,
            self.worker,
            quiet_ms=config.watch.quiet_ms,
            min_quiet_ms=config.watch.min_quiet_ms,
            max_delay_ms=config.watch.max_delay_ms,
            root_paths=lambda: [r.path for r in self.roots],
            request_reconcile=self.scheduler.request,
            canary_dir=canary_dir,
            on_applied=self._applied,
            on_db_state=lambda _ok: self.waker.wake(),  # heartbeat + STATUS= at once
            probe=lambda why: daemons.beat(cat.sessions, cat.host, "degraded", why, quiet=False),
            pending_limit=config.watch.queue_size,  # what is kept while the database is down
            fault=pipeline_fault(),
        )
        self.pipeline.start()
        self._start_hasher()
        self.watchers = Watchers(
            sink_for=self._sink,
            ignore=IgnoreRules(config.watch.ignore),
            on_overflow=self._on_overflow,
            on_root_event=self._on_root_event,
            backend=config.watch.backend,
        )
        self.rootkeeper = RootKeeper(  # roots judged off the main loop (live/rootkeeper.py)
            cat.sessions,
            RootMonitor(self.roots, self.waker.wake),
            away=self.unavailable,
            watch=self._watch,
            unwatch=self.watchers.remove,
            reconcile=self.scheduler.request,
            bump=self._bump,
            on_away=self.api.root_unavailable,
            on_back=lambda root: self.hasher.retry_now() if self.hasher else None,
        )
        self.roots = self.rootkeeper.start(self.roots)  # one not there is never watched nor walked
        warn_network_roots(r for r in self.roots if r.id not in self.unavailable)  # no hung one
        self.keeper.what = f"watching {len(self.roots)} roots"
        for root in self.roots:
            if self.signals.stop:  # SIGTERM during a long start: stop watching more roots
                break
            self._watch(root)
        self._record_root_modes()
        self.canary = Canary(
            canary_dir,
            QueueSink(self.changes, lambda _: None, root_name="canary"),
            stall_after=self.timing.stall_after,
        )
        self.canary.start()
        self.scheduler.start()
        self.scheduler.request("start")
        self.keeper.done()
        self.notifier.ready()
        self.api.start()  # its own thread imports the web stack, after READY
        self._heartbeat()  # the daemons row says "running" from READY on
        _log.info(
            "daemon.started",
            version=__version__,
            host=cat.host,
            roots=[r.name for r in self.roots],
            backends=self.watchers.backends(),
            database=cat.url if sqlite_path(cat.url) else "postgresql",
        )
        try:
            code = self._loop()
        except Exception as err:  # a bug in the main loop: record it as a crash, then stop
            _log.critical("daemon.failed", part="main loop", error=repr(err), exc_info=True)
            self._failure, code = f"main loop: {err!r}", 1
        return max(code, self._shutdown())

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
            host=self.catalog.host,
            on_recorded=self.api.hashed,  # committed: publish on the change feed
        )
        self.hasher.start()

    def restart_hasher(self) -> None:
        """A reload changed ``[hashing]``: stop the hasher (bounded) and start it anew."""
        if self.hasher is not None:
            self.hasher.stop(5.0)
            self.hasher = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None
        self._start_hasher()

    def _sink(self, root_name: str) -> QueueSink:
        if root_name not in self.sinks:
            self.sinks[root_name] = QueueSink(self.changes, self._on_overflow, root_name=root_name)
        return self.sinks[root_name]

    def _watch(self, root: RootSpec) -> None:
        if root.polling or root.id in self.polling or root.id in self.unavailable:
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
        write_backends(self.config.state_dir, os.getpid(), self.watchers.backends())

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
            recovery = self.lost.wait()  # an overflow's rescan starts once its burst pauses
            self.waker.wait(
                self.timing.tick if recovery is None else min(recovery, self.timing.tick)
            )
            if self.signals.stop or (self._catalog_lock and self._catalog_lock.lost):
                return 0 if self.signals.stop else HostLocked.exit_code  # another took the lock
            for part, name in ((self.pipeline, "pipeline"), (self.scheduler, "reconcile")):
                if part.error is not None:
                    _log.critical("daemon.failed", part=name, error=repr(part.error))
                    self._failure = f"{name} crashed: {part.error!r}"
                    return 1
            if self.pipeline.db_ok != self._db_ok:
                self._heartbeat()
            if self.signals.take_reload():
                apply_reload(self)
            if self.signals.take_reconcile():
                self.scheduler.request("SIGUSR1")
            self.lost.handle()
            self._check_roots()
            now = time.monotonic()
            if now - last_canary >= self.timing.touch_every:
                self.canary.touch()
                last_canary = now
            if self.canary.alive(self.pipeline.canary_seen, self._pipeline_state):
                self.notifier.watchdog()
            if now - last_heartbeat >= HEARTBEAT_EVERY:
                self._heartbeat()
                last_heartbeat = now

    # --- what the loop does ----------------------------------------------------------------

    def _pipeline_state(self) -> dict[str, object]:
        """What the pipeline is doing, for ``canary.stalled``."""
        return {
            "pipeline_alive": self.pipeline.thread.is_alive(),
            "applying": self.pipeline.applying,
            "queued": self.changes.qsize(),
        }

    def _status_text(self) -> str:
        watching = sum(
            1
            for r in self.roots
            if not (r.polling or r.id in self.polling or r.id in self.unavailable)
        )
        polling = len(self._poll_intervals())
        db = self.pipeline.health()
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
        self._db_ok = self.pipeline.db_ok
        if self._db_ok:  # while degraded, the pipeline's probe writes it
            daemons.beat(self.catalog.sessions, self.catalog.host, "running")
        self.notifier.status(self._status_text())

    def _applied(self, result: BatchResult) -> None:
        self.api.batch_applied(result)  # committed: publish (cheap, never blocks)
        if self.hasher is not None and (result.new or result.changed or result.restored):
            self.hasher.wake()

    def _reconciled(self, result: ReconcileResult) -> None:
        self.gc.after_pass()  # the first pass: what the start-up left is collected, then frozen
        if result.unavailable:  # the pass marked them; the monitor may not have seen it
            self.rootkeeper.note_away(result.unavailable)
            self.waker.wake()
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

    def _bump(self, root: RootSpec, reason: str | None = None) -> None:
        assert self.catalog is not None
        try:
            with self.catalog.sessions() as s, s.begin():
                bump_epoch(s, root.id, reason)
        except SQLAlchemyError as err:
            _log.debug("epoch.failed", error=one_line(err))

    def _on_root_event(self, root_name: str, kind: Kind) -> None:  # the root itself went away
        self._root_lost(root_name)

    def _root_lost(self, root_name: str) -> None:  # any thread: never blocks
        self.rootkeeper.note_watch_lost(root_name)

    def _check_roots(self) -> None:
        assert self.catalog is not None
        roots = self.rootkeeper.tick(self.roots)
        if roots != self.roots:  # a record decided (first seen, remounted): the worker judges
            self.worker.set_roots(roots)  # a root's presence against it too
        self.roots = roots
        now = time.monotonic()
        for name in self.watchers.check():
            dead = next((r for r in self.roots if r.name == name), None)
            if dead is None or dead.id in self.unavailable:
                continue
            backoff, not_before = self._restarts.get(name, (Backoff(1.0, 300.0), 0.0))
            if now < not_before:
                continue  # backing off: 1 s, 2 s, 4 s ... 5 min between restarts
            self._restarts[name] = (backoff, now + backoff.next())
            _log.error("watch.failed", root=name, reason="observer stopped; restarting")
            self.watchers.remove(name)
            self._bump(dead, "watcher restarted")
            self._watch(dead)
            self.scheduler.request("watcher restarted", dead.id)

    def _shutdown(self) -> int:
        """The stop order, every wait from one :class:`StopBudget`; 1 if a part ran out of
        time (logged as ``daemon.stop_timeout``: the next start-up reconcile catches up)."""
        self.notifier.stopping()
        _log.info("daemon.stopping")
        budget = StopBudget()
        budget.check("api", self.api.stop(budget.left(5.0)))  # its reads end before the catalog
        budget.check("canary", self.canary.stop(budget.left(2.0)))
        self.rootkeeper.monitor.stop(budget.left(1.0))
        late = self.watchers.stop_all(budget.left(5.0))
        budget.check("observers", not late, roots=late)
        if self.hasher is not None:
            budget.check("hasher", self.hasher.stop(budget.left(5.0)))
        self.pipeline.stop(budget.left(10.0))
        budget.check(
            "pipeline",
            not self.pipeline.thread.is_alive(),
            applying=self.pipeline.applying,
            queued=self.changes.qsize(),
        )
        budget.check("reconcile", self.scheduler.stop(budget.left(5.0)))
        if self.catalog is not None:
            if not (self._catalog_lock and self._catalog_lock.lost):  # else the row is theirs
                status = "failed" if self._failure else "stopped"
                daemons.beat(self.catalog.sessions, self.catalog.host, status, self._failure)
            self.catalog.close()
        if self._read_engine is not None:
            self._read_engine.dispose()
        _log.info("daemon.stopped", batches=self.pipeline.batches)
        return 1 if budget.timed_out else 0
