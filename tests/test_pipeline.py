"""The pipeline and reconcile threads: batches flow, failures are handed on, crashes surface."""

from __future__ import annotations

import queue
import random
import threading
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError

from assetd.catalog.engine import SessionFactory
from assetd.live.changes import Batch, Change, Kind
from assetd.live.pipeline import Pipeline
from assetd.live.scheduler import ReconcileScheduler, jittered
from assetd.live.worker import BatchResult, Worker
from catalog_world import World, make_world
from helpers import wait_until


class FlakyWorker(Worker):
    """A real worker whose first ``failures`` batches raise ``error``."""

    def __init__(self, world: World, failures: int, error: BaseException) -> None:
        super().__init__(world.sessions, [world.root])
        self.failures = failures
        self.error = error
        self.calls = 0

    def apply(self, batch: Batch) -> BatchResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return super().apply(batch)


def _pipeline(world: World, worker: Worker, requests: list[str]) -> Pipeline:
    q: queue.Queue[Change | None] = queue.Queue()
    return Pipeline(
        q,
        worker,
        quiet_ms=5,
        max_delay_ms=50,
        root_paths=lambda: [world.root.path],
        request_reconcile=lambda why, _root: requests.append(why),
        canary_dir=str(world.dir.parent / "canary"),
    )


def test_batches_flow_and_the_canary_is_seen(sessions: SessionFactory, tmp_path: Path) -> None:
    world = make_world(sessions, tmp_path / "lib")
    p = _pipeline(world, Worker(world.sessions, [world.root]), [])
    p.start()
    f = world.write("a")
    p.changes.put(Change(Kind.CREATED, str(f)))
    p.changes.put(Change(Kind.MODIFIED, str(tmp_path / "canary/beat")))
    wait_until(lambda: world.state("a") is not None, 5)
    wait_until(lambda: p.canary_seen > 0, 5)
    p.stop()
    assert not p.thread.is_alive() and p.error is None


def test_an_outage_keeps_the_batch_and_applies_it_once_the_database_answers(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    requests: list[str] = []
    down = OperationalError("UPDATE", {}, Exception("database is down"))
    worker = FlakyWorker(world, failures=3, error=down)
    p = _pipeline(world, worker, requests)
    p.start()
    p.changes.put(Change(Kind.CREATED, str(world.write("a"))))
    wait_until(lambda: world.state("a") is not None, 10, what="applied once the database answers")
    wait_until(lambda: p.db_ok and "database restored" in requests, 5, what="restored")
    # the first try and one at once (a cut connection), then after a probe, then after a backoff
    assert worker.calls == 4
    p.stop()


def test_a_crashing_worker_does_not_stop_the_pipeline(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    p = _pipeline(world, FlakyWorker(world, failures=1, error=RuntimeError("bug")), [])
    p.start()
    p.changes.put(Change(Kind.CREATED, str(world.write("a"))))
    wait_until(lambda: world.state("a") is not None, 5, what="the subtree reconcile after a bug")
    p.stop()
    assert not p.thread.is_alive() and p.error is None
    assert p.failed_batches == 1


def test_stop_flushes_the_last_batch(sessions: SessionFactory, tmp_path: Path) -> None:
    world = make_world(sessions, tmp_path / "lib")
    q: queue.Queue[Change | None] = queue.Queue()
    p = Pipeline(
        q,
        Worker(world.sessions, [world.root]),
        quiet_ms=60_000,  # nothing would flush before the stop
        max_delay_ms=60_000,
        root_paths=lambda: [world.root.path],
        request_reconcile=lambda _why, _root: None,
    )
    p.start()
    q.put(Change(Kind.CREATED, str(world.write("last"))))
    p.stop()
    assert world.state("last") is not None


def test_a_batch_latency_runs_from_its_oldest_change_seen_to_the_commit(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    q: queue.Queue[Change | None] = queue.Queue()
    results: list[BatchResult] = []
    p = Pipeline(
        q,
        Worker(world.sessions, [world.root]),
        quiet_ms=5,
        max_delay_ms=50,
        root_paths=lambda: [world.root.path],
        request_reconcile=lambda _why, _root: None,
        on_applied=results.append,
        clock=lambda: 1000.0,  # the commit, on the latency's clock
    )
    q.put(Change(Kind.CREATED, str(world.write("b")), seen=998.0))
    q.put(Change(Kind.CREATED, str(world.write("a")), seen=997.5))  # the oldest, queued last
    p.start()  # both queued first: one batch
    try:
        wait_until(lambda: world.state("a") is not None and world.state("b") is not None, 5)
        wait_until(lambda: len(results) >= 1, 5, what="on_applied")
    finally:
        p.stop()
    assert [r.latency_s for r in results] == [2.5]  # one batch: 1000.0 - 997.5


def test_a_change_is_stamped_when_made_and_equality_ignores_it() -> None:
    before = time.monotonic()
    change = Change(Kind.DELETED, "/r/a")
    assert before <= change.seen <= time.monotonic()
    assert change == Change(Kind.DELETED, "/r/a", seen=0.0)
    assert "seen" not in repr(change)


def test_jitter_stays_within_a_quarter() -> None:
    rng = random.Random(1)
    values = [jittered(100.0, rng) for _ in range(1000)]
    assert min(values) >= 75.0 and max(values) <= 125.0
    assert max(values) - min(values) > 25.0  # it does vary


def test_scheduler_runs_on_request_and_polls(sessions: SessionFactory, tmp_path: Path) -> None:
    world = make_world(sessions, tmp_path / "lib")
    world.write("x")
    done = threading.Event()
    results = []

    def finished(result: object) -> None:
        results.append(result)
        done.set()

    s = ReconcileScheduler(
        sessions,
        lambda: [world.root],
        interval=3600,
        poll_intervals=lambda: {},
        on_finished=finished,
    )
    s.start()
    s.request("test")
    assert done.wait(10)
    assert world.state("x") is not None
    s.stop()
    assert not s.thread.is_alive()
    polled = threading.Event()
    p = ReconcileScheduler(
        sessions,
        lambda: [world.root],
        interval=3600,
        poll_intervals=lambda: {world.root.id: 0.05},
        on_finished=lambda _: polled.set(),
    )
    p.start()
    assert polled.wait(10), "a polling root is reconciled every poll_interval"
    p.stop()
