"""The HTTP API as the daemon sees it: a guest on a thread of its own.

:class:`ApiRuntime` is what ``service.py`` holds. Built before READY, it checks the ``[api]``
settings (a token file that cannot be read is a config error, exit 78); :meth:`start`, called
after READY, starts the API thread, which only then imports the web stack (FastAPI, uvicorn,
prometheus_client: about half a second and 19 MiB that the CLI and start-up never pay). The
daemon's threads call :meth:`batch_applied`, :meth:`reconciled`, :meth:`root_unavailable` and
:meth:`hashed` (the hasher) after their commits: O(1) work, no I/O. :meth:`stop` ends the
thread within a bound.

This module imports no web framework.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from assetd import log
from assetd.api.events import EventSource
from assetd.api.seed import Seeder
from assetd.api.stats import DaemonStats
from assetd.api.status_file import write_api_status
from assetd.catalog.roots import RootSpec
from assetd.config import Config
from assetd.config_parse import ListenAddress, check_api_listen, config_error
from assetd.reconcile import ReconcileResult

if TYPE_CHECKING:
    from assetd.catalog.content import HashJob
    from assetd.catalog_access import Catalog
    from assetd.hashing.background import Hasher
    from assetd.live.canary import Canary
    from assetd.live.changes import Change
    from assetd.live.observers import Watchers
    from assetd.live.pipeline import Pipeline
    from assetd.live.scheduler import ReconcileScheduler
    from assetd.live.worker import BatchResult

_log = log.get_logger(__name__)

STOP_TIMEOUT = 5.0


class DaemonView(Protocol):
    """What the API reads of the running daemon (``service.Service`` is one)."""

    config: Config
    catalog: Catalog | None
    roots: list[RootSpec]

    @property
    def unavailable(self) -> Collection[int]:
        """Ids of the roots that are away (unavailable or covered)."""
        ...

    hasher: Hasher | None
    pipeline: Pipeline
    scheduler: ReconcileScheduler
    canary: Canary
    watchers: Watchers
    changes: queue.Queue[Change | None]


def read_token(token_file: str) -> str:
    """The bearer token: the file's first line. A file that cannot be read is exit 78."""
    if not token_file:
        return ""
    try:
        with open(token_file, encoding="utf-8") as f:
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise config_error("api.token_file", f"cannot read {token_file}: {why}") from None
    if not token:
        raise config_error("api.token_file", f"{token_file} is empty: write a token in it")
    return token


class ApiRuntime:
    def __init__(self, config: Config, daemon: DaemonView) -> None:
        self.addresses: list[ListenAddress] = check_api_listen(
            config.api.listen, config.api.token_file, config.state_dir, strict_paths=False
        )
        self.token = read_token(config.api.token_file)
        self.state_dir = config.state_dir
        self.daemon = daemon
        self.stats = DaemonStats()
        self.events = EventSource(lambda: [(r.name, r.path) for r in daemon.roots])
        self.seeder: Seeder | None = None
        self.listening: dict[str, str | None] = {}  # address -> None (serving) or why not
        self._server: Any = None  # api.server.ApiServer, imported on its thread
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.addresses)

    # --- called by the daemon's threads after their commits (cheap, never raises) ------------

    def batch_applied(self, result: BatchResult) -> None:
        counts = result.counts()
        self.stats.batch(result.duration_s, counts, result.latency_s)
        if not self.enabled:
            return
        self.events.batch_applied(
            counts,
            {
                "cache_state.missing": result.missing_paths,
                "cache_state.moved": result.moved_paths,
                "cache_state.restored": result.restored_paths,
                "cache_state.created": result.new_paths,
            },
        )

    def hashed(self, recorded: Sequence[tuple[HashJob, str, str]]) -> None:
        """The hasher committed these digests ``(job, digest, outcome)``."""
        if self.enabled:
            self.events.hash_recorded([(job.file_path, d, o) for job, d, o in recorded])

    def reconciled(self, result: ReconcileResult) -> None:
        self.stats.reconcile(result.duration_s)
        if self.enabled:
            available = [r.name for r in self.daemon.roots if r.id not in self.daemon.unavailable]
            self.events.reconcile_finished(result.as_dict(), available)

    def root_unavailable(self, root: RootSpec, missing: int) -> None:
        if self.enabled:
            self.events.root_unavailable(root.name, root.path, missing)

    # --- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        catalog = self.daemon.catalog
        assert catalog is not None
        self.seeder = Seeder(catalog.sessions, self._seeded)
        self._thread = threading.Thread(target=self._run, name="assetd-api", daemon=True)
        self._thread.start()

    def _seeded(self, result: ReconcileResult) -> None:
        self.reconciled(result)
        if self.daemon.hasher is not None:
            self.daemon.hasher.wake()

    def _run(self) -> None:
        try:
            from assetd.api.server import ApiServer  # the web stack, imported here only

            self._server = ApiServer(self)
            if not self._stop.is_set():
                self._server.run()
        except BaseException as err:  # the API is a guest: its failure never stops the daemon
            _log.error("api.failed", error=repr(err), exc_info=True)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Ask the server to end, wait at most ``timeout``; the seed thread is cancelled too.
        False when the thread did not end in time."""
        self._stop.set()
        if self._server is not None:
            self._server.request_stop()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("api.stop_timeout", waited_s=timeout)
                ended = False
        if self.seeder is not None:
            self.seeder.stop(STOP_TIMEOUT)
        self.write_status(stopped=True)
        return ended

    # --- where it listens, for `assetd status` ---------------------------------------------

    def write_status(self, *, stopped: bool = False) -> None:
        doc = {
            "pid": os.getpid(),
            "stopped": stopped,
            "listen": [
                {"address": a.text, "path": a.path or None, "error": self.listening.get(a.text)}
                for a in self.addresses
                if a.text in self.listening
            ],
        }
        try:
            write_api_status(self.state_dir, doc)
        except OSError as err:
            _log.debug("api.status_failed", error=str(err))
