"""Reconcile's flushes written behind the walk (PostgreSQL: a second session in a writer thread,
:mod:`assetd.reconcile_apply`): the walk goes on while a flush is written, and the scan's result
(rows, counts, log lines, a refused row, cancelling) is what flushing in place gives. ``FLUSH``
is made small so that a small tree takes many flushes. Both engines, unless marked."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import assetd.reconcile_apply as reconcile_apply
from assetd.catalog import seed
from assetd.catalog.engine import SessionFactory, make_engine, session_factory
from assetd.catalog.models import asset_info_tags, asset_infos, assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.seed import NewFile
from assetd.log import configure_logging
from assetd.reconcile import sync_cache_states_with_filesystem
from catalog_world import World, make_world

WRITER = "assetd-reconcile-write"


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(reconcile_apply, "FLUSH", 7)
    return make_world(sessions, tmp_path / "lib")


def _count(world: World, table: object, *where: object) -> int:
    with world.sessions() as s:
        return int(s.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def test_many_flushes_catalogue_each_file_once(world: World) -> None:
    for d in range(6):
        for f in range(10):
            world.write(f"d{d}/f{f:02d}.bin", b"x" * (f + 1))
    first = world.scan()
    assert (first.new, first.missing, first.changed, first.unchanged) == (60, 0, 0, 0)
    for f in range(10):
        (world.dir / f"d1/f{f:02d}.bin").unlink()  # 10 gone
        world.write(f"d3/f{f:02d}.bin", b"y" * 50)  # 10 changed (size)
        world.write(f"d9/n{f:02d}.bin")  # 10 new, after every other directory
    again = world.scan()
    assert (again.new, again.missing, again.changed, again.unchanged) == (10, 10, 10, 40)
    assert _count(world, cs) == 70
    assert _count(world, cs, cs.c.is_missing.is_(True)) == 10
    assert _count(world, cs, cs.c.size_bytes == 50) == 10
    assert _count(world, assets) == 70
    assert _count(world, asset_infos) == 70
    assert _count(world, asset_info_tags) == 70  # the root's tag, once per file
    assert (world.state("d1/f00.bin") or {}).get("is_missing") is True
    assert (world.state("d9/n09.bin") or {}).get("is_missing") is False


def test_a_directory_of_more_files_than_a_flush_is_seeded_flush_by_flush(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first scan seeds the files as listed (no diff step each), still at most ``FLUSH`` per
    transaction, however many files one directory holds."""
    for f in range(17):
        world.write(f"d/f{f:02d}.bin")
    sizes: list[int] = []
    insert = seed.insert_new_files

    def counted(session: Session, root_id: int, files: list[NewFile]) -> int:
        sizes.append(len(files))
        return insert(session, root_id, files)

    monkeypatch.setattr(reconcile_apply, "insert_new_files", counted)
    result = world.scan()
    assert (result.new, sorted(sizes)) == (17, [3, 7, 7])
    assert _count(world, cs) == 17
    assert _count(world, asset_info_tags) == 17


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.mark.pg
def test_the_walk_goes_on_while_a_flush_is_written(
    pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first flush's re-stat (in the write's transaction) is held until the walk has
    listed the last directory: written in place, the walk could not get there (the walk's
    read-ahead lists at most a few directories ahead), and the scan would see it never
    happened."""
    monkeypatch.setattr(reconcile_apply, "FLUSH", 7)
    world = make_world(session_factory(pg_engine), tmp_path / "lib")
    for f in range(7):
        world.write(f"a/f{f}.bin")
    for d in range(1, 13):
        (world.dir / f"z{d:02d}").mkdir()  # empty: no step, so no second flush to wait for
    last = world.dir / "z12"
    listed = threading.Event()
    seen_in_time: list[bool] = []
    held = str(world.dir / "a/f0.bin")

    def scandir(path: str) -> AbstractContextManager[Iterator[os.DirEntry[str]]]:
        if path == str(last):
            listed.set()
        return os.scandir(path)

    def lstat(path: str) -> os.stat_result:
        if path == held and not seen_in_time:  # the re-stat, in the flush's transaction
            seen_in_time.append(listed.wait(20))
        return os.lstat(path)

    with world.sessions() as s:
        result = sync_cache_states_with_filesystem(s, [world.root], stat=lstat, scandir=scandir)
    assert seen_in_time == [True], "the flush was not written behind the walk"
    assert result.new == 7
    assert _count(world, cs) == 7


@pytest.mark.pg
def test_two_flushes_are_written_at_once(
    pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first flush's re-stat is held until the second flush's re-stat has begun (in its
    own transaction, on the other lane): one flush at a time, that could never happen."""
    monkeypatch.setattr(reconcile_apply, "FLUSH", 7)
    world = make_world(session_factory(pg_engine), tmp_path / "lib")
    for d in "ab":
        for f in range(7):
            world.write(f"{d}/f{f}.bin")
    first, second = str(world.dir / "a/f0.bin"), str(world.dir / "b/f0.bin")
    begun = threading.Event()
    seen_in_time: list[bool] = []

    def lstat(path: str) -> os.stat_result:
        if path == second:
            begun.set()
        elif path == first and not seen_in_time:
            seen_in_time.append(begun.wait(20))
        return os.lstat(path)

    with world.sessions() as s:
        result = sync_cache_states_with_filesystem(s, [world.root], stat=lstat)
    assert seen_in_time == [True], "the second flush did not begin while the first was held"
    assert result.new == 14
    assert _count(world, cs) == 14
    assert _count(world, asset_info_tags) == 14


