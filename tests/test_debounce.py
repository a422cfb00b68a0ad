"""Debouncer on a fake clock; drain() with a real queue (deadline-bounded, no sleeps)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from assetd.live.changes import Change, Kind
from assetd.live.debounce import Debouncer, drain


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000


def change(n: int) -> Change:
    return Change(Kind.MODIFIED, f"/r/{n}")


def test_nothing_pending() -> None:
    d = Debouncer(clock=FakeClock())
    assert len(d) == 0
    assert not d.due()
    assert d.seconds_until_due() is None
    assert d.take() == []


def test_quiet_window_flushes() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock)
    d.add(change(1))
    assert d.seconds_until_due() == pytest.approx(0.050)
    clock.advance(30)
    d.add(change(2))  # restarts the quiet window
    clock.advance(49)
    assert not d.due()
    assert d.seconds_until_due() == pytest.approx(0.001)
    clock.advance(1)
    assert d.due()
    assert d.seconds_until_due() == 0.0
    assert d.take() == [change(1), change(2)]


def test_steady_stream_is_capped_by_max_delay() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock)
    for n in range(100):  # one change every 10 ms: the quiet window never passes
        d.add(change(n))
        assert not d.due(), f"due after {n * 10} ms"
        clock.advance(10)
    # 1000 ms after the first change, whatever the stream does
    assert clock.now == pytest.approx(101.0)
    assert d.due()
    assert len(d.take()) == 100


def test_seconds_until_due_is_the_nearer_limit() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock)
    d.add(change(0))
    for _ in range(99):
        clock.advance(10)
        d.add(change(0))
    # 990 ms after the first: quiet would be due in 50 ms, the cap in 10 ms
    assert d.seconds_until_due() == pytest.approx(0.010)
    clock.advance(5)
    assert d.seconds_until_due() == pytest.approx(0.005)
    clock.advance(500)
    assert d.seconds_until_due() == 0.0


def test_take_resets_and_the_cap_restarts() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=100, clock=clock)
    d.add(change(1))
    clock.advance(100)
    assert d.take() == [change(1)]
    assert len(d) == 0
    assert not d.due()
    assert d.seconds_until_due() is None
    d.add(change(2))  # the first pending change after a take starts a new cap
    assert d.seconds_until_due() == pytest.approx(0.050)
    assert not d.due()


def test_add_many_is_one_arrival() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock)
    d.add_many([])
    assert d.seconds_until_due() is None
    d.add_many(change(n) for n in range(3))
    assert len(d) == 3
    clock.advance(40)
    d.add_many([change(3)])
    clock.advance(40)
    assert not d.due()  # the quiet window counts from the last arrival
    clock.advance(10)
    assert d.due()
    assert d.take() == [change(n) for n in range(4)]


def test_cap_below_quiet_wins() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=500, max_delay_ms=100, clock=clock)
    d.add(change(1))
    assert d.seconds_until_due() == pytest.approx(0.100)
    clock.advance(100)
    assert d.due()


def test_zero_quiet_is_due_at_once() -> None:
    d = Debouncer(quiet_ms=0, clock=FakeClock())
    d.add(change(1))
    assert d.due()


@pytest.mark.parametrize(("quiet", "cap"), [(-1, 1000), (50, -1)])
def test_negative_limits_are_refused(quiet: int, cap: int) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Debouncer(quiet_ms=quiet, max_delay_ms=cap)


# --- drain ----------------------------------------------------------------------------------


class RecordingQueue(queue.Queue[Change | None]):
    """Records each blocking get's timeout; then sets ``stop`` and reports an empty queue."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop
        self.timeouts: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> Change | None:
        if not block:
            return super().get(block=False)
        self.timeouts.append(timeout)
        self.stop.set()
        raise queue.Empty


def filled(items: list[Change | None]) -> queue.Queue[Change | None]:
    q: queue.Queue[Change | None] = queue.Queue()
    for item in items:
        q.put(item)
    return q


def test_drain_on_stop_returns_what_is_queued_then_none() -> None:
    stop = threading.Event()
    stop.set()
    q = filled([change(1), None, change(2)])
    d = Debouncer(clock=FakeClock())
    assert drain(q, d, stop=stop) == [change(1), change(2)]
    assert drain(q, d, stop=stop) is None


def test_drain_on_stop_flushes_pending_before_it_is_due() -> None:
    stop = threading.Event()
    d = Debouncer(clock=FakeClock())
    d.add(change(1))
    stop.set()
    assert drain(filled([change(2)]), d, stop=stop) == [change(1), change(2)]


