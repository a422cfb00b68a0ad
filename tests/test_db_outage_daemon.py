"""The real daemon through real database faults (issue 9, B): a SQLite file locked by another
process past the busy timeout (and a lock shorter than it), the catalog made read-only and back,
the disk filling up while committing, and PostgreSQL connections cut during a burst. Each ends
with the catalog equal to the disk and no restart; the locked case measures how long after the
database answers again the catalog catches up (printed; the promise is 3 s)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from assetd.catalog.engine import BUSY_TIMEOUT_MS
from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.slow
CATCH_UP_S = 3.0


def _disk(root: Path) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def _sqlite_live(daemon: Daemon) -> set[str]:
    return {
        str(r[0])
        for r in daemon.query("SELECT file_path FROM asset_cache_states WHERE is_missing = 0")
    }


def _events(daemon: Daemon, name: str) -> list[dict[str, object]]:
    return [e for e in daemon.log_events() if e.get("event") == name]


def _status_lines(daemon: Daemon) -> list[str]:
    assert daemon.notify is not None
    return [
        line
        for m in list(daemon.notify.messages)
        for line in m.split("\n")
        if line.startswith("STATUS=")
    ]


def _catch_up(equal: Callable[[], bool], what: str) -> float:
    """Seconds from now until ``equal()`` holds (the database answered again just before)."""
    t0 = time.monotonic()
    wait_until(equal, 30, interval=0.02, what=what)
    return time.monotonic() - t0


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    for i in range(40):
        (d / f"f{i:02d}").write_bytes(b"x" * i)
    return d


@pytest.fixture
def daemon(tmp_path: Path, lib: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"lib": lib}, extra="[hashing]\nenabled = false\n")
    yield d
    d.close()


def _started(daemon: Daemon, lib: Path) -> int:
    daemon.start()
    wait_until(lambda: _sqlite_live(daemon) == _disk(lib), 20, what="start-up reconcile")
    assert daemon.proc is not None
    return daemon.proc.pid


def _no_restart(daemon: Daemon, pid: int) -> None:
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_text()[-4000:]
    assert daemon.proc.pid == pid
    assert not _events(daemon, "pipeline.crashed") and not _events(daemon, "daemon.failed")


@contextlib.contextmanager
def _exclusive_lock(db: Path) -> Iterator[None]:
    """Another process's write lock on the catalog (``BEGIN EXCLUSIVE``), released on exit."""
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_a_lock_past_the_busy_timeout_loses_nothing(daemon: Daemon, lib: Path) -> None:
    pid = _started(daemon, lib)
    pause = threading.Event()
    with _exclusive_lock(daemon.db):
        for i in range(10):
            (lib / f"f{i:02d}").unlink()
        wait_until(
            lambda: _events(daemon, "database.unavailable"),
            BUSY_TIMEOUT_MS / 1000 * 4,
            what="database.unavailable past the busy timeout",
        )
        for i in range(10, 20):  # changes arriving while degraded are kept too
            (lib / f"f{i:02d}").unlink()
        (lib / "new").write_bytes(b"n")
        wait_until(
            lambda: any("degraded" in s.lower() and "locked" in s for s in _status_lines(daemon)),
            10,
            what="STATUS= says degraded and why",
        )
        pause.wait(1.5)  # the lock is held on: a few more probes fail
    on_disk = _disk(lib)
    took = _catch_up(lambda: _sqlite_live(daemon) == on_disk, "catalog equals disk")
    print(f"\ncatch-up after a lock past the busy timeout: {took:.2f} s (promise {CATCH_UP_S} s)")
    assert took <= CATCH_UP_S
    wait_until(lambda: _events(daemon, "database.restored"), 5, what="database.restored")
    wait_until(
        lambda: "degraded" not in _status_lines(daemon)[-1].lower(), 10, what="STATUS= ok again"
    )
    assert len(_events(daemon, "database.unavailable")) == 1
    assert len(_events(daemon, "database.restored")) == 1
    _no_restart(daemon, pid)
    daemon.barrier(lib)
    assert daemon.stop() == 0


def test_a_lock_shorter_than_the_busy_timeout_is_absorbed(daemon: Daemon, lib: Path) -> None:
    pid = _started(daemon, lib)
    pause = threading.Event()
    with _exclusive_lock(daemon.db):
        for i in range(5):
            (lib / f"f{i:02d}").unlink()
        pause.wait(BUSY_TIMEOUT_MS / 1000 / 3)
    daemon.barrier(lib)
    assert _sqlite_live(daemon) == _disk(lib)
    assert not _events(daemon, "database.unavailable")
    _no_restart(daemon, pid)


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