@pytest.mark.pg
def test_a_flush_behind_the_walk_that_loses_its_connection_fails_the_scan(
    pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a data error (the server ended the flush's connection): raised from the scan, as
    when the flush ran in place, not lost in the writer's thread."""
    monkeypatch.setattr(reconcile_apply, "FLUSH", 7)
    world = make_world(session_factory(pg_engine), tmp_path / "lib")
    for f in range(20):
        world.write(f"a/f{f:02d}.bin")
    held = str(world.dir / "a/f00.bin")

    def lstat(path: str) -> os.stat_result:
        if path == held:  # the first flush's re-stat, in its transaction: its connection goes
            with pg_engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid()"
                    )
                )
        return os.lstat(path)

    with world.sessions() as s, pytest.raises(OperationalError):
        sync_cache_states_with_filesystem(s, [world.root], stat=lstat)


REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON asset_cache_states "
        "WHEN NEW.file_path LIKE '%/bad.bin' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.file_path LIKE '%/bad.bin' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON asset_cache_states "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_a_refused_row_in_a_flush_costs_itself_only(world: World, engine: Engine) -> None:
    """A flush a data error refuses (here a trigger, also under COPY) is retried step by step:
    the bad row is counted failed and logged once (with what the caller's lines carry, also
    from a writer thread), its flush's other rows and the later flushes are written."""
    with engine.begin() as conn:
        for sql in REFUSE[engine.dialect.name]:
            conn.execute(text(sql))
    for d in range(4):
        for f in range(6):
            world.write(f"d{d}/f{f}.bin")
    world.write("d1/bad.bin")
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    structlog.contextvars.bind_contextvars(pass_id="p1")  # what the caller's lines carry
    try:
        result = world.scan()
    finally:
        structlog.contextvars.clear_contextvars()
    assert (result.new, result.failed) == (24, 1)
    assert _count(world, cs) == 24
    assert world.state("d1/bad.bin") is None
    failed = [
        line
        for line in map(json.loads, stream.getvalue().splitlines())
        if line["event"] == "reconcile.row_failed"
    ]
    assert [(f["count"], f["paths"], f.get("pass_id")) for f in failed] == [
        (1, [str(world.dir / "d1/bad.bin")], "p1")
    ]


def test_cancelled_while_a_flush_is_written_ends_cleanly(world: World, engine: Engine) -> None:
    """Cancelled mid-walk: what was handed to the writer is written, the writer thread and
    its connection are gone when the scan returns (the autouse fixture checks the thread)."""
    for d in range(12):
        for f in range(100):
            world.write(f"d{d:02d}/f{f:03d}.bin")
    with world.sessions() as s:
        result = sync_cache_states_with_filesystem(s, [world.root], cancel=lambda: True)
    assert 0 < result.new < 1200
    assert _count(world, cs) == result.new
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name.startswith(WRITER)]


def test_a_root_gone_during_a_flush_behind_the_walk_is_unavailable(world: World) -> None:
    """The root goes away between a flush's re-stat and its write (seen by the flush's own
    check): its rows are not marked missing, the root is marked unavailable, as when the flush
    ran in place."""
    for f in range(10):
        world.write(f"d/f{f}.bin")
    world.scan()
    for f in range(7):  # one full flush of gone files, handed off on PostgreSQL
        (world.dir / f"d/f{f}.bin").unlink()
    away = world.dir.with_name("lib-away")
    last = str(world.dir / "d/f6.bin")

    def lstat(path: str) -> os.stat_result:
        if path == last:
            world.dir.rename(away)  # after the flush's last re-stat, before its write
            path = str(away / "d/f6.bin")
        return os.lstat(path)

    with world.sessions() as s:
        result = sync_cache_states_with_filesystem(s, [world.root], stat=lstat)
    assert result.unavailable == ["lib"]
    assert result.missing == 0
    assert (
        _count(world, cs, cs.c.is_missing.is_(True), cs.c.state_reason != "root-unavailable") == 0
    )
