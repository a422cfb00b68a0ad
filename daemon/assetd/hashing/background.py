"""The daemon's background hasher: worker threads at low priority that hash unhashed and
``needs_verify`` cache states (:func:`assetd.hashing.run.hash_and_record`), yield to the live
pipeline, back off files that change while read, and survive database outages.

Use: ``Hasher(sessions, roots, workers=..., max_bytes_per_sec=..., busy=...)``, ``start()``,
``wake()`` when files were catalogued, ``set_roots()`` on reload, ``stop(timeout)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeAlias

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.content import (
    HashJob,
    Outcome,
    auto_tags_for,
    hashing_backlog,
    next_to_hash,
)
from assetd.catalog.engine import SessionFactory, one_line
from assetd.catalog.roots import RootSpec
from assetd.hashing.child import ChildHasher, HashInterrupted
from assetd.hashing.digest import ChunkHook, read_digest, reader_for
from assetd.hashing.priority import lower_priority
from assetd.hashing.run import DigestBatch, record_digests_safely
from assetd.hashing.share import CLAIM_WAIT, ShareGate
from assetd.timing import Backoff, Clock, next_delay

_log = log.get_logger(__name__)

# Called after the commit that recorded a group of digests: (job, digest, outcome) per file
# recorded (``Outcome.RECORDED``). Cheap and never raising (the API's change feed).
RecordedHook: TypeAlias = Callable[[Sequence[tuple[HashJob, str, str]]], None]

Wait: TypeAlias = Callable[[float], bool]
"""``wait(seconds) -> stopped``: the Hasher passes its stop event's ``wait``."""


class _Stopped(Exception):
    pass


class RateLimit:
    """``max_bytes_per_sec`` shared by all workers: each chunk is charged after it is read, and
    the next read waits until the bytes so far fit the rate. No credit builds up while idle."""

    def __init__(self, bytes_per_sec: int, clock: Clock, wait: Wait) -> None:
        self.rate = float(bytes_per_sec)
        self._clock = clock
        self._wait = wait
        self._next = 0.0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + n / self.rate
            delay = self._next - now
        if delay > 0 and self._wait(delay):
            raise _Stopped


BUSY_POLL = 0.05  # seconds between looks at busy() while the live pipeline has work
IDLE_WAIT = 30.0  # longest sleep with nothing to hash (wake() ends it early)
BACKLOG_EVERY = 10.0  # at most one backlog count per this many seconds
PROGRESS_EVERY = 60.0  # hashing.progress log line while working
DB_RETRY_FIRST, DB_RETRY_MAX = 1.0, 30.0
MIN_REFETCH = 1.0  # seconds between two looks for work when the last found none


