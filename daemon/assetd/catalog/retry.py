"""Transactions that lose a race with another host are run again (DESIGN §7).

On PostgreSQL two hosts' batches can deadlock (``40P01``), fail serialization (``40001``) or
race on a unique key (``23505``: two hosts giving one digest to two assets); the loser's
transaction is rolled back whole and can simply run again, and on its next run it finds the
winner's rows (an upsert that takes the existing row). :func:`run_retrying` does that a bounded
number of times (:data:`ATTEMPTS`), sleeping a short jittered while between (so the two do
not collide again in step). The errors may come wrapped by SQLAlchemy or raw from the driver
(the hot paths use the driver's cursor).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

T = TypeVar("T")

ATTEMPTS = 5
"""Runs of one transaction at most (the last error propagates)."""
PAUSE = 0.05
"""Seconds: the n-th retry sleeps a random time in [0, n * PAUSE)."""
CONFLICT_SQLSTATES = frozenset({"40P01", "40001", "23505"})
LOCK_SQLSTATES = frozenset({"40P01", "40001"})


def is_conflict(err: BaseException) -> bool:
    """A deadlock, serialization failure or unique-key race: worth running again."""
    if isinstance(err, IntegrityError | sqlite3.IntegrityError):
        return True
    orig = getattr(err, "orig", None) or err
    return getattr(orig, "sqlstate", None) in CONFLICT_SQLSTATES


def is_lock_conflict(err: BaseException) -> bool:
    """A deadlock or serialization failure only (a unique-key error is left to the caller)."""
    orig = getattr(err, "orig", None) or err
    return getattr(orig, "sqlstate", None) in LOCK_SQLSTATES


def run_retrying(
    work: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    pause: float = PAUSE,
    conflict: Callable[[BaseException], bool] = is_conflict,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """``work()`` (one whole transaction), run again when ``conflict(error)`` says so, up to
    ``attempts`` runs in all; ``on_retry(error, attempt)`` before each new run."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as err:
            if attempt == attempts or not conflict(err):
                raise
            if on_retry is not None:
                on_retry(err, attempt)
            time.sleep(random.uniform(0, attempt * pause))
    raise AssertionError("unreachable")
