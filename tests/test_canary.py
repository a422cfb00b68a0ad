"""The watchdog canary (issue 9): what it proves, on an injected clock, and on the real daemon.

The canary proves that the pipeline thread (queue -> debouncer -> worker) takes changes off the
queue: a touch the pipeline has not taken after ``stall_after`` seconds is a hang, and
``WATCHDOG=1`` stops. A slow pipeline that still takes each touch within the window is alive.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetd.live.canary import Liveness, timing
from daemon_harness import Daemon, NotifySocket
from helpers import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(
    seen_delay: float | None, *, stop_seeing_at: float | None = None, seconds: int = 600
) -> list[tuple[float, bool]]:
    """600 one-second ticks of the service's loop: a touch every ``touch_every`` s, each taken
    by the pipeline ``seen_delay`` s later (None: never), until ``stop_seeing_at``."""
    t = timing(60.0)
    clock = FakeClock()
    start = clock.now
    live = Liveness(t.stall_after, clock)
    pending: list[float] = []  # when the pipeline will take each touch
    answers = []
    last_touch = -1e9
    for _ in range(seconds):
        clock.now += 1.0
        elapsed = clock.now - start
        if stop_seeing_at is None or elapsed < stop_seeing_at:
            for due in [d for d in pending if d <= clock.now]:
                pending.remove(due)
                live.seen(due)
        if clock.now - last_touch >= t.touch_every:
            live.touched()
            last_touch = clock.now
            if seen_delay is not None:
                pending.append(clock.now + seen_delay)
        answers.append((elapsed, live.alive()))
    return answers


def test_a_healthy_pipeline_is_alive_at_every_tick() -> None:
    assert all(alive for _, alive in drive(0.05))


def test_a_slow_pipeline_within_the_window_is_alive() -> None:
    window = timing(60.0).stall_after
    assert all(alive for _, alive in drive(window - 2.0))


def test_a_stalled_pipeline_stops_the_pings_for_good_within_watchdog_sec() -> None:
    """The old canary answered true at all 600 ticks of a blocked worker."""
    answers = drive(0.05, stop_seeing_at=100.0)
    first_dead = next(elapsed for elapsed, alive in answers if not alive)
    assert 100.0 < first_dead <= 100.0 + 60.0  # within WatchdogSec of the stall
    assert not any(alive for elapsed, alive in answers if elapsed >= first_dead)


def test_a_pipeline_that_never_takes_anything_is_dead() -> None:
    answers = drive(None)
    assert not answers[-1][1]


def test_the_pipeline_taking_touches_again_is_alive_again() -> None:
    clock = FakeClock()
    live = Liveness(10.0, clock)
    live.touched()
    clock.now += 11.0
    assert not live.alive()
    assert live.stalled_for() == pytest.approx(11.0)
    live.seen(clock.now)
    assert live.alive()
    assert live.stalled_for() == 0.0


@pytest.mark.parametrize("watchdog_sec", [2.0, 4.0, 10.0, 60.0, 600.0, None])
def test_the_timing_fits_inside_watchdog_sec(watchdog_sec: float | None) -> None:
    t = timing(watchdog_sec)
    assert t.touch_every > 0 and t.tick > 0 and t.stall_after > t.touch_every
    if watchdog_sec is not None:
        # a wedge right after a touch was taken: the next touch, its window, one tick
        assert t.touch_every + t.stall_after + t.tick <= 0.8 * watchdog_sec
        assert t.tick <= watchdog_sec / 2  # pings at least twice per WatchdogSec


# --- the real process: a worker wedged by the test-only fault hook --------------------------


class TimedNotifySocket(NotifySocket):
    """The harness's socket, which records when each message arrived (``times``)."""

    def pings(self) -> list[float]:
        return [t for t, m in self.times if "WATCHDOG=1" in m.split("\n")]


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    return d


@pytest.fixture
def daemon(tmp_path: Path, lib: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"lib": lib})
    d.notify = TimedNotifySocket(tmp_path / "notify.sock")
    yield d
    d.close()


