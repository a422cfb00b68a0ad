"""The live pipeline thread: bounded queue -> debouncer -> coalesce -> worker.

No exception from one batch ends it. What a failure means is decided by
:func:`~assetd.catalog.engine.classify_db_error`:

- The database is unavailable or locked (a refused or cut connection, ``database is locked``
  past the busy timeout, a read-only file, a full disk): the pipeline turns *degraded*. It keeps
  the batch's changes and every change arriving meanwhile (up to ``pending_limit``; past it the
  detail is dropped but the roots are noted for a reconcile), keeps draining the queue (so the
  canary still proves events flow), probes the database every second, and once the probe
  answers applies what it kept and asks for a reconcile of the affected roots.
  ``database.unavailable`` and ``database.restored`` are logged once each per outage.
- Anything else (an ``IntegrityError``, a bug): ``batch.failed`` with the error and a sample of
  the paths; the subtrees the batch touched are reconciled instead, once; the pipeline goes on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import exc, text

from assetd import log
from assetd.catalog.engine import classify_db_error, one_line
from assetd.errors import DatabaseLocked, DatabaseUnavailable
from assetd.live.changes import Batch, Change, coalesce
from assetd.live.debounce import DRAIN_CHUNK, Debouncer, drain
from assetd.live.worker import BatchResult, Worker
from assetd.log import sample_paths
from assetd.paths import is_under
from assetd.timing import Backoff, Clock

_log = log.get_logger(__name__)

# Above these, a batch's paths collapse into "reconcile this subtree". High on purpose: bulk
# statements apply 100,000 paths in about a second, while a subtree walk of a large root
# costs far more and would hold up the live pipeline meanwhile.
DIR_COLLAPSE = 20_000
ROOT_COLLAPSE = 200_000
PROBE_EVERY = 1.0  # seconds between probes of a database that is down
APPLY_BACKOFF_MAX = 10.0  # the probe answers but applying fails again: back off up to this
PENDING_LIMIT = 100_000  # changes kept while the database is down; past it, roots are noted

Outage = type[DatabaseLocked] | type[DatabaseUnavailable]


def outage_kind(err: BaseException) -> Outage | None:
    """DatabaseLocked / DatabaseUnavailable when ``err`` says the database cannot be written
    now (it may come back); None for a data error or a bug."""
    kind = classify_db_error(err)
    if kind is not None:
        return kind
    if isinstance(err, exc.TimeoutError | exc.DisconnectionError):  # pool exhausted, dropped
        return DatabaseUnavailable
    return None


def subtrees_of(batch: Batch, roots: Iterable[str]) -> list[str]:
    """The smallest set of directories covering what ``batch`` touched: each path's parent
    (a rescan directory itself), kept only inside ``roots``, none below another."""
    dirs = set(batch.rescan)
    for path in batch.touched | batch.gone:
        dirs.add(os.path.dirname(path))
    for move in batch.moves:
        dirs.add(os.path.dirname(move.path))
        if move.dest is not None:
            dirs.add(os.path.dirname(move.dest))
    root_list = list(roots)
    inside = sorted(d for d in dirs if any(is_under(d, r) for r in root_list))
    out: list[str] = []
    for d in inside:  # sorted: a directory comes before everything below it
        if not out or not is_under(d, out[-1]):
            out.append(d)
    return out


class Pipeline:
    def __init__(
        self,
        changes: queue.Queue[Change | None],
        worker: Worker,
        *,
        quiet_ms: int,
        max_delay_ms: int,
        root_paths: Callable[[], Sequence[str]],
        request_reconcile: Callable[[str, int | None], None],
        canary_dir: str | None = None,
        on_applied: Callable[[BatchResult], None] | None = None,
        on_db_state: Callable[[bool], None] | None = None,
        probe: Callable[[str | None], None] | None = None,
        pending_limit: int = PENDING_LIMIT,
        fault: Callable[[], None] | None = None,
        min_quiet_ms: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.changes = changes
        self.clock = clock  # the batch latency's (Change.seen is on this clock)
        self.worker = worker
        self.debouncer = Debouncer(quiet_ms, max_delay_ms, min_quiet_ms=min_quiet_ms)
        self.root_paths = root_paths
        self.request_reconcile = request_reconcile
        self.canary_dir = canary_dir
        self.on_applied = on_applied
        self.on_db_state = on_db_state
        self.probe = probe or self._probe
        self.pending_limit = pending_limit
        self.fault = fault  # a test-only hook (assetd.faults); None in production
        self.stop_event = threading.Event()
        self._interrupt = threading.Event()  # stop, or an outage noticed by another thread
        self._lock = threading.Lock()
        self.canary_seen = 0.0  # monotonic time the last canary change left the queue
        self.db_ok = True
        self.degraded_reason: str | None = None
        self.batches = 0
        self.applying = False  # a batch is being applied (the hasher yields meanwhile)
        self.failed_batches = 0
        self._pending: list[Change] = []
        self.pending_dropped = 0
        self._reconcile_roots: set[int] = set()  # to reconcile once the database is back
        self._down_since = 0.0
        self._next_probe = 0.0
        self._next_apply = 0.0
        self._backoff = Backoff(PROBE_EVERY, APPLY_BACKOFF_MAX)  # applying kept changes
        self.thread = threading.Thread(target=self._run, name="assetd-pipeline", daemon=True)
        self.error: BaseException | None = None

    @property
    def pending(self) -> int:
        """Changes kept while the database is down."""
        return len(self._pending)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Flush what is pending, apply it, and end the thread (bounded wait)."""
        self.stop_event.set()
        self._interrupt.set()
        with contextlib.suppress(queue.Full):  # drain() polls stop_event every max_wait anyway
            self.changes.put_nowait(None)  # wake drain()
        self.thread.join(timeout)
        if self.thread.is_alive():
            _log.error(
                "pipeline.stop_timeout",
                waited_s=timeout,
                pending=self.changes.qsize() + len(self.debouncer) + len(self._pending),
                action="exiting; the next start-up reconcile applies what was left",
            )

    def health(self) -> str:
        """For ``STATUS=``: ``ok``, or why the database is not written and what is kept."""
        if self.db_ok:
            return "ok"
        return f"DEGRADED ({self.degraded_reason}; {len(self._pending)} changes kept)"

    def busy(self) -> bool:
        """The live pipeline has work queued, pending or in hand (the hasher yields)."""
        return self.applying or not self.changes.empty() or len(self.debouncer) > 0

    def note_outage(self, err: BaseException, root_ids: Iterable[int]) -> None:
        """Another thread (the reconcile) could not reach the database: these roots are
        reconciled once it is back; the pipeline probes it meanwhile."""
        kind = outage_kind(err) or DatabaseUnavailable
        with self._lock:
            self._reconcile_roots.update(root_ids)
        self._degrade(err, kind)
        self._interrupt.set()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                if not self.db_ok:
                    if self._degraded_step():
                        return
                    continue
                batch = drain(self.changes, self.debouncer, stop=self._interrupt)
                if not self.stop_event.is_set():
                    self._interrupt.clear()
                    if self.stop_event.is_set():  # stop() raced the clear
                        self._interrupt.set()
                if batch is None:
                    if self.stop_event.is_set():
                        return
                    continue
                if self.fault is not None:
                    self.fault()  # outside the per-batch guard: ends the thread
                self._handle(batch)
        except BaseException as err:  # a crash must stop the service, never hang it
            self.error = err
            _log.critical("pipeline.crashed", error=repr(err), exc_info=True)

    def _without_canary(self, changes: list[Change]) -> list[Change]:
        if self.canary_dir is None:
            return changes
        prefix = self.canary_dir.rstrip("/") + "/"  # is_under, without a call per change
        kept = [c for c in changes if not (c.path + "/").startswith(prefix)]
        if len(kept) != len(changes):
            self.canary_seen = time.monotonic()
        return kept

    def _handle(self, changes: list[Change]) -> None:
        changes = self._without_canary(changes)
        if not changes:
            return
        if not self.db_ok:
            self._keep(changes)
            return
        self._apply(changes)

    def _apply(self, changes: list[Change]) -> bool:
        """Apply one flush. False when the database is down (the changes are kept)."""
        try:
            batch = coalesce(
                changes,
                roots=list(self.root_paths()),
                dir_threshold=DIR_COLLAPSE,
                root_threshold=ROOT_COLLAPSE,
            )
        except Exception as err:  # a bug in coalescing: the worker lists the directories
            self._failed(err, _batch_of(changes), changes)
            return True
        if batch.empty:
            return True
        for attempt in range(2):
            try:
                self.applying = True
                result = self.worker.apply(batch)
            except Exception as err:
                kind = outage_kind(err)
                if kind is DatabaseUnavailable and attempt == 0 and self.db_ok:
                    continue  # a cut connection: once more at once, on a fresh one
                if kind is None:
                    self._failed(err, batch, changes)
                    return True
                self.failed_batches += 1
                self._keep(changes)
                self._degrade(err, kind)
                return False
            finally:
                self.applying = False
            self.batches += 1
            self._committed(result, changes)
            return True
        return False  # not reached

    def _failed(self, err: BaseException, batch: Batch, changes: list[Change]) -> None:
        """A data error or a bug: say so, reconcile the subtrees the batch touched, go on."""
        self.failed_batches += 1
        paths = sorted(
            batch.touched
            | batch.gone
            | batch.rescan
            | {p for m in batch.moves for p in (m.path, m.dest) if p is not None}
        )
        subtrees = subtrees_of(batch, self.root_paths())
        _log.error(
            "batch.failed",
            error=one_line(err),
            error_type=type(err).__name__,
            count=len(paths),
            paths=sample_paths(paths),
            action=f"reconciling the {len(subtrees)} subtree(s) it touched",
            exc_info=not isinstance(err, exc.SQLAlchemyError),
        )
        if not subtrees:
            return
        try:
            self.applying = True
            result = self.worker.apply(Batch(rescan=frozenset(subtrees)))
        except Exception as again:
            kind = outage_kind(again)
            if kind is not None:  # the database went away meanwhile: keep the changes
                self._keep(changes)
                self._degrade(again, kind)
                return
            _log.error(
                "batch.failed",
                stage="reconcile",
                error=one_line(again),
                error_type=type(again).__name__,
                count=len(subtrees),
                paths=sample_paths(subtrees),
                action="left to a reconcile of the root",
                exc_info=not isinstance(again, exc.SQLAlchemyError),
            )
            for root_id in self._root_ids(subtrees):
                self.request_reconcile("batch failed", root_id)
            return
        finally:
            self.applying = False
        self._committed(result, changes)

    def _committed(self, result: BatchResult, changes: list[Change]) -> None:
        """The batch is committed: its latency (the oldest change seen -> now), then
        ``on_applied``."""
        if changes:
            result.latency_s = max(0.0, self.clock() - min(c.seen for c in changes))
        if self.on_applied is not None:
            self.on_applied(result)

    # --- degraded --------------------------------------------------------------------------

    def _degrade(self, err: BaseException, kind: Outage) -> None:
        with self._lock:
            first = self.db_ok
            self.db_ok = False
            self.degraded_reason = one_line(err)
            now = time.monotonic()
            self._next_probe = now + PROBE_EVERY
            if first:
                self._down_since = now
                self._next_apply = 0.0
        if not first:
            return
        _log.error(
            "database.unavailable",
            error=self.degraded_reason,
            kind="locked" if kind is DatabaseLocked else "unavailable",
            pending=len(self._pending),
            action="keeping changes; probing the database every second",
        )
        if self.on_db_state is not None:
            self.on_db_state(False)

    def _keep(self, changes: Sequence[Change]) -> None:
        room = max(0, self.pending_limit - len(self._pending))
        self._pending.extend(changes[:room])
        extra = changes[room:]
        if not extra:
            return
        roots = self._root_ids(p for c in extra for p in (c.path, c.dest) if p is not None)
        new_roots = roots - self._reconcile_roots
        with self._lock:
            self._reconcile_roots |= roots
        first = self.pending_dropped == 0
        self.pending_dropped += len(extra)
        if first or new_roots:
            _log.warning(
                "pipeline.pending_full",
                limit=self.pending_limit,
                roots=sorted(r.name for r in self.worker.index.roots if r.id in roots),
                action="dropping the detail; these roots are reconciled once the database is back",
            )

    def _root_ids(self, paths: Iterable[str]) -> set[int]:
        roots = self.worker.index.roots  # longest path first
        out: set[int] = set()
        for path in paths:
            root = next((r for r in roots if is_under(path, r.path)), None)
            if root is not None:
                out.add(root.id)
        return out

    def _take(self, timeout: float) -> list[Change]:
        """What the queue holds (waiting up to ``timeout`` for the first one)."""
        out: list[Change] = []
        try:
            item = self.changes.get(timeout=timeout) if timeout > 0 else self.changes.get_nowait()
        except queue.Empty:
            return out
        if item is not None:
            out.append(item)
        for _ in range(DRAIN_CHUNK):
            try:
                item = self.changes.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                out.append(item)
        return out

    def _degraded_step(self) -> bool:
        """Keep what arrives until the next probe; probe; recover. True when stopping."""
        if len(self.debouncer):
            self._keep(self._without_canary(self.debouncer.take()))
        wait = min(self._next_probe - time.monotonic(), 0.5)
        if not self.stop_event.is_set():
            self._keep(self._without_canary(self._take(wait)))
        else:
            self._keep(self._without_canary(self._take(0)))
        if self.stop_event.is_set():  # one last try for what was kept, then stop
            if self._pending and not self._recover():
                _log.warning(
                    "pipeline.pending_lost",
                    count=len(self._pending),
                    dropped=self.pending_dropped,
                    action="the next start-up reconcile finds these changes",
                )
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + PROBE_EVERY
        try:
            self.probe(self.degraded_reason)
        except Exception as err:
            if outage_kind(err) is not None:
                self.degraded_reason = one_line(err)
                return False
        if time.monotonic() >= self._next_apply:
            self._recover()
        return False

    def _probe(self, _why: str | None) -> None:
        """A write transaction that writes nothing (SQLite: takes the write lock)."""
        with self.worker.sessions() as s, s.begin():
            s.execute(text("SELECT 1"))

    def _recover(self) -> bool:
        """Apply what was kept; True (and ``database.restored``) when the database took it."""
        changes, self._pending = self._pending, []
        with self._lock:
            roots = self._reconcile_roots | self._root_ids(
                p for c in changes for p in (c.path, c.dest) if p is not None
            )
        if changes and not self._apply(changes):
            self._next_apply = time.monotonic() + self._backoff.next()
            return False
        self._backoff.reset()
        with self._lock:
            self.db_ok = True
            self.degraded_reason = None
            self._reconcile_roots = set()
            down_s = time.monotonic() - self._down_since
            dropped, self.pending_dropped = self.pending_dropped, 0
        _log.info(
            "database.restored",
            down_s=round(down_s, 2),
            applied=len(changes),
            dropped=dropped,
            reconcile=sorted(r.name for r in self.worker.index.roots if r.id in roots),
        )
        for root_id in sorted(roots):
            self.request_reconcile("database restored", root_id)
        if self.on_db_state is not None:
            self.on_db_state(True)
        return True


def _batch_of(changes: Sequence[Change]) -> Batch:
    """A batch naming every path of ``changes`` (to know which subtrees to reconcile)."""
    paths = {p for c in changes for p in (c.path, c.dest) if p is not None}
    return Batch(touched=frozenset(paths), size=len(changes))