class Hasher:
    """The daemon's background hasher: ``workers`` threads, low priority, yielding to the live
    pipeline.

    Each worker takes the next cache state needing a hash (:func:`next_to_hash`, in id order,
    a batch at a time shared by the workers), waits while ``busy()`` is true (checked before
    every file), hashes it with :func:`hash_and_record`, and backs a file off that changed,
    vanished or could not be read: ``backoff_first`` seconds, doubling to ``backoff_max``, in
    memory. With nothing to do it sleeps on an event (``wake()``, ``stop()``, the next backoff
    expiry, or ``idle_wait``). A database error is logged once, retried with backoff
    (1 s to 30 s) and logged again when the database is back; nothing ends a worker but stop.

    ``read_sessions`` (default ``sessions``) runs the look for work and the backlog count: a
    read-only factory keeps these scans from taking SQLite's write lock (the write engine
    begins every transaction IMMEDIATE). The digest is applied through ``sessions``.

    Status, read from other threads: ``hashed`` (files recorded), ``bytes``, ``outcomes``
    (count per :class:`Outcome` value), ``backlog`` (files, bytes still to hash, refreshed at
    most every 10 s), ``paused`` (yielding to busy()), ``db_ok``, ``fetches`` (queries for
    work made).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        roots: Sequence[RootSpec],
        *,
        workers: int = 1,
        max_bytes_per_sec: int = 0,
        busy: Callable[[], bool] | None = None,
        hook: ChunkHook | None = None,
        clock: Clock = time.monotonic,
        idle_wait: float = IDLE_WAIT,
        backoff_first: float = 5.0,
        backoff_max: float = 3600.0,
        batch: int = 256,
        isolate: bool = True,
        low_priority: bool = True,
        db_retry: tuple[float, float] = (DB_RETRY_FIRST, DB_RETRY_MAX),
        min_refetch: float = MIN_REFETCH,
        read_sessions: SessionFactory | None = None,
        host: str = "",
        on_recorded: RecordedHook | None = None,
    ) -> None:
        self._on_recorded = on_recorded
        self._sessions = sessions
        self._gate = ShareGate(sessions, host, roots)  # shared roots: hashed once (§7)
        self._read_sessions = read_sessions or sessions
        self._min_refetch = min_refetch
        self._busy = busy or (lambda: False)
        self._hook = hook
        self._clock = clock
        self._idle_wait = idle_wait
        self._backoff_first, self._backoff_max = backoff_first, backoff_max
        self._batch = batch
        self._isolate = isolate
        self._low_priority = low_priority
        self._workers = max(1, workers)
        self._stop = threading.Event()
        self._wakeup = threading.Condition()
        self._wakes = 0  # wake() count: a worker sleeps until it changes (no lost wake-up)
        self._lock = threading.Lock()  # the state below
        self._fetch_lock = threading.Lock()  # one worker queries at a time
        self._pending: deque[HashJob] = deque()
        self._inflight: set[int] = set()
        self._backoff: dict[int, tuple[float, float]] = {}  # id -> (retry at, last delay)
        self._cursor = 0
        self._children: list[ChildHasher] = []
        self._threads: list[threading.Thread] = []
        self._rate = (
            RateLimit(max_bytes_per_sec, clock, self._stop.wait) if max_bytes_per_sec else None
        )
        self._db_retry = db_retry
        self._db_backoff = Backoff(*db_retry)
        self._backlog_at = -BACKLOG_EVERY
        self._progress_at = clock()
        self._working = False  # files recorded since the last hashing.idle
        self.set_roots(roots)
        self.hashed = 0
        self.bytes = 0
        self.outcomes: dict[str, int] = {}
        self.backlog: tuple[int, int] = (0, 0)
        self.paused = False
        self.db_ok = True
        self.fetches = 0

    # --- control ---------------------------------------------------------------------------

    def set_roots(self, roots: Sequence[RootSpec]) -> None:
        """The roots to hash (this host's, as configured now) and their automatic tags."""
        self._root_ids = [r.id for r in roots]
        self._auto_tags = auto_tags_for(roots)
        self._readable = reader_for(roots)
        self._gate.set_roots(roots)

    def start(self) -> None:
        for i in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"assetd-hasher-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def wake(self) -> None:
        """Look for work now (new or changed files were catalogued)."""
        with self._wakeup:
            self._wakes += 1
            self._wakeup.notify_all()

    def retry_now(self) -> None:
        """A root came back: files that failed to read while it was away are tried again now,
        not after their backoff (5 s, doubling)."""
        with self._lock:
            self._backoff.clear()
            self._cursor = 0  # from the start: those files may lie behind the cursor
        self.wake()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the workers, ending a large file's hash in progress; True if all ended in time.

        A small file's read in progress completes first (at most :data:`LARGE_FILE` bytes)."""
        self._stop.set()
        self.wake()
        with self._lock:
            children = list(self._children)
        for child in children:
            child.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # --- workers ---------------------------------------------------------------------------

    def _run(self) -> None:
        if self._low_priority:
            lower_priority()
        child = ChildHasher() if self._isolate else None
        if child is not None:
            with self._lock:
                self._children.append(child)
            if self._stop.is_set():
                child.close()
        batch = DigestBatch()
        try:
            while not self._stop.is_set():
                if self._busy():  # not even a short transaction of ours gets in its way
                    self.paused = True
                    self._stop.wait(BUSY_POLL)
                    continue
                self.paused = False
                try:
                    job = self._take(idle=not batch.items)
                except Exception as err:  # a bug: log it, wait, go on (never a dead worker)
                    _log.error("hashing.error", error=repr(err))
                    self._stop.wait(self._db_retry[1])
                    continue
                if job is not None:
                    self._read(job, child, batch)
                if job is None or batch.full or not self._pending:
                    self._flush(batch)
        finally:
            self._flush(batch)  # digests already read are worth one short transaction
            if child is not None:
                child.close()

    def _pop(self) -> HashJob | None:
        with self._lock:
            while self._pending:
                job = self._pending.popleft()
                if job.id not in self._inflight:
                    self._inflight.add(job.id)
                    return job
            return None

    def _take(self, *, idle: bool = True) -> HashJob | None:
        """The next job; None after waiting (nothing to do, or the database is down), or at
        once if not ``idle``."""
        failed: SQLAlchemyError | None = None
        wakes = self._wakes
        with self._fetch_lock:
            job = self._pop()
            if job is None:
                try:
                    jobs = self._fetch_sifted()
                except SQLAlchemyError as err:
                    jobs, failed = [], err
                with self._lock:
                    self._pending.extend(jobs)
                job = self._pop()
        if failed is not None:
            self._db_failed(failed)
        elif job is None:
            self._db_back()
            if idle:
                self._idle(wakes)
        else:
            self._db_back()
            if self._pending:
                self.wake()  # more for other idle workers
        return job

    def _fetch(self) -> list[HashJob]:
        roots = self._root_ids
        if not roots:
            return []
        now = self._clock()
        with self._lock:
            self._backoff = {
                i: (at, d) for i, (at, d) in self._backoff.items() if now < at + self._backoff_max
            }
            exclude = self._inflight | {i for i, (at, _) in self._backoff.items() if at > now}
        self.fetches += 1
        with self._read_sessions() as s:
            jobs = next_to_hash(
                s, roots=roots, limit=self._batch, exclude_ids=exclude, after_id=self._cursor
            )
            if not jobs and self._cursor:
                self._cursor = 0  # wrap: rows flagged behind the cursor, backoffs that expired
                jobs = next_to_hash(s, roots=roots, limit=self._batch, exclude_ids=exclude)
            if jobs:
                self._cursor = jobs[-1].id
            if not jobs or now - self._backlog_at >= BACKLOG_EVERY:
                self.backlog = hashing_backlog(s, roots=roots)
                self._backlog_at = now
        if not jobs and self._working:
            self._working = False
            _log.info("hashing.idle", hashed=self.hashed, bytes=self.bytes, backlog=self.backlog)
        return jobs

    def _fetch_sifted(self) -> list[HashJob]:
        """:meth:`_fetch`, less the jobs of a share another host hashed (recorded here without
        a read) or is reading now (looked up again in :data:`CLAIM_WAIT` s)."""
        for _ in range(64):  # a page all waiting or trusted: fetch the next one at once
            jobs = self._fetch()
            if not self._gate.active:
                return jobs
            if not jobs:
                if self._gate.held:
                    self._gate.release()
                return jobs
            sifted = self._gate.sift(jobs)
            if sifted.trusted:
                self._apply_trusted(sifted.trusted)
            with self._lock:
                for job in sifted.waiting:
                    self._backoff[job.id] = (self._clock() + CLAIM_WAIT, 0.0)
            if sifted.read:
                return sifted.read
        return []

    def _apply_trusted(self, items: list[tuple[HashJob, str]]) -> None:
        outcomes = record_digests_safely(self._sessions, items, auto_tags=self._auto_tags)
        for (job, _), outcome in zip(items, outcomes, strict=True):
            self._record(job, outcome, read=False)

    def _idle(self, wakes: int) -> None:
        """Sleep until woken, the next backoff expires, or ``idle_wait``; then, after an empty
        look, let ``min_refetch`` pass (a storm of wake() calls costs one query each that long:
        on a large catalog the query scans every path)."""
        looked = time.monotonic()
        timeout = self._idle_wait
        now = self._clock()
        with self._lock:
            waits = [at - now for at, _ in self._backoff.values() if at > now]
        if waits:
            timeout = min(timeout, max(min(waits), BUSY_POLL))
        with self._wakeup:
            self._wakeup.wait_for(lambda: self._wakes != wakes or self._stop.is_set(), timeout)
        rest = self._min_refetch - (time.monotonic() - looked)
        if rest > 0:
            self._stop.wait(rest)

    def _read(self, job: HashJob, child: ChildHasher | None, batch: DigestBatch) -> None:
        """Hash one file into ``batch``, or record why not (and release the job)."""
        try:
            digest, why = read_digest(
                job, hook=self._hook, large=child, throttle=self._rate, readable=self._readable
            )
        except (_Stopped, HashInterrupted):
            self._release([job])
            return
        except Exception as err:  # a bug or a child crash: this file waits, the worker goes on
            _log.error("hash.failed", path=job.file_path, error=repr(err))
            digest, why = None, Outcome.FAILED
        if digest is None:
            self._record(job, why)
            self._release([job])
        else:
            batch.add(job, digest)

    def _flush(self, batch: DigestBatch) -> None:
        """Record the batch's digests in one transaction; its jobs are released either way (a
        digest lost to a database error is read again later)."""
        items = batch.take()
        if not items:
            return
        jobs = [job for job, _ in items]
        try:
            outcomes = record_digests_safely(self._sessions, items, auto_tags=self._auto_tags)
        except SQLAlchemyError as err:
            self._release(jobs)
            self._db_failed(err)
            return
        except Exception as err:
            _log.error("hash.record_failed", paths=[j.file_path for j in jobs], error=repr(err))
            outcomes = [Outcome.FAILED] * len(jobs)
        else:
            self._db_back()
            with contextlib.suppress(SQLAlchemyError):  # the lease runs on; renewed next time
                self._gate.renew()
        for job, outcome in zip(jobs, outcomes, strict=True):
            self._record(job, outcome)
        self._release(jobs)
        recorded = [
            (job, digest, outcome)
            for (job, digest), outcome in zip(items, outcomes, strict=True)
            if outcome in Outcome.RECORDED
        ]
        if recorded and self._on_recorded is not None:
            self._on_recorded(recorded)

    def _release(self, jobs: list[HashJob]) -> None:
        with self._lock:
            self._inflight.difference_update(j.id for j in jobs)

    def _record(self, job: HashJob, outcome: str, *, read: bool = True) -> None:
        now = self._clock()
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if outcome in Outcome.RECORDED:
                self._backoff.pop(job.id, None)
                self.hashed += 1
                self.bytes += job.size if read else 0
                delay = 0.0
            else:
                previous = self._backoff.get(job.id)
                last = previous[1] if previous else 0.0
                delay = next_delay(last, self._backoff_first, self._backoff_max)
                self._backoff[job.id] = (now + delay, delay)
        if delay:
            _log.debug("hash.retry_later", path=job.file_path, outcome=outcome, retry_in=delay)
        else:
            _log.debug("hash.recorded", path=job.file_path, outcome=outcome)
        if outcome in Outcome.RECORDED:
            self._working = True
        if outcome in Outcome.RECORDED and now - self._progress_at >= PROGRESS_EVERY:
            self._progress_at = now
            _log.info(
                "hashing.progress", hashed=self.hashed, bytes=self.bytes, backlog=self.backlog
            )

    def _db_failed(self, err: SQLAlchemyError) -> None:
        if self.db_ok:
            _log.warning("hashing.database_error", error=one_line(err), action="retrying")
        else:
            _log.debug("hashing.database_error", error=one_line(err))
        self.db_ok = False
        self._stop.wait(self._db_backoff.next())

    def _db_back(self) -> None:
        if not self.db_ok:
            _log.info("hashing.database_restored")
        self.db_ok = True
        self._db_backoff.reset()
