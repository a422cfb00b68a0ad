"""Test-only fault hooks, read from the environment only when a variable is set.

Nothing here runs in production: without the variable the hook is None and costs nothing.
The end-to-end tests use them to make the real ``assetd run`` misbehave on purpose.

- ``ASSETD_TEST_WEDGE_WORKER=NAME``: the worker blocks for good on a batch that touches a file
  called ``NAME`` (a worker call that never returns), so a test can watch ``WATCHDOG=1`` stop.
- ``ASSETD_TEST_CRASH_PIPELINE=1``: the pipeline thread dies on its first batch, outside the
  per-batch guard, so a test can watch the crash path (``daemons.status = 'failed'``).
- ``ASSETD_TEST_API_RETRY_S=SECONDS``: an API address that cannot be bound is retried every
  ``SECONDS`` instead of every 30 s, so a test can watch the retry succeed in a real daemon.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from assetd.live.changes import Batch

__all__ = [
    "API_RETRY",
    "CRASH_PIPELINE",
    "WEDGE_WORKER",
    "api_retry_every",
    "pipeline_fault",
    "worker_fault",
]

WEDGE_WORKER = "ASSETD_TEST_WEDGE_WORKER"
CRASH_PIPELINE = "ASSETD_TEST_CRASH_PIPELINE"
API_RETRY = "ASSETD_TEST_API_RETRY_S"

BatchHook = Callable[[Batch], None]


def worker_fault(env: Mapping[str, str] | None = None) -> BatchHook | None:
    """The worker's fault hook from ``env`` (default ``os.environ``), or None (always, in
    production: the variable is not set)."""
    name = (os.environ if env is None else env).get(WEDGE_WORKER, "")
    if not name:
        return None

    def wedge(batch: Batch) -> None:
        if any(os.path.basename(p) == name for p in batch.touched):
            threading.Event().wait()  # never set: this call never returns

    return wedge


def pipeline_fault(env: Mapping[str, str] | None = None) -> Callable[[], None] | None:
    """The pipeline's fault hook from ``env`` (default ``os.environ``), or None."""
    if not (os.environ if env is None else env).get(CRASH_PIPELINE):
        return None

    def crash() -> None:
        raise RuntimeError(f"fault injected: {CRASH_PIPELINE}")

    return crash


def api_retry_every(default: float, env: Mapping[str, str] | None = None) -> float:
    """How often the API retries an address it cannot bind: ``default`` (in production: the
    variable is not set), or a test's positive ``ASSETD_TEST_API_RETRY_S``."""
    value = (os.environ if env is None else env).get(API_RETRY, "")
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default
