"""``POST /api/assets/seed``: a reconcile of the named roots on a thread of its own, with the
progress and cancellation ComfyUI's seeder reports (``scanned``, ``total``, ``created``,
``skipped``). At most one runs at a time; ``wait()`` blocks until it ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.engine import SessionFactory, one_line
from assetd.catalog.roots import RootSpec
from assetd.reconcile import ReconcileResult, sync_cache_states_with_filesystem

_log = log.get_logger(__name__)

IDLE, RUNNING, CANCELLING = "idle", "running", "cancelling"


@dataclass
class Progress:
    scanned: int = 0
    total: int = 0
    created: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "scanned": self.scanned,
            "total": self.total,
            "created": self.created,
            "skipped": self.skipped,
        }


@dataclass
class SeedStatus:
    state: str = IDLE
    progress: Progress = field(default_factory=Progress)
    errors: list[str] = field(default_factory=list)


class Seeder:
    def __init__(
        self,
        sessions: SessionFactory,
        on_finished: Callable[[ReconcileResult], None],
    ) -> None:
        self._sessions = sessions
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._cancel = False
        self.status = SeedStatus()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self, roots: Sequence[RootSpec]) -> bool:
        """Start a reconcile of ``roots``; False when one is already running."""
        with self._lock:
            if self.running:
                return False
            self._done.clear()
            self._cancel = False
            self.status = SeedStatus(state=RUNNING)
            self._thread = threading.Thread(
                target=self._run, args=(list(roots),), name="assetd-api-seed", daemon=True
            )
            self._thread.start()
            return True

    def cancel(self) -> bool:
        with self._lock:
            if not self.running:
                return False
            self._cancel = True
            self.status.state = CANCELLING
            return True

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def _progress(self, scanned: int) -> None:
        self.status.progress.scanned = scanned

    def _run(self, roots: list[RootSpec]) -> None:
        names = [r.name for r in roots]
        _log.info("seed.started", roots=names)
        try:
            with self._sessions() as session:
                result = sync_cache_states_with_filesystem(
                    session, roots, progress=self._progress, cancel=lambda: self._cancel
                )
        except SQLAlchemyError as err:
            self.status.errors.append(one_line(err))
            _log.error("seed.failed", roots=names, error=one_line(err))
            result = None
        except Exception as err:  # a seed must never take the API thread down
            self.status.errors.append(repr(err))
            _log.error("seed.failed", roots=names, error=repr(err))
            result = None
        if result is not None:
            walked = result.new + result.unchanged + result.changed + result.restored
            progress = self.status.progress
            progress.scanned = max(progress.scanned, walked + result.moved)
            progress.total = progress.scanned
            progress.created = result.new
            progress.skipped = result.skipped
            self.status.errors.extend(str(p) for p in result.problems[:20])
            try:
                self._on_finished(result)
            except Exception as err:
                _log.error("seed.failed", roots=names, error=repr(err))
        with self._lock:
            self.status.state = IDLE
            self._done.set()
