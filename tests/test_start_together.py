"""Starting together (DESIGN §7): processes started in the same instant on a fresh catalog create
the schema once, the others wait and proceed; two ``db upgrade`` at once upgrade it once. Each
process waits for a file to appear before it runs ``assetd``; the test creates it once all of
them wait (a barrier)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from assetd.catalog.engine import make_engine
from assetd.catalog.schema import HEAD, alembic_config, current_revision
from cli_world import subprocess_env, write_config
from conftest import PG_ADMIN_URL, pg_unavailable
from helpers import wait_until

LAUNCH = """
import os, sys, time
go = sys.argv[1]
open(f"{go}.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
os.execv(sys.executable, [sys.executable, "-m", "assetd", *sys.argv[2:]])
"""


def run_together(tmp_path: Path, commands: list[list[str]], timeout: float = 60) -> list[str]:
    """Start every command, each waiting for one file to appear before it runs ``assetd``;
    create it once all are waiting (a barrier); their outputs."""
    go = tmp_path / "go"
    env = subprocess_env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(go), *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        for cmd in commands
    ]
    try:
        wait_until(
            lambda: all(Path(f"{go}.{p.pid}").exists() for p in procs), 30, what="all waiting"
        )
        go.touch()
        outputs = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            outputs.append(f"exit {proc.returncode}\n" + out.decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


def _config(tmp_path: Path, name: str, url: str, host: str) -> Path:
    top = tmp_path / name
    (top / "lib").mkdir(parents=True)
    return write_config(
        top / "assetd.toml",
        roots={"lib": top / "lib"},
        state_dir=top / "state",
        url=url,
        host=host,
        extra="[api]\nlisten = []\n",
    )


@pytest.fixture
def empty_pg_url(pg_admin: Engine | None) -> Iterator[str]:
    """A new, empty PostgreSQL database (no schema), dropped afterwards."""
    if pg_admin is None:
        pg_unavailable("no PostgreSQL server")
    assert pg_admin is not None
    name = f"assetd_e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


def _count(outputs: list[str], event: str) -> int:
    return sum(o.count(f'"event": "{event}"') for o in outputs)


@pytest.mark.pg
def test_two_scans_on_a_fresh_postgresql_database_create_the_schema_once(
    tmp_path: Path, empty_pg_url: str
) -> None:
    configs = [_config(tmp_path, f"h{i}", empty_pg_url, f"host-{i}") for i in range(2)]
    outputs = run_together(tmp_path, [["scan", "--config", str(c)] for c in configs])
    assert all(o.startswith("exit 0") for o in outputs), "\n".join(outputs)
    assert _count(outputs, "catalog.created") == 1, "\n".join(outputs)
    _assert_head(empty_pg_url)


def test_two_scans_on_a_fresh_sqlite_catalog_create_the_schema_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'catalog.db'}"
    configs = [_config(tmp_path, f"h{i}", url, f"host-{i}") for i in range(2)]
    outputs = run_together(tmp_path, [["scan", "--config", str(c)] for c in configs])
    assert all(o.startswith("exit 0") for o in outputs), "\n".join(outputs)
    assert _count(outputs, "catalog.created") == 1, "\n".join(outputs)
    _assert_head(url)


@pytest.mark.pg
def test_two_db_upgrades_at_once_upgrade_once(tmp_path: Path, empty_pg_url: str) -> None:
    from alembic import command

    engine = make_engine(empty_pg_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0003")  # an older assetd's catalog
    finally:
        engine.dispose()
    configs = [_config(tmp_path, f"h{i}", empty_pg_url, f"host-{i}") for i in range(2)]
    outputs = run_together(tmp_path, [["db", "upgrade", "--config", str(c)] for c in configs])
    assert all(o.startswith("exit 0") for o in outputs), "\n".join(outputs)
    assert _count(outputs, "catalog.upgraded") == 1, "\n".join(outputs)
    assert sum("catalog schema current" in o for o in outputs) == 1
    _assert_head(empty_pg_url)


def _assert_head(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_a_catalog_file_another_process_creates_meanwhile_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes on a fresh SQLite catalog both find no file, and both create it: the one
    that loses the O_EXCL create uses the other's file (it exited 78, `File exists`, once in a
    CI run of the test above). The other process's file is made here, after the look."""
    path = tmp_path / "db" / "catalog.db"
    path.parent.mkdir()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.close(fd)
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == str(path) else real(p))
    engine = make_engine(f"sqlite:///{path}")
    monkeypatch.undo()
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_writer_on_a_fresh_catalog_is_waited_for_not_a_lock_error(tmp_path: Path) -> None:
    """Switching a fresh catalog to WAL needs it unlocked, and SQLite does not wait for that
    (its busy handler is not called there): a second process opening it while the first
    created the schema exited 75, `database is locked` (3 times in about 35 runs of the test
    above, on an idle machine). The switch is retried within the busy timeout."""
    path = tmp_path / "catalog.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process creating the schema
    holder.execute("CREATE TABLE t (x)")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
        release.join()
        holder.close()
