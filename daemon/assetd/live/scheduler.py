"""The reconcile thread: at start, every ``interval`` (+/-25% jitter), on demand (SIGUSR1,
overflow, watcher failure, a failed batch), and each polling root every ``poll_interval``.

After lost events whose time is known (:mod:`assetd.live.recovery`) a root gets a *rescan*
instead: the directories changed since then (:func:`assetd.touched.touched_dirs`, read by
:mod:`assetd.reconcile_dirs`), or the whole root when the clock went back or more than half of
its directories changed (one pass then costs less than reading each alone). A pending full
pass of the root (or of all) makes a rescan needless; a rescan comes after the full passes that
are due."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.engine import SessionFactory, classify_db_error, one_line
from assetd.catalog.roots import RootSpec
from assetd.fsutil import IgnoreRules
from assetd.reconcile import ReconcileResult, sync_cache_states_with_filesystem
from assetd.reconcile_dirs import reconcile_directories
from assetd.timing import Clock
from assetd.touched import touched_dirs

_log = log.get_logger(__name__)


def jittered(interval: float, rng: random.Random) -> float:
    return interval * rng.uniform(0.75, 1.25)


BACKLOG_WAIT = 2.0
"""Seconds a rescan after lost events waits at most for the live pipeline's backlog."""


class ReconcileScheduler:
    def __init__(
        self,
        sessions: SessionFactory,
        roots: Callable[[], Sequence[RootSpec]],
        *,
        interval: float,
        poll_intervals: Callable[[], dict[int, float]],
        on_finished: Callable[[ReconcileResult], None] | None = None,
        on_db_error: Callable[[BaseException, list[int]], None] | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        link_roots: Callable[[], Sequence[str]] = lambda: (),
        live_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sessions = sessions
        self.live_busy = live_busy  # the live pipeline has changes queued or in hand
        self.roots = roots
        self.link_roots = link_roots  # every root's path: the symlink rules (DESIGN §5)
        self.interval = interval
        self.poll_intervals = poll_intervals
        self.on_finished = on_finished
        self.on_db_error = on_db_error  # the database is down: these roots, once it is back
        self.clock = clock
        self.rng = rng or random.Random()
        self._wake = threading.Condition()
        # root id (None: all) -> (reason, not before)
        self._requested: dict[int | None, tuple[str, float]] = {}
        self._rescans: dict[int, tuple[str, float]] = {}  # root id -> (reason, lost since)
        self._stop = False
        self._next_full = clock() + jittered(interval, self.rng)
        self._next_poll: dict[int, float] = {}
        self.running = False
        self.last_result: ReconcileResult | None = None
        self.thread = threading.Thread(target=self._run, name="assetd-reconcile", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """End the thread (a pass in progress finishes first); False if it did not in time."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def set_interval(self, interval: float) -> None:
        """A reload changed ``[reconcile] interval``: the next full pass comes no later than
        one new interval from now."""
        with self._wake:
            self.interval = interval
            self._next_full = min(self._next_full, self.clock() + jittered(interval, self.rng))
            self._wake.notify_all()

    def request(self, reason: str, root_id: int | None = None, delay: float = 0.0) -> None:
        """Ask for a reconcile of one root (or all), not before ``delay`` seconds (an overflow
        waits for the burst to pass); several requests coalesce into one pass."""
        not_before = self.clock() + delay
        with self._wake:
            if root_id is None or None not in self._requested:
                old = self._requested.get(root_id)
                if old is None or not_before > old[1]:
                    self._requested[root_id] = (reason, not_before)
            self._wake.notify_all()

    def request_rescan(self, reason: str, root_id: int, since: float) -> None:
        """Rescan the directories of one root changed since wall time ``since`` (events of
        that time or later were lost); several requests keep the earliest time."""
        with self._wake:
            old = self._rescans.get(root_id)
            self._rescans[root_id] = (reason, since if old is None else min(old[1], since))
            self._wake.notify_all()

    def _rescan_due(self) -> tuple[int, str, float] | None:
        """A rescan to run now, unless a full pass of its root (or of all) is requested."""
        while self._rescans:
            root_id, (reason, since) = self._rescans.popitem()
            if root_id not in self._requested and None not in self._requested:
                return root_id, reason, since
        return None

    def _due(self) -> tuple[list[int] | None, str] | None:
        """Roots to reconcile now (None: all) and why, or None."""
        now = self.clock()
        ready = {k: v for k, v in self._requested.items() if v[1] <= now}
        if None in ready:
            reason = ready[None][0]
            self._requested.clear()
            self._rescans.clear()
            self._next_full = now + jittered(self.interval, self.rng)
            return None, reason
        if now >= self._next_full:
            self._requested.clear()
            self._rescans.clear()
            self._next_full = now + jittered(self.interval, self.rng)
            return None, "interval"
        ids: list[int | None] = list(ready)
        reasons = sorted({reason for reason, _ in ready.values()})
        for key in ready:
            del self._requested[key]
        for root_id, every in self.poll_intervals().items():
            due_at = self._next_poll.setdefault(root_id, now + every)
            if now >= due_at:
                self._next_poll[root_id] = now + every
                ids.append(root_id)
                reasons.append("poll")
        if ids:
            for rid in ids:
                if rid is not None:
                    self._rescans.pop(rid, None)
            return [i for i in ids if i is not None], ", ".join(sorted(set(reasons)))
        return None

    def _wait_time(self) -> float:
        now = self.clock()
        deadlines = [
            self._next_full,
            *self._next_poll.values(),
            *(t for _, t in self._requested.values()),
        ]
        return max(0.05, min(min(deadlines) - now, 5.0))

    def _run(self) -> None:
        try:
            while True:
                due: tuple[list[int] | None, str] | None = None
                rescan: tuple[int, str, float] | None = None
                with self._wake:
                    while not self._stop and due is None and rescan is None:
                        due = self._due()
                        if due is None:
                            rescan = self._rescan_due()
                        if due is None and rescan is None:
                            self._wake.wait(self._wait_time())
                    if self._stop:
                        return
                if due is not None:
                    self._reconcile(*due)
                elif rescan is not None:
                    self._rescan(*rescan)
        except BaseException as err:
            self.error = err
            _log.critical("reconcile.crashed", error=repr(err), exc_info=True)

    def _rescan(self, root_id: int, reason: str, since: float) -> None:
        root = next((r for r in self.roots() if r.id == root_id), None)
        if root is None:
            return
        if since > time.time() or root.follow_symlinks:  # unknown: the whole root
            self._reconcile([root.id], reason)
            return
        ignored = IgnoreRules(root.ignore).name_ignored if root.ignore else None
        # first the directories whose entries changed (their own ctime: one stat each), then
        # those with a file written in place (a stat per file of the others: touched.py)
        started = time.monotonic()
        found = touched_dirs(root.path, since, ignored=ignored, files=False)
        self._after_live_backlog()
        if len(found.dirs) * 2 > found.walked:  # one pass costs less than each alone
            why = f"{reason}: {len(found.dirs)} of {found.walked} directories changed"
            self._reconcile([root.id], why)
            return
        self._rescan_some(root, reason, "entries", found.dirs, started)
        started = time.monotonic()
        more = touched_dirs(root.path, since, ignored=ignored, skip=set(found.dirs))
        self._rescan_some(root, reason, "files", more.dirs, started)

    def _after_live_backlog(self) -> None:
        """Wait (at most :data:`BACKLOG_WAIT` s) for the live pipeline to apply what it holds:
        both write, and SQLite takes one writer at a time (a rescan read beside the burst's
        last batches took 3.3 s, the batches waiting up to 2 s on its transactions)."""
        deadline = time.monotonic() + BACKLOG_WAIT
        with self._wake:
            while self.live_busy() and not self._stop and time.monotonic() < deadline:
                self._wake.wait(0.01)

    def _rescan_some(
        self, root: RootSpec, reason: str, look: str, tops: list[str], started: float
    ) -> None:
        _log.info(
            "reconcile.rescan",
            reason=reason,
            root=root.name,
            look=look,
            directories=len(tops),
            probe_s=round(time.monotonic() - started, 3),
        )
        if tops and not self._stop:
            self._reconcile([root.id], reason, tops)

    def _reconcile(self, ids: list[int] | None, reason: str, tops: list[str] | None = None) -> None:
        roots = [r for r in self.roots() if ids is None or r.id in ids]
        if not roots:
            return
        if tops is None:
            _log.info("reconcile.started", reason=reason, roots=[r.name for r in roots])
        self.running = True
        try:
            with self.sessions() as session:
                if tops is not None:  # a rescan of these directories of the one root
                    result = reconcile_directories(
                        session,
                        roots[0],
                        tops,
                        cancel=lambda: self._stop,
                        link_roots=self.link_roots(),
                    )
                    _log.info("reconcile.rescanned", root=roots[0].name, **result.as_dict())
                else:
                    result = sync_cache_states_with_filesystem(
                        session, roots, cancel=lambda: self._stop, link_roots=self.link_roots()
                    )
        except Exception as err:  # one failed pass never ends the thread
            outage = classify_db_error(err) is not None
            _log.error(
                "reconcile.failed",
                reason=reason,
                error=one_line(err),
                error_type=type(err).__name__,
                exc_info=not isinstance(err, SQLAlchemyError),
            )
            if outage and self.on_db_error is not None:
                self.on_db_error(err, [r.id for r in roots])  # retried once it is back
            elif outage:
                with self._wake:  # try again later, not in a loop
                    self._next_full = min(self._next_full, self.clock() + 30.0)
            return
        finally:
            self.running = False
        self.last_result = result
        if self.on_finished is not None:
            self.on_finished(result)
