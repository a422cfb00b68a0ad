"""One daemon per host and catalog (issue 12): the lock lives where the catalog is (a lock file
beside a SQLite catalog, a session advisory lock on PostgreSQL), so a second daemon with another
state directory is refused with exit 75 naming the first's pid; a kill -9 never blocks the next
start; and the one-shot commands run while the daemon writes end 0 or 75 with one clear line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import make_engine
from cli_world import catalog_rows, subprocess_env, write_config
from daemon_harness import Daemon
from helpers import wait_until

EXTRA = "[watch]\nquiet_ms = 20\n[api]\nlisten = []\n"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        return f"sqlite:///{tmp_path / 'db' / 'catalog.db'}"
    return str(request.getfixturevalue("pg_url"))


def _daemon(tmp_path: Path, name: str, root: Path, url: str, host: str = "h1") -> Daemon:
    top = tmp_path / name
    top.mkdir()
    d = Daemon(top, {"r": root})
    write_config(d.config, roots={"r": root}, state_dir=d.state, url=url, host=host, extra=EXTRA)
    return d


def _pid_row(url: str, host: str) -> int | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT pid FROM daemons WHERE host = :h"), {"h": host}
            ).scalar()
    finally:
        engine.dispose()


def _refused(d: Daemon, first_pid: int) -> str:
    assert d.proc is not None
    code = d.proc.wait(30)
    out = d.log_text()
    assert code == 75, out[-3000:]
    assert f"pid {first_pid}" in out, out[-3000:]
    assert "Traceback" not in out
    return out


def test_a_second_daemon_on_the_same_catalog_with_another_state_dir_exits_75(
    tmp_path: Path, shared_url: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"f")
    first = _daemon(tmp_path, "one", root, shared_url)
    second = _daemon(tmp_path, "two", root, shared_url)
    try:
        first.start()
        assert first.proc is not None
        second.start(wait_ready=False)
        _refused(second, first.proc.pid)
        assert _pid_row(shared_url, "h1") == first.proc.pid
        (root / "g").write_bytes(b"g")  # the first still works
        wait_until(lambda: str(root / "g") in catalog_rows(shared_url), 15, what="g catalogued")
        assert first.stop() == 0
    finally:
        first.close()
        second.close()


def test_kill_9_never_blocks_the_next_start(tmp_path: Path, shared_url: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = _daemon(tmp_path, "one", root, shared_url)
    second = _daemon(tmp_path, "two", root, shared_url)
    try:
        first.start()
        first.stop(signal.SIGKILL)
        second.start()  # another state directory: only the catalog's lock was held
        first.start(wait_ready=False)  # the same state directory as the killed one: refused
        assert second.proc is not None
        _refused(first, second.proc.pid)
        assert second.stop() == 0
    finally:
        first.close()
        second.close()


def test_two_daemons_started_within_the_same_second(tmp_path: Path, shared_url: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ds = [_daemon(tmp_path, f"d{i}", root, shared_url) for i in range(2)]
    try:
        for d in ds:
            d.start(wait_ready=False)
        procs = [d.proc for d in ds]
        assert procs[0] is not None and procs[1] is not None
        p0, p1 = procs[0], procs[1]
        wait_until(lambda: p0.poll() is not None or p1.poll() is not None, 60, what="one exits")
        loser, winner = (ds[0], ds[1]) if p0.poll() is not None else (ds[1], ds[0])
        assert winner.proc is not None and winner.proc.poll() is None
        _refused(loser, winner.proc.pid)
        wait_until(lambda: winner.notify is not None and winner.notify.has("READY=1"), 30)
        assert _pid_row(shared_url, "h1") == winner.proc.pid
        assert winner.stop() == 0
    finally:
        for d in ds:
            d.close()


def test_another_host_id_on_postgresql_is_not_refused(tmp_path: Path, pg_url: str) -> None:
    one, two = tmp_path / "one-root", tmp_path / "two-root"
    one.mkdir()
    two.mkdir()
    first = _daemon(tmp_path, "one", one, pg_url, host="h1")
    second = _daemon(tmp_path, "two", two, pg_url, host="h2")
    try:
        first.start()
        second.start()
        assert first.stop() == 0 and second.stop() == 0
    finally:
        first.close()
        second.close()


def _cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assetd", *map(str, args)],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        timeout=120,
    )


@pytest.mark.slow
def test_one_shot_commands_while_the_daemon_writes(tmp_path: Path, shared_url: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    d = _daemon(tmp_path, "one", root, shared_url)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            p = root / f"c{i % 300}"
            if p.exists():
                p.unlink()
            else:
                p.write_bytes(os.urandom(64))
            i += 1

    t = threading.Thread(target=churn)
    try:
        d.start()
        t.start()
        cfg = d.config
        commands = [
            ("scan",),
            ("prune",),
            ("cleanup", "--older-than", "1s", "--yes"),
            ("hash",),
        ]
        for cmd in commands:
            run = _cli(tmp_path, *cmd, "--config", cfg)
            said = [x for x in run.stderr.splitlines() if not x.startswith("{")]
            assert run.returncode in (0, 75), (cmd, run.returncode, run.stderr[-2000:])
            assert "Traceback" not in run.stderr, run.stderr[-3000:]
            if run.returncode == 75:
                assert len(said) == 1 and "locked" in said[0], said
            else:
                assert "database is locked" not in run.stderr, run.stderr[-2000:]
        stop.set()
        t.join()
        sentinel = root / "sentinel"
        sentinel.write_bytes(b"s")
        wait_until(
            lambda: (
                not catalog_rows(shared_url).get(str(sentinel), {"is_missing": True})["is_missing"]
            ),
            30,
            what="the sentinel catalogued",
        )
        assert d.proc is not None and d.proc.poll() is None
        assert d.stop() == 0
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        d.close()
