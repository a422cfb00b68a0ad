"""The live pipeline thread: bounded queue -> debouncer -> coalesce -> worker.

It never blocks on the database for long: a batch that fails is retried, then the catalog is
handed to reconcile (nothing dropped silently); while the database is unreachable the pipeline
keeps draining (so the canary still proves events flow) and reports itself degraded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.engine import one_line
from assetd.live.changes import Change, coalesce
from assetd.live.debounce import Debouncer, drain
from assetd.live.worker import BatchResult, Worker
from assetd.paths import is_under
from assetd.timing import Backoff

_log = log.get_logger(__name__)

RETRIES = 2
BACKOFF_MAX = 30.0
# Above these, a batch's paths collapse into "reconcile this subtree". High on purpose: bulk
# statements apply 100,000 paths in about a second, while a subtree walk of a large root
# costs far more and would hold up the live pipeline meanwhile.
DIR_COLLAPSE = 20_000
ROOT_COLLAPSE = 200_000


class Pipeline:
    def __init__(
        self,
        changes: queue.Queue[Change | None],
        worker: Worker,
        *,
        quiet_ms: int,
        max_delay_ms: int,
        root_paths: Callable[[], Sequence[str]],
        request_reconcile: Callable[[str], None],
        canary_dir: str | None = None,
        on_applied: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.changes = changes
        self.worker = worker
        self.debouncer = Debouncer(quiet_ms=quiet_ms, max_delay_ms=max_delay_ms)
        self.root_paths = root_paths
        self.request_reconcile = request_reconcile
        self.canary_dir = canary_dir
        self.on_applied = on_applied
        self.stop_event = threading.Event()
        self.canary_seen = 0.0  # monotonic time the last canary change left the queue
        self.db_ok = True
        self.batches = 0
        self.applying = False  # a batch is being applied (the hasher yields meanwhile)
        self.failed_batches = 0
        self._next_db_try = 0.0
        self._backoff = Backoff(1.0, BACKOFF_MAX)
        self.thread = threading.Thread(target=self._run, name="assetd-pipeline", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Flush what is pending, apply it, and end the thread (bounded wait)."""
        self.stop_event.set()
        with contextlib.suppress(queue.Full):  # drain() polls stop_event every max_wait anyway
            self.changes.put_nowait(None)  # wake drain()
        self.thread.join(timeout)
        if self.thread.is_alive():
            _log.error(
                "pipeline.stop_timeout",
                waited_s=timeout,
                pending=self.changes.qsize() + len(self.debouncer),
                action="exiting; the next start-up reconcile applies what was left",
            )

    def _run(self) -> None:
        try:
            while True:
                batch = drain(self.changes, self.debouncer, stop=self.stop_event)
                if batch is None:
                    if self.stop_event.is_set():
                        return
                    continue
                self._handle(batch)
        except BaseException as err:  # a crash must stop the service, never hang it
            self.error = err
            _log.critical("pipeline.crashed", error=repr(err), exc_info=True)

    def _handle(self, changes: list[Change]) -> None:
        if self.canary_dir is not None:
            kept = [c for c in changes if not is_under(c.path, self.canary_dir)]
            if len(kept) != len(changes):
                self.canary_seen = time.monotonic()
            changes = kept
        if not changes:
            return
        batch = coalesce(
            changes,
            roots=list(self.root_paths()),
            dir_threshold=DIR_COLLAPSE,
            root_threshold=ROOT_COLLAPSE,
        )
        if batch.empty:
            return
        if not self.db_ok and time.monotonic() < self._next_db_try:
            self.failed_batches += 1  # reconcile restores it once the database is back
            return
        for attempt in range(RETRIES + 1):
            try:
                self.applying = True
                result = self.worker.apply(batch)
            except SQLAlchemyError as err:
                if attempt < RETRIES and self.db_ok:
                    continue
                self._db_failed(err)
                return
            finally:
                self.applying = False
            self.batches += 1
            if not self.db_ok:
                self.db_ok = True
                self._backoff = Backoff(1.0, BACKOFF_MAX)
                _log.info("database.restored")
                self.request_reconcile("database restored")
            if self.on_applied is not None:
                self.on_applied(result)
            return

    def _db_failed(self, err: SQLAlchemyError) -> None:
        self.failed_batches += 1
        if self.db_ok:
            _log.error("database.unavailable", error=one_line(err))
            self.db_ok = False
        self._next_db_try = time.monotonic() + self._backoff.next()
        self.request_reconcile("batch failed")

    def busy(self) -> bool:
        """The live pipeline has work queued, pending or in hand (the hasher yields)."""
        return self.applying or not self.changes.empty() or len(self.debouncer) > 0
