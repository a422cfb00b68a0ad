"""Hashing files and recording the digests: the blake3 paths, the race with a file changing
under the hasher (ordered by a hook that parks the hasher mid-read, never by timing), the
crash-proof large-file child, the background Hasher and ``assetd hash``."""

from __future__ import annotations

import ctypes
import io
import os
import platform
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from assetd.catalog.content import HashJob, auto_tags_for, next_to_hash
from assetd.catalog.content import apply_hash as real_apply_hash
from assetd.catalog.engine import SessionFactory, sqlite_path
from assetd.catalog.models import assets
from assetd.commands.hash import HashProgress
from assetd.hashing.background import Hasher, RateLimit
from assetd.hashing.child import ChildHasher, FileChangedError, HashInterrupted
from assetd.hashing.digest import LARGE_FILE, hash_file
from assetd.hashing.priority import lower_priority
from assetd.hashing.run import hash_and_record, hash_pending, record_digests_safely
from catalog_world import World, make_world
from cli_world import Cli, isolate, write_config
from helpers import wait_until


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


class ParkMidRead:
    """A chunk hook that parks the hasher inside its read (data read, file not yet re-checked)
    until the test releases it: the race of a file changing under the hasher, in a fixed
    order. Parks on the first call only; counts every call."""

    def __init__(self, on_park: Callable[[], None] | None = None) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.on_park = on_park

    def __call__(self, _bytes_read: int) -> None:
        self.calls += 1
        if self.calls == 1:
            if self.on_park is not None:
                self.on_park()
            self.inside.set()
            assert self.release.wait(30), "the test never released the hasher"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hash_of(world: World, rel: str) -> str | None:
    row = world.state(rel)
    assert row is not None
    with world.sessions() as s:
        value: str | None = s.execute(
            select(assets.c.hash).where(assets.c.id == row["asset_id"])
        ).scalar()
        return value


def only_job(world: World) -> HashJob:
    with world.sessions() as s:
        [job] = next_to_hash(s, roots=[world.root.id], limit=10)
    return job


def rewrite(path: Path, data: bytes) -> None:
    """New content and an mtime that surely differs."""
    before = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


# --------------------------------------------------------------------------- hash_file


@pytest.mark.parametrize("size", [0, 1, 4096, 3 * 1024 * 1024, LARGE_FILE, LARGE_FILE + 7])
def test_hash_file_equals_independent_blake3(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = b3(data)
    assert hash_file(str(path)) == expected
    assert hash_file(str(path), size=size, throttle=lambda n: None) == expected
    with ChildHasher() as child:
        assert hash_file(str(path), large=child) == expected


def test_hash_file_refuses_a_small_file_of_another_size(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"12345")
    with pytest.raises(FileChangedError):
        hash_file(str(path), size=4)
    with pytest.raises(FileChangedError):
        hash_file(str(path), size=6, throttle=lambda n: None)


def _mapped(pid: int, path: Path) -> bool:
    try:
        return str(path) in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_child_hasher_survives_a_truncation_under_its_mapping(tmp_path: Path) -> None:
    """A file truncated while mmap-hashed raises SIGBUS; in the child, that is "changed", and
    the next file gets a new child. Ordered by waiting for the mapping, not by timing."""
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)  # holes: no disk, tens of seconds to hash
    other = tmp_path / "other.bin"
    other.write_bytes(b"after the crash")
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["digest"] = child(str(sparse))
        except Exception as err:
            result["error"] = err

    with ChildHasher() as child:
        assert child(str(other)) == b3(b"after the crash")  # the child is up
        pid = child.pid
        assert pid is not None
        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: _mapped(pid, sparse), what="the child to map the file")
        os.truncate(sparse, 0)
        thread.join(30)
        assert isinstance(result.get("error"), FileChangedError), result
        assert child(str(other)) == b3(b"after the crash")
        assert child.pid != pid


def test_child_hasher_close_ends_a_hash_in_progress(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)
    child = ChildHasher()
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["digest"] = child(str(sparse))
        except Exception as err:
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: child.pid is not None and _mapped(child.pid, sparse))
    child.close()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), HashInterrupted), result


# --------------------------------------------------------------------------- hash_and_record