def test_a_read_only_catalog_and_back(daemon: Daemon, lib: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    pid = _started(daemon, lib)
    files = [daemon.db, Path(f"{daemon.db}-wal")]
    try:
        _chattr("+i", *files)  # writes through the open file fail (EPERM), new opens are read-only
    except subprocess.CalledProcessError as err:
        pytest.skip(f"chattr +i refused here: {err.stderr!r}")
    try:
        for i in range(10):
            (lib / f"f{i:02d}").unlink()
        wait_until(lambda: _events(daemon, "database.unavailable"), 20, what="unavailable")
        (lib / "new").write_bytes(b"n")
        threading.Event().wait(1.5)  # stays read-only a little longer: probes fail
    finally:
        _chattr("-i", *files)
    on_disk = _disk(lib)
    took = _catch_up(lambda: _sqlite_live(daemon) == on_disk, "catalog equals disk")
    print(f"\ncatch-up after the catalog was read-only: {took:.2f} s")
    assert took <= CATCH_UP_S
    wait_until(lambda: _events(daemon, "database.restored"), 5, what="database.restored")
    assert len(_events(daemon, "database.unavailable")) == 1
    _no_restart(daemon, pid)


def test_disk_full_while_committing(tmp_path: Path, lib: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    statefs = tmp_path / "statefs"
    statefs.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(statefs)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount refused: {mounted.stderr!r}")
    daemon = Daemon(tmp_path, {"lib": lib}, extra="[hashing]\nenabled = false\n")
    daemon.state = statefs / "state"
    daemon.write_config({"lib": lib}, "[hashing]\nenabled = false\n")
    filler = statefs / "filler"
    try:
        pid = _started(daemon, lib)
        with open(filler, "wb", buffering=0) as f:
            for block in (1 << 20, 4096):  # until ENOSPC, by megabytes then by pages
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * block)
        n = 0

        def more_changes_until_full() -> bool:
            nonlocal n
            for _ in range(50):  # enough to outgrow the WAL's pages already allocated
                n += 1
                (lib / f"full{n:04d}").write_bytes(b"y" * 100)
            return bool(_events(daemon, "database.unavailable"))

        wait_until(more_changes_until_full, 30, interval=0.5, what="database full")
        for i in range(10):
            (lib / f"f{i:02d}").unlink()
        threading.Event().wait(1.5)
        filler.unlink()
        on_disk = _disk(lib)
        took = _catch_up(lambda: _sqlite_live(daemon) == on_disk, "catalog equals disk")
        print(f"\ncatch-up after the disk was full: {took:.2f} s")
        assert took <= CATCH_UP_S
        assert len(_events(daemon, "database.unavailable")) == 1
        wait_until(lambda: _events(daemon, "database.restored"), 5, what="database.restored")
        _no_restart(daemon, pid)
        assert daemon.stop() == 0
    finally:
        daemon.close()
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        subprocess.run(["umount", "-l", str(statefs)], check=False)


def test_postgresql_connections_cut_during_a_burst(tmp_path: Path, lib: Path, pg_url: str) -> None:
    daemon = Daemon(
        tmp_path, {"lib": lib}, extra=f'[database]\nurl = "{pg_url}"\n[hashing]\nenabled = false\n'
    )
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    dbname = engine.url.database

    def live() -> set[str]:
        with engine.connect() as c:
            rows = c.execute(text("SELECT file_path FROM asset_cache_states WHERE NOT is_missing"))
            return {r[0] for r in rows}

    def cut() -> int:
        with engine.connect() as c:
            return len(
                c.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": dbname},
                ).all()
            )

    try:
        daemon.start()
        wait_until(lambda: live() == _disk(lib), 20, what="start-up reconcile")
        pid = daemon.proc.pid  # type: ignore[union-attr]
        cuts = 0
        for burst in range(5):
            d = lib / f"burst{burst}"
            d.mkdir()
            for i in range(300):
                (d / f"g{i:03d}").write_bytes(b"z")
            for i in range(burst * 8, burst * 8 + 8):
                (lib / f"f{i:02d}").unlink()
            cuts += cut()
        assert cuts > 0
        (lib / "sentinel").write_bytes(b"s")
        on_disk = _disk(lib)
        wait_until(lambda: live() == on_disk, 20, what="catalog equals disk after the cuts")
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_text()[-4000:]
        assert daemon.proc.pid == pid
        assert not _events(daemon, "pipeline.crashed")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        engine.dispose()


def test_a_crashed_pipeline_leaves_a_failed_row_and_status_says_so(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    """A pipeline that does die (a test-only fault hook kills its thread outside any batch)
    exits 1, leaves its daemons row ``failed`` with the error, and `assetd status` says crash."""
    daemon.start(env={"ASSETD_TEST_CRASH_PIPELINE": "1"})
    (lib / "trigger").write_bytes(b"t")
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 1
    rows = daemon.query("SELECT status, error FROM daemons")
    assert len(rows) == 1 and rows[0][0] == "failed", rows
    assert "ASSETD_TEST_CRASH_PIPELINE" in str(rows[0][1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
    out = subprocess.run(
        [os.sys.executable, "-m", "assetd", "status", "--config", str(daemon.config)],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "CRASHED" in out.stdout and "ASSETD_TEST_CRASH_PIPELINE" in out.stdout, out.stdout
