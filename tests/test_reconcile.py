"""Reconcile on real directories and both engines: what it writes, and what it never touches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets
from assetd.catalog.models import roots as roots_table
from assetd.diff import Action, CatalogRow, DiffCounts, diff_sorted
from assetd.fsutil import FileStat
from assetd.hashing.run import hash_pending
from catalog_world import World, make_world, with_root


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _f(path: str, size: int = 1, mtime: int = 1, inode: int = 1) -> FileStat:
    return FileStat(path, size, mtime, 1, inode)


def _r(
    path: str, size: int = 1, mtime: int = 1, missing: bool = False, inode: int = 1
) -> CatalogRow:
    return CatalogRow(0, path, size, mtime, missing, None, 1, inode)


def test_diff_sorted_table() -> None:
    disk = [_f("/a"), _f("/b", size=2), _f("/c"), _f("/e", inode=9)]
    cat = [_r("/b"), _r("/c", missing=True), _r("/d"), _r("/e"), _r("/f", missing=True)]
    counts = DiffCounts()
    steps = [(a, (d or r).path) for a, d, r in diff_sorted(disk, cat, counts)]  # type: ignore[union-attr]
    assert steps == [
        (Action.NEW, "/a"),
        (Action.CHANGED, "/b"),
        (Action.RESTORE, "/c"),
        (Action.MISSING, "/d"),
        (Action.RELINK, "/e"),
    ]
    assert (counts.unchanged, counts.already_missing) == (0, 1)


def test_scan_counts_each_kind(world: World) -> None:
    for name in ("a", "b", "c", "d"):
        world.write(f"dir/{name}", name.encode())
    first = world.scan()
    assert (first.new, first.missing, first.unchanged) == (4, 0, 0)
    os.unlink(world.dir / "dir/a")
    world.write("dir/b", b"bigger")
    world.write("dir/e", b"e")
    second = world.scan()
    assert (second.new, second.missing, second.changed, second.unchanged) == (1, 1, 1, 2)
    assert world.state("dir/b")["needs_verify"] is True  # type: ignore[index]
    world.write("dir/a", b"a")
    third = world.scan()
    assert third.restored == 1


def test_unchanged_rescan_writes_nothing(world: World, engine: Engine) -> None:
    for i in range(30):
        world.write(f"d{i % 3}/f{i}", b"x" * i)
    world.scan()
    writes: list[str] = []

    def spy(conn: object, cursor: Any, statement: str, *args: object) -> None:
        head = statement.lstrip().split(None, 1)
        if head and head[0].upper() in ("INSERT", "UPDATE", "DELETE") and cursor.rowcount > 0:
            writes.append(statement)

    event.listen(engine, "after_cursor_execute", spy)
    try:
        result = world.scan()
    finally:
        event.remove(engine, "after_cursor_execute", spy)
    assert result.unchanged == 30
    # no row is written but the root's own bookkeeping (last reconcile time and duration)
    assert all("UPDATE roots" in w for w in writes), writes


def test_vanished_seed_assets_are_never_deleted(world: World) -> None:
    world.write("x.bin")
    world.scan()
    os.unlink(world.dir / "x.bin")
    world.scan()
    with world.sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 1
    assert world.state("x.bin")["is_missing"] is True  # type: ignore[index]


def test_rows_under_ignored_paths_are_never_touched(world: World) -> None:
    world.write("keep/model.bin")
    world.write("scratch/big.part")
    unignored = with_root(world, ignore=())
    assert world.scan(unignored).new == 2
    os.unlink(world.dir / "scratch/big.part")
    result = world.scan(with_root(world, ignore=("scratch",)))
    assert result.missing == 0
    assert world.state("scratch/big.part")["is_missing"] is False  # type: ignore[index]


def test_live_change_during_the_walk_is_not_undone(world: World) -> None:
    """The walk saw a file gone; before the write, the file came back (a live batch restored
    it). The re-check against the disk keeps reconcile from marking it missing."""
    world.write("racy.bin", b"r")
    world.scan()
    racy = world.dir / "racy.bin"
    racy.unlink()

    def stat_after_recreate(path: str) -> os.stat_result:
        if path == str(racy) and not racy.exists():
            racy.write_bytes(b"r")  # the file reappears between the walk and the write
        return os.stat(path)

    with world.sessions() as s:
        from assetd.reconcile import sync_cache_states_with_filesystem

        result = sync_cache_states_with_filesystem(s, [world.root], stat=stat_after_recreate)
    assert result.missing == 0
    assert world.state("racy.bin")["is_missing"] is False  # type: ignore[index]


def test_root_unavailable_then_back(world: World) -> None:
    world.write("a/1")
    world.write("a/2")
    world.scan()
    world.add_manual_tag("a/1", "keep-me")
    moved = world.dir.with_name("lib-unplugged")
    world.dir.rename(moved)
    result = world.scan()
    assert result.unavailable == ["lib"]
    assert world.state("a/1")["is_missing"] is True  # type: ignore[index]
    assert world.state("a/1")["state_reason"] == "root-unavailable"  # type: ignore[index]
    with world.sessions() as s:
        state = s.execute(select(roots_table.c.state)).scalar()
    assert state == "unavailable"
    moved.rename(world.dir)
    back = world.scan()
    assert back.restored == 2 and back.unavailable == []
    assert world.tags_of("a/1")["keep-me"] == "manual"
    with world.sessions() as s:
        assert s.execute(select(roots_table.c.state)).scalar() == "watching"


def test_path_change_of_a_root_marks_old_rows_missing(world: World, tmp_path: Path) -> None:
    world.write("f")
    world.scan()
    new_dir = tmp_path / "lib2"
    shutil.copytree(world.dir, new_dir)
    result = world.scan(with_root(world, path=str(new_dir)))
    assert result.missing == 1 and result.new == 1
    assert world.state("f")["is_missing"] is True  # type: ignore[index]


def test_tags_from_dirs(world: World) -> None:
    world.write("Checkpoints/SDXL/model.safetensors")
    world.scan(with_root(world, tags_from_dirs=True))
    assert world.tags_of("Checkpoints/SDXL/model.safetensors") == {
        "models": "automatic",
        "checkpoints": "automatic",
        "sdxl": "automatic",
    }


def test_move_while_down_is_paired_by_inode(sessions: SessionFactory, tmp_path: Path) -> None:
    """A tagged file moved to another directory and another root while nothing watched: the
    next reconcile pairs the vanished path with the new one (a guess), and once the hasher finds
    the same content there, the tag follows."""
    a = make_world(sessions, tmp_path / "a", name="a")
    b = make_world(sessions, tmp_path / "b", name="b", tags=("b-tag",))
    a.write("x/model.bin", b"weights")
    a.write("stays.bin", b"s")
    a.scan(a.root, b.root)
    hash_pending(sessions, [a.root, b.root], isolate=False)
    a.add_manual_tag("x/model.bin", "precious")
    old = a.state("x/model.bin")
    (tmp_path / "b/sub").mkdir()
    (a.dir / "x/model.bin").rename(tmp_path / "b/sub/model.bin")
    result = a.scan(a.root, b.root)
    assert (result.moved, result.missing, result.new) == (0, 1, 1)
    new = b.state("sub/model.bin")
    assert new is not None and new["move_candidate_id"] == old["id"]  # type: ignore[index]
    assert "precious" not in b.tags_of("sub/model.bin")
    hash_pending(sessions, [a.root, b.root], isolate=False)
    new = b.state("sub/model.bin")
    assert new is not None and new["asset_id"] == old["asset_id"]  # type: ignore[index]
    assert new["root_id"] == b.root.id and new["state_reason"] == "moved"
    assert a.state("x/model.bin") is None
    # automatic tags follow the path: root b's tag now, root a's gone; the manual one stays
    assert b.tags_of("sub/model.bin") == {"precious": "manual", "b-tag": "automatic"}
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 2
