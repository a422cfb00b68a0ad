"""Scripted change batches through the worker into a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets
from assetd.catalog.roots import register_roots
from assetd.config import RootConfig
from assetd.hashing.run import hash_pending
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world

C, D, M, MV = Kind.CREATED, Kind.DELETED, Kind.MODIFIED, Kind.MOVED


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def run(worker: Worker, world_dir: Path, *changes: Change):  # type: ignore[no-untyped-def]
    return worker.apply(coalesce(changes, roots=[str(world_dir)]))


def ch(kind: Kind, path: Path, dest: Path | None = None, is_dir: bool = False) -> Change:
    return Change(kind, str(path), is_dir=is_dir, dest=str(dest) if dest else None)


def test_create_delete_recreate(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    f = world.write("a.bin", b"abc")
    assert run(w, world.dir, ch(C, f)).new == 1
    f.unlink()
    res = run(w, world.dir, ch(D, f))
    assert res.missing == 1 and res.missing_paths == [str(f)]
    assert world.state("a.bin")["is_missing"] is True  # type: ignore[index]
    world.write("a.bin", b"abcdef")
    res = run(w, world.dir, ch(C, f))
    assert (res.restored, res.changed, res.new) == (1, 1, 0)
    row = world.state("a.bin")
    assert row["is_missing"] is False and row["needs_verify"] is True  # type: ignore[index]


def test_event_is_a_hint_the_disk_decides(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    f = world.write("x")
    run(w, world.dir, ch(C, f))
    # a stale "deleted" event for a file that is there marks nothing missing
    assert run(w, world.dir, ch(D, f)).missing == 0
    assert world.state("x")["is_missing"] is False  # type: ignore[index]


def test_file_move_keeps_row_and_tags(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    f = world.write("in/model.ckpt", b"w")
    run(w, world.dir, ch(C, f))
    world.add_manual_tag("in/model.ckpt", "fav")
    before = world.state("in/model.ckpt")
    dest = world.dir / "out/renamed.ckpt"
    dest.parent.mkdir()
    f.rename(dest)
    res = run(w, world.dir, ch(MV, f, dest))
    assert res.moved == 1
    after = world.state("out/renamed.ckpt")
    assert after is not None and after["id"] == before["id"]  # type: ignore[index]
    assert after["state_reason"] == "moved"
    assert world.state("in/model.ckpt") is None
    assert world.tags_of("out/renamed.ckpt")["fav"] == "manual"


def test_directory_move_rewrites_every_path_at_once(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    files = [world.write(f"big/sub{i % 3}/f{i}", b"x") for i in range(30)]
    run(w, world.dir, *(ch(C, f) for f in files))
    world.add_manual_tag("big/sub1/f1", "fav")
    (world.dir / "big").rename(world.dir / "huge")
    res = run(w, world.dir, ch(MV, world.dir / "big", world.dir / "huge", is_dir=True))
    assert res.moved == 30
    assert world.state("big/sub1/f1") is None
    assert world.tags_of("huge/sub1/f1")["fav"] == "manual"
    with world.sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 30


def test_move_across_roots(sessions: SessionFactory, tmp_path: Path) -> None:
    a = make_world(sessions, tmp_path / "a", name="a")
    rc = RootConfig(name="b", path=str(tmp_path / "b"), tags=("b-tag",))
    (tmp_path / "b").mkdir()
    with sessions() as s, s.begin():
        [b_root] = register_roots(s, a.host, [rc])
    w = Worker(sessions, [a.root, b_root])
    f = a.write("dir/f", b"1")
    run(w, a.dir, ch(C, f))
    a.add_manual_tag("dir/f", "fav")
    shutil.move(str(a.dir / "dir"), str(tmp_path / "b/dir"))
    batch = coalesce([ch(MV, a.dir / "dir", tmp_path / "b/dir", is_dir=True)])
    assert w.apply(batch).moved == 1
    b = World(sessions, b_root, tmp_path / "b", a.host)
    row = b.state("dir/f")
    assert row is not None and row["root_id"] == b_root.id
    assert b.tags_of("dir/f")["fav"] == "manual"


def test_move_onto_an_existing_row(world: World) -> None:
    """`mv y x` is an edit of x (DESIGN §2): x's row stays, takes y's file with needs_verify,
    and y's asset (its untouched seed info dropped) merges into x's; nothing is left pathless."""
    w = Worker(world.sessions, [world.root])
    x, y = world.write("x", b"old x"), world.write("y", b"y")
    run(w, world.dir, ch(C, x), ch(C, y))
    old_x = world.state("x")
    y.rename(x)  # mv y x
    assert run(w, world.dir, ch(MV, y, x)).moved == 1
    now_x = world.state("x")
    assert now_x["id"] == old_x["id"] and now_x["asset_id"] == old_x["asset_id"]  # type: ignore[index]
    assert now_x["state_reason"] == "replaced" and now_x["needs_verify"] is True  # type: ignore[index]
    assert now_x["size_bytes"] == 1  # type: ignore[index]
    assert world.state("y") is None
    with world.sessions() as s:
        assert set(s.execute(select(assets.c.id)).scalars()) == {old_x["asset_id"]}  # type: ignore[index]


def test_moves_out_of_and_into_the_roots(world: World, tmp_path: Path) -> None:
    w = Worker(world.sessions, [world.root])
    f = world.write("f", b"1")
    run(w, world.dir, ch(C, f))
    outside = tmp_path / "outside"
    f.rename(outside)
    assert run(w, world.dir, ch(MV, f, outside)).missing == 1
    back = world.dir / "g"
    outside.rename(back)
    assert run(w, world.dir, ch(MV, outside, back)).new == 1
    ignored = world.dir / "g.tmp"
    back.rename(ignored)  # into an ignored name: a delete
    assert run(w, world.dir, ch(MV, back, ignored)).missing == 1


def test_new_directory_is_listed(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    for i in range(5):
        world.write(f"newdir/deep/f{i}")
    res = run(w, world.dir, ch(C, world.dir / "newdir", is_dir=True))
    assert res.new == 5


def test_deleted_directory_marks_everything_under_it(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    files = [world.write(f"d/e/f{i}") for i in range(4)]
    run(w, world.dir, *(ch(C, f) for f in files))
    shutil.rmtree(world.dir / "d")
    res = run(w, world.dir, ch(D, world.dir / "d", is_dir=True))
    assert res.missing == 4


def test_collapsed_rescan(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    for i in range(12):
        world.write(f"many/f{i}")
    batch = coalesce(
        [ch(C, world.dir / f"many/f{i}") for i in range(12)],
        dir_threshold=5,
        roots=[str(world.dir)],
    )
    assert batch.rescan
    assert w.apply(batch).new == 12


def test_ignored_and_outside_paths_are_dropped(world: World, tmp_path: Path) -> None:
    w = Worker(world.sessions, [world.root])
    t = world.write("scratch.tmp")
    o = tmp_path / "elsewhere"
    o.write_bytes(b"o")
    res = run(w, world.dir, ch(C, t), ch(C, o))
    assert res.new == 0
    assert world.state("scratch.tmp") is None


def test_non_utf8_name(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    raw = os.fsencode(world.dir) + b"/caf\xe9.bin"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    path = os.fsdecode(raw)
    assert run(w, world.dir, Change(C, path)).new == 1
    row = world.state(str(world.dir) + "/caf\\xe9.bin")
    assert row is not None and row["file_path_raw"] == raw
    os.unlink(raw)
    assert run(w, world.dir, Change(D, path)).missing == 1


def test_synthetic_sub_moves_in_a_later_batch_are_no_ops(world: World) -> None:
    """watchdog follows a directory move with one move per entry below it; when those land in
    the next batch, their rows have moved already: nothing to carry, nothing to seed."""
    w = Worker(world.sessions, [world.root])
    files = [world.write(f"A/sub/f{i}") for i in range(50)]
    run(w, world.dir, *(ch(C, f) for f in files))
    (world.dir / "A").rename(world.dir / "B")
    assert run(w, world.dir, ch(MV, world.dir / "A", world.dir / "B", is_dir=True)).moved == 50
    later = [ch(MV, world.dir / "A/sub", world.dir / "B/sub", is_dir=True)] + [
        ch(MV, world.dir / f"A/sub/f{i}", world.dir / f"B/sub/f{i}") for i in range(50)
    ]
    res = run(w, world.dir, *later)
    assert (res.moved, res.new, res.rescanned) == (0, 0, 0)
    with world.sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 50
    assert world.state("B/sub/f7") is not None and world.state("A/sub/f7") is None


def test_delete_and_create_of_the_same_inode_is_a_move(world: World) -> None:
    """A delete and a create of the same (device, inode, size, mtime) in one batch is a guessed
    move: the new path starts as its own seed, and its metadata follows once the hasher reads
    the old content there (tests/test_guessed_moves.py has the inode-reuse cases)."""
    w = Worker(world.sessions, [world.root])
    f = world.write("old/name.bin", b"data")
    run(w, world.dir, ch(C, f))
    hash_pending(world.sessions, [world.root], isolate=False)
    world.add_manual_tag("old/name.bin", "fav")
    dest = world.dir / "new/name.bin"
    dest.parent.mkdir()
    f.rename(dest)
    # as if the move came from an unwatched place: a delete and a create
    res = run(w, world.dir, ch(D, f), ch(C, dest))
    assert (res.moved, res.missing, res.new, res.candidates) == (0, 1, 1, 1)
    assert "fav" not in world.tags_of("new/name.bin")  # not before the content says so
    hash_pending(world.sessions, [world.root], isolate=False)
    assert world.tags_of("new/name.bin")["fav"] == "manual"
    assert world.state("old/name.bin") is None
    assert world.state("new/name.bin")["state_reason"] == "moved"  # type: ignore[index]


def test_file_moved_to_another_root_takes_its_automatic_tags(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    a = make_world(sessions, tmp_path / "a", name="a", tags=("a-tag",))
    b = make_world(sessions, tmp_path / "b", name="b", tags=("b-tag",))
    w = Worker(sessions, [a.root, b.root])
    f = a.write("m.bin", b"m")
    w.apply(coalesce([ch(C, f)]))
    a.add_manual_tag("m.bin", "fav")
    dest = b.dir / "m.bin"
    f.rename(dest)
    assert w.apply(coalesce([ch(MV, f, dest)])).moved == 1
    assert b.tags_of("m.bin") == {"fav": "manual", "b-tag": "automatic"}