@pytest.mark.slow
def test_a_wedged_worker_stops_the_watchdog_pings(daemon: Daemon, lib: Path) -> None:
    watchdog_sec = 6.0
    notify = daemon.notify
    assert isinstance(notify, TimedNotifySocket)
    daemon.start(
        env={
            "WATCHDOG_USEC": str(int(watchdog_sec * 1_000_000)),
            "ASSETD_TEST_WEDGE_WORKER": "wedge-here",
        }
    )
    wait_until(lambda: len(notify.pings()) >= 3, 15, what="WATCHDOG=1 while healthy")
    daemon.barrier(lib)
    wedged_at = time.monotonic()
    (lib / "wedge-here").write_bytes(b"the worker blocks on this batch for good")
    wait_until(
        lambda: time.monotonic() - max(notify.pings()) > watchdog_sec,
        4 * watchdog_sec,
        what="the pings to stop",
    )
    assert max(notify.pings()) - wedged_at <= watchdog_sec
    assert daemon.proc is not None and daemon.proc.poll() is None  # systemd's job to kill it
    stalled = [e for e in daemon.log_events() if e.get("event") == "canary.stalled"]
    assert len(stalled) == 1, daemon.log_text()[-3000:]
    # SIGTERM: the stop runs out of time on the pipeline and says what it was waiting for
    started = time.monotonic()
    code = daemon.stop(signal.SIGTERM, timeout=40)
    assert time.monotonic() - started < 25  # within TimeoutStopSec=30, with margin
    assert code != -signal.SIGKILL
    timeouts = [e for e in daemon.log_events() if e.get("event") == "daemon.stop_timeout"]
    assert timeouts and timeouts[0].get("waiting_for") == "pipeline", daemon.log_text()[-3000:]


@pytest.mark.slow
def test_a_healthy_daemon_keeps_pinging_with_extend_timeout_at_start(
    daemon: Daemon, lib: Path
) -> None:
    notify = daemon.notify
    assert isinstance(notify, TimedNotifySocket)
    daemon.start(env={"WATCHDOG_USEC": "4000000"})
    wait_until(lambda: len(notify.pings()) >= 4, 15, what="WATCHDOG=1 pings")
    pings = notify.pings()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 2.5, gaps  # about every WatchdogSec/2 at most
    order = [m for _, m in notify.times]
    ready = next(i for i, m in enumerate(order) if "READY=1" in m.split("\n"))
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in order[:ready]), order[: ready + 1]
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_locked_database_is_degraded_not_a_hang(daemon: Daemon, lib: Path) -> None:
    """The catalog locked by another process for 20 s (longer than one busy timeout and its
    retries): the daemon says DEGRADED in STATUS= and keeps pinging; no canary.stalled."""
    watchdog_sec = 60.0  # the units' WatchdogSec: the pipeline may block 30 s at most
    notify = daemon.notify
    assert isinstance(notify, TimedNotifySocket)
    daemon.start(env={"WATCHDOG_USEC": str(int(watchdog_sec * 1_000_000))})
    wait_until(lambda: len(notify.pings()) >= 2, 15, what="WATCHDOG=1 while healthy")
    daemon.barrier(lib)
    holder = sqlite3.connect(daemon.db, timeout=10, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    try:
        (lib / "while-locked.bin").write_bytes(b"x")
        wait_until(
            lambda: any(
                t > locked_at and m.startswith("STATUS=") and "DEGRADED" in m
                for t, m in notify.times
            ),
            25,
            what="STATUS= saying degraded",
        )
        threading.Event().wait(max(0.0, locked_at + 20.0 - time.monotonic()))  # hold the lock
    finally:
        holder.rollback()
        holder.close()
    unlocked_at = time.monotonic()
    daemon.barrier(lib)
    pings = [t for t in notify.pings() if t >= locked_at - 1.0]
    gaps = [b - a for a, b in itertools.pairwise([locked_at, *pings, unlocked_at])]
    assert max(gaps) < watchdog_sec / 2, gaps
    assert not [e for e in daemon.log_events() if e.get("event") == "canary.stalled"]
    assert daemon.stop() == 0
