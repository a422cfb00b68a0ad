"""Reload, signals, start and stop (issue 9, part B).

- a SIGHUP while a batch is being applied never crashes the worker: roots swap between batches;
- a reload applies ``[watch] ignore`` (the observers' rules too), ``quiet_ms``,
  ``max_delay_ms``, ``[log] level`` and ``[hashing]``, and names every key it cannot apply live in
  ``config.restart_needed``;
- a notify socket nobody reads never blocks the main loop: SIGTERM is still acted on;
- a burst of signals is harmless; the stop waits fit the units' ``TimeoutStopSec``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from assetd.catalog.engine import SessionFactory
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world
from daemon_harness import Daemon
from helpers import wait_until
from test_systemd_units import SYSTEM_UNIT, USER_UNIT, read_unit

# --- Worker.set_roots while a batch is applied ------------------------------------------------


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def test_set_roots_during_apply_takes_effect_between_batches(world: World) -> None:
    """A reload (another thread) that drops the root while a batch is in its stat phase: the
    batch finishes with the roots it started with; the next batch uses the new ones."""
    files = [world.write(f"f{i}.bin", b"x" * i) for i in range(5)]
    worker: Worker

    def stat(path: str) -> os.stat_result:
        worker.set_roots([])  # SIGHUP lands mid-batch: the root is no longer configured
        return os.stat(path)

    worker = Worker(world.sessions, [world.root], stat=stat)
    changes = [Change(Kind.CREATED, str(f)) for f in files]
    result = worker.apply(coalesce(changes, roots=[str(world.dir)]))
    assert result.new == 5
    assert all(world.state(str(f)) is not None for f in files)
    late = world.write("late.bin")
    result = worker.apply(coalesce([Change(Kind.CREATED, str(late))], roots=[str(world.dir)]))
    assert result.new == 0  # the root is gone from the new configuration
    assert world.state(str(late)) is None


def test_set_roots_to_a_changed_root_during_apply(world: World) -> None:
    f = world.write("a.bin")
    renamed = dataclasses.replace(world.root, id=world.root.id + 1000)
    worker: Worker

    def stat(path: str) -> os.stat_result:
        worker.set_roots([renamed])
        return os.stat(path)

    worker = Worker(world.sessions, [world.root], stat=stat)
    assert worker.apply(coalesce([Change(Kind.CREATED, str(f))], roots=[str(world.dir)])).new == 1


# --- the real daemon -------------------------------------------------------------------------


def _events(daemon: Daemon, name: str) -> list[dict[str, object]]:
    return [e for e in daemon.log_events() if e.get("event") == name]


@pytest.mark.slow
def test_reload_applies_what_it_can_and_names_what_needs_a_restart(
    daemon: Daemon, lib: Path
) -> None:
    os.mkfifo(lib / "pipe")  # skipped by every walk; said at debug level only
    daemon.start()
    wait_until(lambda: _events(daemon, "reconcile.finished"), 15, what="start-up reconcile")
    assert not _events(daemon, "walk.skipped")
    finished = len(_events(daemon, "reconcile.finished"))
    daemon.config.write_text(
        f'[daemon]\nstate_dir = "{daemon.state}"\n'
        '[watch]\nignore = ["*.skip"]\nquiet_ms = 30\nmax_delay_ms = 800\nqueue_size = 50000\n'
        '[log]\nlevel = "debug"\n[hashing]\nenabled = false\n'
        f'[[roots]]\nname = "lib"\npath = "{lib}"\ntags = ["lib"]\n'
    )
    daemon.send(signal.SIGHUP)
    wait_until(lambda: _events(daemon, "config.reloaded"), 10, what="config.reloaded")
    [reloaded] = _events(daemon, "config.reloaded")
    applied = set(reloaded["applied"])  # type: ignore[call-overload]
    assert {
        "watch.ignore",
        "watch.quiet_ms",
        "watch.max_delay_ms",
        "log.level",
        "hashing.enabled",
    } <= applied, reloaded
    [restart] = _events(daemon, "config.restart_needed")
    assert restart["keys"] == ["watch.queue_size"], restart
    # the reload's reconcile has run with the new rules; now the observers must use them too
    wait_until(lambda: len(_events(daemon, "reconcile.finished")) > finished, 15, what="reconcile")
    (lib / "was-ignored.tmp").write_bytes(b"now catalogued")
    (lib / "now-ignored.skip").write_bytes(b"now ignored")
    daemon.barrier(lib)
    assert daemon.is_live(lib / "was-ignored.tmp")  # the observers dropped it before the fix
    assert daemon.row(lib / "now-ignored.skip") is None
    # [log] level applied: the reload's reconcile says at debug what it skipped
    [skipped] = _events(daemon, "walk.skipped")
    assert skipped["level"] == "debug" and skipped["path"] == str(lib / "pipe"), skipped
    assert daemon.stop() == 0


class DeafNotifySocket:
    """A notify socket nobody reads, its queue already full (a wedged service manager)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        sent = 0
        try:
            while sent < 100_000:
                filler.sendto(b"STATUS=filler", str(path))
                sent += 1
        except BlockingIOError:
            pass
        finally:
            filler.close()
        assert 0 < sent < 100_000
        self.messages: list[str] = []

    def has(self, line: str) -> bool:
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_sigterm_is_acted_on_while_nobody_reads_the_notify_socket(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    (lib / "a.bin").write_bytes(b"a")
    daemon.notify = DeafNotifySocket(tmp_path / "deaf.sock")  # type: ignore[assignment]
    daemon.start(wait_ready=False, env={"WATCHDOG_USEC": "2000000"})
    wait_until(lambda: daemon.is_live(lib / "a.bin"), 20, what="the start-up reconcile")
    (lib / "b.bin").write_bytes(b"b")  # the main loop and the pipeline keep going meanwhile
    wait_until(lambda: daemon.is_live(lib / "b.bin"), 10, what="a live change")
    started = time.monotonic()
    code = daemon.stop(signal.SIGTERM, timeout=15)
    assert code == 0, daemon.log_text()[-3000:]
    assert time.monotonic() - started < 10
    assert _events(daemon, "daemon.stopped")


@pytest.mark.slow
def test_a_burst_of_signals_then_sigterm(daemon: Daemon, lib: Path) -> None:
    daemon.start()
    assert daemon.proc is not None
    for i in range(300):
        daemon.send(signal.SIGUSR1 if i % 2 else signal.SIGHUP)
    (lib / "after.bin").write_bytes(b"x")
    wait_until(lambda: daemon.is_live(lib / "after.bin"), 15, what="still applying changes")
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0


# --- stop waits and the units ------------------------------------------------------------------


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_the_stop_waits_fit_timeout_stop_sec_with_margin(unit: Path) -> None:
    from assetd.lifecycle import STOP_BUDGET

    stop_sec = int(read_unit(unit).get("Service", "TimeoutStopSec"))
    assert stop_sec >= STOP_BUDGET + 5


# --- the pieces, on their own -----------------------------------------------------------------


def test_a_signal_sets_a_flag_and_wakes_the_loop_without_a_lock() -> None:
    from assetd.lifecycle import SignalFlags, Waker

    waker, flags = Waker(), SignalFlags()
    flags.install(waker)
    try:
        assert not waker.wait(0.01)
        os.kill(os.getpid(), signal.SIGHUP)
        assert waker.wait(5.0)  # the C-level handler wrote the wake-up byte
        assert flags.take_reload() and not flags.take_reload()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert waker.wait(5.0)
        assert flags.take_reconcile() and flags.stop
    finally:
        flags.uninstall()
        waker.close()


def test_waking_never_blocks_even_when_nobody_waits() -> None:
    from assetd.lifecycle import Waker

    waker = Waker()
    try:
        for _ in range(200_000):  # far more than a pipe holds
            waker.wake()
        assert waker.wait(0.0)
        assert not waker.wait(0.0)  # drained
    finally:
        waker.close()


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[float] = []

    def extend_timeout(self, seconds: float) -> bool:
        self.sent.append(seconds)
        return True


def test_the_start_keeper_extends_while_the_start_lasts() -> None:
    from assetd.lifecycle import StartKeeper

    notifier = _Recorder()
    with StartKeeper(notifier, "watching", every=0.02, extend=30.0, limit=60.0) as keeper:
        wait_until(lambda: len(notifier.sent) >= 3, 10, what="repeated extensions")
    count = keeper.sent
    assert notifier.sent[0] == 30.0 and count == len(notifier.sent)
    assert not keeper.running  # joined: nothing more is sent
    assert len(notifier.sent) == count


def test_the_stop_budget_is_shared_and_names_what_ran_out() -> None:
    from assetd.lifecycle import StopBudget

    now = [100.0]
    budget = StopBudget(20.0, clock=lambda: now[0])
    assert budget.left(5.0) == 5.0
    now[0] += 18.0
    assert budget.left(15.0) == 2.0
    assert budget.check("pipeline", False, pending=3) is False
    now[0] += 5.0
    assert budget.left(5.0) == 0.0
    assert budget.timed_out == ["pipeline"]


def test_reload_plan_names_what_needs_a_restart(tmp_path: Path) -> None:
    from assetd.config import load_config
    from assetd.reload import effective_config, plan_reload

    old_file, new_file = tmp_path / "old.toml", tmp_path / "new.toml"
    old_file.write_text(f'[daemon]\nstate_dir = "{tmp_path}/s"\n')
    new_file.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/other"\n[database]\npool_size = 7\n'
        '[watch]\nignore = ["*.x"]\nquiet_ms = 10\nqueue_size = 5000\n[log]\nlevel = "debug"\n'
    )
    env = {"HOME": str(tmp_path)}
    old, new = load_config(str(old_file), env=env), load_config(str(new_file), env=env)
    plan = plan_reload(old, new)
    assert plan.applied == ["log.level", "watch.ignore", "watch.quiet_ms"]
    assert plan.restart_needed == ["daemon.state_dir", "database.pool_size", "watch.queue_size"]
    running = effective_config(old, new, plan)
    assert running.state_dir == old.state_dir and running.database_url == old.database_url
    assert running.watch.queue_size == old.watch.queue_size
    assert running.database.pool_size == old.database.pool_size
    assert running.watch.ignore == ("*.x",) and running.log.level == "debug"
    assert plan_reload(old, old).applied == plan_reload(old, old).restart_needed == []


def test_a_full_notify_socket_drops_the_message_at_once(tmp_path: Path) -> None:
    from assetd.notify import Notifier

    deaf = DeafNotifySocket(tmp_path / "deaf.sock")
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(deaf.path)})
        started = time.monotonic()
        assert notifier.send(WATCHDOG=1) is False  # dropped, not waited for
        assert notifier.stopping() is False
        assert time.monotonic() - started < 1.0
        notifier.close()
    finally:
        deaf.close()


def test_retime_applies_to_the_pending_batch() -> None:
    from assetd.live.debounce import Debouncer

    now = [10.0]
    debouncer = Debouncer(quiet_ms=50, max_delay_ms=1000, clock=lambda: now[0])
    debouncer.add(Change(Kind.CREATED, "/r/a"))
    now[0] += 0.03
    assert not debouncer.due()
    debouncer.retime(20, 800)  # a reload shortened the quiet window
    assert debouncer.due()
    with pytest.raises(ValueError):
        debouncer.retime(-1, 10)