@pytest.mark.parametrize("size", [100, LARGE_FILE + 1], ids=["small", "large"])
def test_file_modified_mid_read_is_not_recorded_then_retried(world: World, size: int) -> None:
    path = world.write("m.bin", b"a" * size)
    world.scan()
    job = only_job(world)
    hook = ParkMidRead()
    auto = auto_tags_for([world.root])
    out: dict[str, str] = {}
    with ChildHasher() as child:
        thread = threading.Thread(
            target=lambda: out.update(
                outcome=hash_and_record(world.sessions, job, auto_tags=auto, hook=hook, large=child)
            )
        )
        thread.start()
        assert hook.inside.wait(10)
        rewrite(path, b"b" * size)  # while the hasher is inside its read
        hook.release.set()
        thread.join(30)
    assert out["outcome"] == "changed"
    assert hash_of(world, "m.bin") is None  # never the stale digest
    world.scan()  # the change is recorded (needs_verify); a later pass hashes the new bytes
    assert hash_pending(world.sessions, [world.root]).outcomes == {"hashed": 1}
    assert hash_of(world, "m.bin") == b3(b"b" * size)


def test_file_vanished_mid_read_is_not_recorded(world: World) -> None:
    path = world.write("gone.bin", b"soon gone")
    world.scan()
    job = only_job(world)
    hook = ParkMidRead(on_park=path.unlink)
    hook.release.set()
    outcome = hash_and_record(world.sessions, job, auto_tags=auto_tags_for([world.root]), hook=hook)
    assert outcome == "vanished"
    assert hash_of(world, "gone.bin") is None
    assert world.state("gone.bin")["is_missing"] is False  # type: ignore[index]  # the pipeline's job