def test_drain_on_stop_with_nothing_is_none() -> None:
    stop = threading.Event()
    stop.set()
    assert drain(filled([]), Debouncer(clock=FakeClock()), stop=stop) is None


def test_drain_returns_a_due_batch_without_waiting() -> None:
    clock = FakeClock()
    stop = threading.Event()
    q = RecordingQueue(stop)
    d = Debouncer(quiet_ms=50, clock=clock)
    d.add(change(1))
    clock.advance(50)
    assert drain(q, d, stop=stop) == [change(1)]
    assert q.timeouts == []  # never blocked
    assert not stop.is_set()


def test_drain_waits_in_get_until_due_not_spinning() -> None:
    clock = FakeClock()
    stop = threading.Event()
    q = RecordingQueue(stop)
    d = Debouncer(quiet_ms=50, clock=clock)
    d.add(change(1))
    clock.advance(20)
    assert drain(q, d, stop=stop, max_wait=0.5) == [change(1)]  # flushed by the stop
    assert q.timeouts == [pytest.approx(0.030)]


def test_drain_waits_max_wait_when_idle() -> None:
    stop = threading.Event()
    q = RecordingQueue(stop)
    assert drain(q, Debouncer(clock=FakeClock()), stop=stop, max_wait=0.25) is None
    assert q.timeouts == [0.25]


def test_drain_never_waits_longer_than_max_wait() -> None:
    clock = FakeClock()
    stop = threading.Event()
    q = RecordingQueue(stop)
    d = Debouncer(quiet_ms=5000, max_delay_ms=10000, clock=clock)
    d.add(change(1))
    drain(q, d, stop=stop, max_wait=0.5)
    assert q.timeouts == [0.5]


def test_drain_checks_the_flush_between_chunks_of_a_flood() -> None:
    q = filled([change(n) for n in range(10)])
    d = Debouncer(quiet_ms=0, clock=FakeClock())  # due as soon as anything is pending
    stop = threading.Event()
    assert drain(q, d, stop=stop, chunk=3) == [change(n) for n in range(4)]  # 1 + a chunk of 3
    assert drain(q, d, stop=stop, chunk=3) == [change(n) for n in range(4, 8)]
    stop.set()
    assert drain(q, d, stop=stop, chunk=3) == [change(8), change(9)]
    assert drain(q, d, stop=stop, chunk=3) is None


def test_drain_with_the_real_clock() -> None:
    q = filled([change(1), change(2)])
    d = Debouncer(quiet_ms=20, max_delay_ms=200)
    started = time.monotonic()
    assert drain(q, d, stop=threading.Event(), max_wait=5.0) == [change(1), change(2)]
    assert time.monotonic() - started < 5.0


