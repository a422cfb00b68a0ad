"""Test helpers: waiting on conditions with a deadline (never bare sleeps), small catalog views."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """What :func:`wait_until` raises when its deadline passes (a failed assertion)."""


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then fail with
    :class:`Timeout`)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what or predicate}")
        pause.wait(interval)