def test_no_transaction_is_open_while_a_file_is_read(world: World) -> None:
    """SQLite: another writer gets the write lock at once while the hasher is inside a read.
    PostgreSQL: no session of this database is idle in a transaction meanwhile."""
    world.write("a.bin", b"content")
    world.scan()
    db = sqlite_path(str(world.sessions.kw["bind"].url))

    def check_now() -> None:
        if db is not None:
            conn = sqlite3.connect(db, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")  # "database is locked" at once if anyone holds it
                conn.execute("UPDATE roots SET epoch = epoch")
                conn.execute("COMMIT")
            finally:
                conn.close()
            return
        with world.sessions() as s:
            open_elsewhere = s.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
        assert open_elsewhere == 0

    hook = ParkMidRead(on_park=check_now)
    hook.release.set()
    outcome = hash_and_record(
        world.sessions, only_job(world), auto_tags=auto_tags_for([world.root]), hook=hook
    )
    assert outcome == "hashed" and hash_of(world, "a.bin") == b3(b"content")


# --------------------------------------------------------------------------- Hasher


def test_hasher_hashes_a_seeded_catalog_and_stops_cleanly(world: World) -> None:
    data = {f"d{i % 3}/f{i}.bin": bytes([i]) * (i + 1) for i in range(20)}
    data["dup.bin"] = data["d0/f0.bin"]
    data["big.bin"] = os.urandom(LARGE_FILE + 3)
    for rel, content in data.items():
        world.write(rel, content)
    world.scan()
    hasher = Hasher(world.sessions, [world.root], workers=2, min_refetch=0)
    hasher.start()
    try:
        wait_until(lambda: hasher.hashed == len(data), what="every file hashed")
    finally:
        assert hasher.stop(10)
    assert not hasher.running
    assert sum(hasher.outcomes.values()) == len(data)  # each file once, despite two workers
    assert hasher.outcomes.get("merged") == 1
    for rel, content in data.items():
        assert hash_of(world, rel) == b3(content), rel


def test_hasher_waits_while_the_pipeline_is_busy(world: World) -> None:
    for i in range(5):
        world.write(f"f{i}.bin", bytes([i]) * 10)
    world.scan()
    busy = threading.Event()
    busy.set()
    # busy from the start: it does not even look for work
    hasher = Hasher(world.sessions, [world.root], busy=busy.is_set, min_refetch=0)
    hasher.start()
    try:
        wait_until(lambda: hasher.paused, what="the hasher to yield")
        assert hasher.fetches == 0 and hasher.hashed == 0
        assert all(hash_of(world, f"f{i}.bin") is None for i in range(5))
        busy.clear()
        wait_until(lambda: hasher.hashed == 5)
    finally:
        assert hasher.stop(10)


def test_hasher_pauses_between_files_when_the_pipeline_gets_busy(world: World) -> None:
    for i in range(5):
        world.write(f"f{i}.bin", bytes([i]) * 10)
    world.scan()
    busy = threading.Event()
    hook = ParkMidRead(on_park=busy.set)  # a burst of events arrives during the first file
    hook.release.set()
    hasher = Hasher(world.sessions, [world.root], busy=busy.is_set, hook=hook, min_refetch=0)
    hasher.start()
    try:
        wait_until(lambda: hasher.paused)
        assert hook.calls == 1  # the file in hand was read; no other was started
        assert hasher.hashed == 0  # and not even recorded while the pipeline is busy
        busy.clear()
        wait_until(lambda: hasher.hashed == 5)
    finally:
        assert hasher.stop(10)


def test_hasher_backs_off_a_file_that_changed_mid_read(world: World) -> None:
    path = world.write("m.bin", b"first")
    world.scan()
    clock = FakeClock()
    hook = ParkMidRead()
    hasher = Hasher(world.sessions, [world.root], hook=hook, clock=clock, min_refetch=0)
    hasher.start()
    try:
        assert hook.inside.wait(10)
        rewrite(path, b"second, longer")
        hook.release.set()
        wait_until(lambda: hasher.outcomes.get("changed") == 1)
        assert hash_of(world, "m.bin") is None
        world.scan()  # the new figures are recorded
        # woken, it looks again but leaves the file alone: it is backing off (5 s)
        looked = hasher.fetches
        hasher.wake()
        wait_until(lambda: hasher.fetches > looked)
        assert hook.calls == 1 and hasher.hashed == 0
        clock.now += 5.0
        hasher.wake()
        wait_until(lambda: hasher.hashed == 1)
        assert hook.calls == 2
        assert hash_of(world, "m.bin") == b3(b"second, longer")
    finally:
        assert hasher.stop(10)


def test_a_root_back_is_hashed_at_once_not_after_the_backoff(world: World) -> None:
    """Files that failed to read while their root was away are retried as soon as the root is
    back (``Hasher.retry_now``, called by the root keeper), not after their 5 s backoff (the
    clock here never moves, so only ``retry_now`` can end it)."""
    world.write("r.bin", b"on the disk that left")
    world.scan()
    clock = FakeClock()
    hasher = Hasher(world.sessions, [world.root], clock=clock, min_refetch=0)
    away = world.root.path + ".away"
    os.rename(world.root.path, away)  # unplugged: the read fails
    try:
        hasher.start()
        wait_until(lambda: sum(hasher.outcomes.values()) >= 1, what="a failed read")
        assert hasher.hashed == 0
        os.rename(away, world.root.path)  # plugged in again
        looked = hasher.fetches
        hasher.wake()
        wait_until(lambda: hasher.fetches > looked)
        assert hasher.hashed == 0  # backing off
        hasher.retry_now()
        wait_until(lambda: hasher.hashed == 1, what="hashed after retry_now")
        assert hash_of(world, "r.bin") == b3(b"on the disk that left")
    finally:
        assert hasher.stop(10)
        if os.path.exists(away):
            os.rename(away, world.root.path)


class FlakySessions:
    """A session factory whose first ``failures`` calls fail as an unreachable database."""

    def __init__(self, real: SessionFactory, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.kw = real.kw

    def __call__(self) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused (test)"))
        return self.real()


def test_hasher_survives_database_errors(world: World) -> None:
    for i in range(3):
        world.write(f"f{i}.bin", bytes([i]) * 10)
    world.scan()
    flaky = FlakySessions(world.sessions, failures=3)
    hasher = Hasher(
        flaky,  # type: ignore[arg-type]
        [world.root],
        db_retry=(0.01, 0.02),
        min_refetch=0,
    )
    hasher.start()
    try:
        wait_until(lambda: not hasher.db_ok, what="the error to be seen")
        wait_until(lambda: hasher.hashed == 3)
        assert hasher.db_ok and hasher.running
    finally:
        assert hasher.stop(10)


def test_rate_limit_spaces_reads() -> None:
    clock = FakeClock(0.0)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.now += seconds
        return False

    limit = RateLimit(1000, clock, wait)
    limit(500)
    limit(500)
    limit(1000)
    assert waits == [0.5, 0.5, 1.0]  # 2,000 bytes in 2 s
    clock.now += 100  # idle: no credit builds up
    limit(100)
    assert waits[-1] == pytest.approx(0.1)


def test_lower_priority_applies_to_the_calling_thread_only() -> None:
    got: dict[str, object] = {}

    def run() -> None:
        got["result"] = lower_priority()
        tid = threading.get_native_id()
        got["nice"] = os.getpriority(os.PRIO_PROCESS, tid)
        if platform.machine() == "x86_64":
            libc = ctypes.CDLL(None, use_errno=True)
            got["ioprio"] = libc.syscall(252, 1, tid)  # ioprio_get

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert got["nice"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19
    result = got["result"]
    assert isinstance(result, tuple)
    niced, io_idle = result
    assert niced
    if "ioprio" in got and io_idle:
        assert got["ioprio"] == 3 << 13


# --------------------------------------------------------------------------- assetd hash


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def test_assetd_hash_dry_run_then_hash(cli: Cli, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    (lib / "a.bin").write_bytes(b"x" * 100)
    (lib / "sub/b.bin").write_bytes(b"x" * 100)
    (lib / "c.bin").write_bytes(b"y" * 50)
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "state")
    assert cli("scan", "--config", config).code == 0
    run = cli("hash", "--dry-run", "--config", config)
    assert run.code == 0 and run.lines == ["hashing backlog: 3 file(s), 250 B (250 bytes)"]
    run = cli("hash", "--dry-run", "--json", "--config", config)
    assert run.json_lines() == [{"files": 3, "bytes": 250}]
    run = cli("hash", "--config", config)
    assert run.code == 0, run.err
    [line] = run.lines
    assert line.startswith("hashed 3 file(s), 250 B in ") and line.endswith("2 hashed, 1 merged")
    assert cli("hash", "--dry-run", "--config", config).lines == [
        "hashing backlog: 0 file(s), 0 B (0 bytes)"
    ]
    run = cli("ls", "-l", "--config", config)
    hashes = {line.split("\t")[3]: line.split("\t")[2] for line in run.lines}
    assert hashes[str(lib / "a.bin")] == hashes[str(lib / "sub/b.bin")] == b3(b"x" * 100)
    assert hashes[str(lib / "c.bin")] == b3(b"y" * 50)
    run = cli("hash", "--json", "--config", config)
    assert run.json_lines()[0]["files"] == 0


def test_assetd_hash_in_root(cli: Cli, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "f.bin").write_bytes(d.name.encode())
    config = write_config(
        tmp_path / "c.toml", roots={"one": one, "two": two}, state_dir=tmp_path / "state"
    )
    assert cli("scan", "--config", config).code == 0
    run = cli("hash", "--in-root", "one", "--json", "--config", config)
    assert run.json_lines()[0]["files"] == 1
    assert cli("hash", "--dry-run", "--config", config).lines == [
        "hashing backlog: 1 file(s), 3 B (3 bytes)"
    ]
    run = cli("hash", "--in-root", "nope", "--config", config)
    assert run.code == 2 and "no configured root named 'nope'" in run.err


def test_hash_progress_line_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = HashProgress(stream)
    progress.started -= 2.0  # two seconds in
    progress.update(5, 2 * 1024 * 1024, 10, 4 * 1024 * 1024)
    line = stream.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert line == "hashing: 5/10 files, 2.0 MiB/4.0 MiB, 1.0 MiB/s, ETA 0:00:02"
    progress.done()
    assert stream.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()  # not a TTY: nothing
    HashProgress(quiet).update(1, 1, 2, 2)
    assert quiet.getvalue() == ""


def test_one_bad_row_does_not_block_the_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        world.write(name, name.encode())
    world.scan()
    bad = world.state("b.bin")["id"]  # type: ignore[index]
    real = real_apply_hash

    def apply_hash(session: Any, cache_state_id: int, *args: Any, **kw: Any) -> str:
        if cache_state_id == bad:
            raise IntegrityError("UPDATE ...", {}, Exception("a constraint (test)"))
        return real(session, cache_state_id, *args, **kw)

    monkeypatch.setattr("assetd.hashing.run.apply_hash", apply_hash)
    with world.sessions() as s:
        jobs = next_to_hash(s, roots=[world.root.id], limit=10)
    items = [(job, b3(Path(job.path).read_bytes())) for job in jobs]
    outcomes = record_digests_safely(world.sessions, items, auto_tags=auto_tags_for([world.root]))
    assert outcomes == ["hashed", "failed", "hashed"]
    assert hash_of(world, "a.bin") == b3(b"a.bin") and hash_of(world, "c.bin") == b3(b"c.bin")
    assert hash_of(world, "b.bin") is None
