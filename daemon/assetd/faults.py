"""Test-only fault hooks, read from the environment only when a variable is set.

Nothing here runs in production: without the variable the hook is None and costs nothing.
The end-to-end tests use them to make the real ``assetd run`` misbehave on purpose.

- ``ASSETD_TEST_WEDGE_WORKER=NAME``: the worker blocks for good on a batch that touches a file
  called ``NAME`` (a worker call that never returns), so a test can watch ``WATCHDOG=1`` stop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from assetd.live.changes import Batch

__all__ = ["WEDGE_WORKER", "worker_fault"]

WEDGE_WORKER = "ASSETD_TEST_WEDGE_WORKER"

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