class SignallingQueue(queue.Queue[Change | None]):
    """A real queue that says when a blocking get starts waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def get(self, block: bool = True, timeout: float | None = None) -> Change | None:
        if block:
            self.waiting.set()
        return super().get(block, timeout)


def test_a_blocked_drain_wakes_on_stop_and_sentinel() -> None:
    q = SignallingQueue()
    stop = threading.Event()
    result: list[list[Change] | None] = []
    thread = threading.Thread(
        target=lambda: result.append(drain(q, Debouncer(), stop=stop, max_wait=60.0)),
        name="test-drain",
    )
    thread.start()
    try:
        assert q.waiting.wait(timeout=10.0), "drain never blocked in q.get"
        started = time.monotonic()
        stop.set()
        q.put(None)
        thread.join(timeout=10.0)
        assert not thread.is_alive()
        assert time.monotonic() - started < 10.0  # far below max_wait: the sentinel woke it
        assert result == [None]
    finally:
        stop.set()
        q.put(None)
        thread.join(timeout=10.0)


# --- the adaptive window (min_quiet_ms) -------------------------------------------------------


def test_a_lone_change_flushes_after_min_quiet() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock, min_quiet_ms=5)
    d.add(change(1))
    assert d.seconds_until_due() == pytest.approx(0.005)
    clock.advance(4)
    assert not d.due()
    clock.advance(1)
    assert d.due()
    assert d.take() == [change(1)]


def test_the_window_widens_while_changes_keep_coming_up_to_quiet() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock, min_quiet_ms=5)
    windows = []
    for n in range(12):  # one arrival every 3 ms, inside the window each time
        d.add(change(n))
        windows.append(round(d.seconds_until_due() or 0, 6))
        clock.advance(3)
    assert windows[:4] == [0.005, 0.010, 0.015, 0.020]
    assert windows[-1] == 0.050  # capped at quiet_ms
    clock.advance(50 - 3)
    assert d.due()
    assert len(d.take()) == 12
    d.add(change(99))  # after a flush, the next batch starts narrow again
    assert d.seconds_until_due() == pytest.approx(0.005)


def test_a_burst_arriving_at_once_is_one_arrival() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock, min_quiet_ms=5)
    d.add_many(change(n) for n in range(1000))
    assert d.seconds_until_due() == pytest.approx(0.005)
    d.add_many([])  # nothing arrived: no widening
    assert d.seconds_until_due() == pytest.approx(0.005)


def test_the_cap_still_holds_with_an_adaptive_window() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=100, clock=clock, min_quiet_ms=5)
    for n in range(40):  # a change every 4 ms: the quiet window never passes
        d.add(change(n))
        if clock.now - 100.0 < 0.1 - 1e-9:
            assert not d.due()
        clock.advance(4)
    assert d.due()


def test_min_quiet_above_quiet_is_a_fixed_window() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=20, max_delay_ms=1000, clock=clock, min_quiet_ms=500)
    d.add(change(1))
    assert d.seconds_until_due() == pytest.approx(0.020)
    d.add(change(2))
    assert d.seconds_until_due() == pytest.approx(0.020)


def test_zero_min_quiet_still_widens() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock, min_quiet_ms=0)
    d.add(change(1))
    assert d.due()  # a lone change: at once
    d.take()
    d.add(change(2))
    d.add(change(3))  # a second arrival before the flush: 1 ms
    assert d.seconds_until_due() == pytest.approx(0.001)


def test_retime_sets_min_quiet_and_refuses_negatives() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock)
    d.add(change(1))
    assert d.seconds_until_due() == pytest.approx(0.050)
    d.retime(50, 1000, 5)  # a reload: the pending batch keeps the window it had
    assert d.seconds_until_due() == pytest.approx(0.050)
    d.take()
    d.add(change(2))  # the next batch opens at the new minimum
    assert d.seconds_until_due() == pytest.approx(0.005)
    d.retime(3, 1000, 5)  # a pending window wider than the new quiet_ms shrinks to it
    assert d.seconds_until_due() == pytest.approx(0.003)
    with pytest.raises(ValueError, match=">= 0"):
        d.retime(50, 1000, -1)


def test_drain_flushes_a_lone_change_after_min_quiet_with_the_real_clock() -> None:
    q = filled([change(1)])
    d = Debouncer(quiet_ms=5000, max_delay_ms=10000, min_quiet_ms=5)
    started = time.monotonic()
    assert drain(q, d, stop=threading.Event(), max_wait=5.0) == [change(1)]
    assert time.monotonic() - started < 4.0  # the lone change did not wait out quiet_ms


def test_min_quiet_ms_is_a_reloadable_duration(tmp_path: Path) -> None:
    from assetd.config import load_config
    from assetd.reload import plan_reload

    old_file, new_file = tmp_path / "old.toml", tmp_path / "new.toml"
    old_file.write_text(f'[daemon]\nstate_dir = "{tmp_path}/s"\n')
    new_file.write_text(f'[daemon]\nstate_dir = "{tmp_path}/s"\n[watch]\nmin_quiet_ms = "2ms"\n')
    env = {"HOME": str(tmp_path)}
    old, new = load_config(str(old_file), env=env), load_config(str(new_file), env=env)
    assert (old.watch.min_quiet_ms, new.watch.min_quiet_ms) == (5, 2)
    plan = plan_reload(old, new)
    assert plan.applied == ["watch.min_quiet_ms"] and plan.restart_needed == []


# --- a burst: MAX_BATCH pending -----------------------------------------------------------------


def test_a_full_batch_is_due_at_once_whatever_the_windows_say() -> None:
    """A burst's first batch goes to the worker once ``max_batch`` changes are pending, not
    after the quiet window or the cap (the worker then starts early in the burst)."""
    clock = FakeClock()
    d = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=clock, min_quiet_ms=5, max_batch=100)
    for n in range(99):
        d.add(change(n))
        clock.advance(1)  # arrivals keep the window open
    assert not d.due()
    d.add_many([change(99), change(100)])
    assert d.due() and d.seconds_until_due() == 0.0
    assert len(d.take()) == 101
    d.add(change(7))  # the next batch is timed by the windows again
    assert not d.due() and d.seconds_until_due() == pytest.approx(0.005)
