"""The PostgreSQL host lock when the server ends its session (issue 12): a session advisory lock
goes with its session, so a daemon whose lock connection was cut (``pg_terminate_backend``)
takes the lock again; if another daemon took it meanwhile, this one stops with exit 75 naming
it, and leaves the ``daemons`` row to the new holder. ``roots move`` checks the same lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from assetd.catalog.engine import make_engine
from assetd.catalog.hostlock_pg import APP_PREFIX, lock_key
from cli_world import catalog_rows, subprocess_env, write_config
from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.pg

EXTRA = "[watch]\nquiet_ms = 20\n[api]\nlisten = []\n"
HOLDERS = (
    "SELECT l.pid, a.application_name, l.granted FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
    "AND l.objsubid = 1 AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)"
)


def _daemon(tmp_path: Path, name: str, root: Path, url: str) -> Daemon:
    top = tmp_path / name
    top.mkdir()
    d = Daemon(top, {"r": root})
    write_config(d.config, roots={"r": root}, state_dir=d.state, url=url, host="h1", extra=EXTRA)
    return d


def _lockers(conn: Connection, host: str = "h1") -> list[tuple[int, str, bool]]:
    key = lock_key(host) & 0xFFFFFFFFFFFFFFFF
    rows = conn.execute(text(HOLDERS), {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).all()
    conn.rollback()  # pg_stat_activity is a snapshot per transaction: the next look is fresh
    return [(int(r[0]), str(r[1]), bool(r[2])) for r in rows]


def _holder(conn: Connection) -> tuple[int, str] | None:
    held = [(pid, app) for pid, app, granted in _lockers(conn) if granted]
    return held[0] if held else None


def test_a_lock_whose_session_the_server_ended_is_taken_again(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = _daemon(tmp_path, "one", root, pg_url)
    second = _daemon(tmp_path, "two", root, pg_url)
    engine = make_engine(pg_url)
    try:
        first.start()
        assert first.proc is not None
        with engine.connect() as conn:
            backend, app = wait_until(lambda: _holder(conn), 10, what="the lock's session")
            assert app == f"{APP_PREFIX}{first.proc.pid}"
            conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": backend})
            conn.commit()

            def retaken() -> tuple[int, str] | None:
                held = _holder(conn)
                return held if held is not None and held[0] != backend else None

            again = wait_until(retaken, 15, what="re-taken")
            assert again[1] == f"{APP_PREFIX}{first.proc.pid}"
        wait_until(lambda: "hostlock.retaken" in first.log_text(), 5, what="logged")
        second.start(wait_ready=False)  # refused again: the lock was re-taken
        assert second.proc is not None and second.proc.wait(30) == 75
        assert f"pid {first.proc.pid}" in second.log_text()
        (root / "g").write_bytes(b"g")  # the first goes on
        wait_until(lambda: str(root / "g") in catalog_rows(pg_url), 15, what="g catalogued")
        assert first.stop() == 0
    finally:
        engine.dispose()
        first.close()
        second.close()


def test_a_lock_another_daemon_took_meanwhile_stops_this_one_with_75(
    tmp_path: Path, pg_url: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = _daemon(tmp_path, "one", root, pg_url)
    engine = make_engine(pg_url)
    other = engine.connect()  # stands for a second daemon waiting on the lock
    try:
        first.start()
        assert first.proc is not None
        other.execute(text("SELECT set_config('application_name', 'assetd pid 4242', false)"))
        other.commit()
        other_pid = other.execute(text("SELECT pg_backend_pid()")).scalar()
        waiter = threading.Thread(
            target=lambda: other.execute(
                text("SELECT pg_advisory_lock(:k)"), {"k": lock_key("h1")}
            ).scalar()
        )
        waiter.start()
        with engine.connect() as conn:
            wait_until(
                lambda: any(p == other_pid and not g for p, _a, g in _lockers(conn)),
                10,
                what="queued",
            )
            backend, _app = wait_until(lambda: _holder(conn), 10, what="the daemon's session")
            conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": backend})
            conn.commit()
        waiter.join(10)  # the waiter was granted the lock as the cut session released it
        assert first.proc.wait(30) == 75
        log = first.log_text()
        assert "hostlock.lost" in log and "pid 4242" in log and "Traceback" not in log
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM daemons WHERE host = 'h1'")).scalar()
        assert status != "stopped"  # the row is the new holder's to write
    finally:
        other.close()
        engine.dispose()
        first.close()


def test_roots_move_refuses_while_a_daemon_of_another_state_dir_holds_the_lock(
    tmp_path: Path, pg_url: str
) -> None:
    """``roots move`` took only the state directory's lock: on PostgreSQL it went ahead while
    the host's daemon, with another state directory, ran on the same catalog."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    first = _daemon(tmp_path, "one", root, pg_url)
    (tmp_path / "two").mkdir()
    config = tmp_path / "two" / "assetd.toml"
    write_config(
        config, roots={"r": root}, state_dir=tmp_path / "two" / "state", url=pg_url, host="h1"
    )
    new = tmp_path / "disk2"
    shutil.copytree(root, new)  # copy2: the same sizes and mtimes

    def move() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "assetd",
                "roots",
                "move",
                "r",
                str(new),
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=subprocess_env(tmp_path),
            timeout=120,
        )

    try:
        first.start()
        assert first.proc is not None
        wait_until(lambda: str(root / "a.bin") in catalog_rows(pg_url), 15, what="catalogued")
        refused = move()
        assert refused.returncode == 75, refused.stderr
        assert f"pid {first.proc.pid}" in refused.stderr and "--force" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert str(new / "a.bin") not in catalog_rows(pg_url)
        assert first.stop() == 0
        done = move()
        assert done.returncode == 0, done.stderr
        assert str(new / "a.bin") in catalog_rows(pg_url)
    finally:
        first.close()
