"""Reconcile's flushes written behind the walk (PostgreSQL): each on a session of its own, in
writer threads, while the walk and the diff go on to the next flush.

The server inserts and checks a flush's rows (its foreign keys, row by row) on its own core
while this process walks; with two lanes, one flush's files are re-checked against the disk
(inside its own transaction, as ever) while the other's rows are being written. Flushes hold
disjoint paths, each in its own transaction, and take their locks in path order, so they never
wait on each other's rows; a conflict with another writer is retried as before
(``run_retrying``).

At most ``LANES`` flushes are in flight: handing off one more waits for the oldest, whose error
is raised there, after the others in flight have ended, as it would have been at its own flush.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import SimpleQueue

from sqlalchemy.orm import Session

from assetd.diff import Batch
from assetd.links import LinkRules

LANES = 2  # flushes written at once: one re-checks its files while the other's rows are written
THREAD_NAME = "assetd-reconcile-write"


@dataclass(frozen=True, slots=True)
class Lane:
    """What one flush behind the walk runs on: a session and symlink rules of its own."""

    session: Session
    rules: LinkRules


Write = Callable[[Session, LinkRules, Batch], None]


class Behind:
    """Runs ``write(session, rules, batch)`` for each handed-off flush on a free lane."""

    def __init__(self, session: Session, rules: LinkRules, write: Write) -> None:
        self._bind, self._rules, self._write = session.get_bind(), rules, write
        self._pool: ThreadPoolExecutor | None = None
        self._lanes: list[Lane] = []
        self._free: SimpleQueue[Lane] = SimpleQueue()
        self._pending: deque[Future[None]] = deque()

    def hand_off(self, batch: Batch) -> None:
        """Write ``batch`` behind the walk; waits first if every lane is busy."""
        while len(self._pending) >= LANES:
            self._wait_oldest()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(LANES, thread_name_prefix=THREAD_NAME)
            for _ in range(LANES):
                lane = Lane(Session(bind=self._bind, expire_on_commit=False), self._rules.fresh())
                self._lanes.append(lane)
                self._free.put(lane)
        context = contextvars.copy_context()  # what the walk's log lines carry, its lines carry
        self._pending.append(self._pool.submit(context.run, self._run, batch))

    def _run(self, batch: Batch) -> None:
        lane = self._free.get()
        try:
            self._write(lane.session, lane.rules, batch)
        finally:
            self._free.put(lane)

    def _wait_oldest(self) -> None:
        try:
            self._pending.popleft().result()
        except BaseException:
            self._drain()  # the rest end first; their errors came later
            raise

    def _drain(self) -> None:
        while self._pending:  # a later error than the one being raised: that one decides
            with contextlib.suppress(BaseException):
                self._pending.popleft().result()

    def settle(self) -> None:
        """Wait for every flush in flight, in order; raise the first one's error; end the
        threads and close the lanes' sessions."""
        try:
            while self._pending:
                self._wait_oldest()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            for lane in self._lanes:
                lane.session.close()
            self._lanes.clear()
            self._free = SimpleQueue()
