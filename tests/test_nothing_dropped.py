"""Nothing attached is dropped on the side (DESIGN §2, §4): a pairing merges the fresh seed into
the paired asset; a move onto a path that has a row (``mv y x``, an editor's atomic save) is an
edit of x that keeps what was attached to both; no asset is ever left without a path; automatic
tags are recomputed however many assets moved. Real directories, both engines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from assetd.catalog.content import auto_tags_for
from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.moves import recompute_tags_after_moves
from assetd.catalog.pairing import pair_moved_files
from assetd.hashing.run import hash_pending
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from assetd.reconcile import reconcile_subtree
from catalog_world import World, make_world
from cli_world import Cli, isolate, tree, write_config

C, D, MV = Kind.CREATED, Kind.DELETED, Kind.MOVED


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _hash(world: World) -> None:
    hash_pending(world.sessions, [world.root], isolate=False)


def _pathless(world: World) -> int:
    """Assets no path row points at: `cleanup` could never reach them by a path."""
    with world.sessions() as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(assets)
                .where(~select(cs.c.id).where(cs.c.asset_id == assets.c.id).exists())
            ).scalar_one()
        )


def _metadata(world: World, rel: str) -> list[object]:
    with world.sessions() as s:
        return [
            json.loads(r[0]) if isinstance(r[0], str) else r[0]
            for r in s.execute(
                text(
                    "SELECT i.user_metadata FROM asset_infos i JOIN asset_cache_states c "
                    "ON c.asset_id = i.asset_id WHERE c.file_path = :p ORDER BY i.id"
                ),
                {"p": str(world.dir / rel)},
            )
        ]


def _set_metadata(world: World, rel: str, value: str) -> None:
    with world.sessions() as s, s.begin():
        s.execute(
            text(
                "UPDATE asset_infos SET user_metadata = :m WHERE asset_id = "
                "(SELECT asset_id FROM asset_cache_states WHERE file_path = :p)"
            ),
            {"m": value, "p": str(world.dir / rel)},
        )


def _scan_dirs(world: World, *rels: str) -> None:
    """Reconcile these directories one by one (no pairing pass): seeds and missing rows."""
    for rel in rels:
        with world.sessions() as s:
            reconcile_subtree(s, world.root, str(world.dir / rel))


def test_pairing_merges_the_seed_asset_instead_of_deleting_it(world: World) -> None:
    old = world.write("old/model.bin", b"weights")
    world.scan()
    _hash(world)
    world.add_manual_tag("old/model.bin", "owner")
    since = dt.datetime.now(dt.UTC)
    (world.dir / "new").mkdir()
    old.rename(world.dir / "new/model.bin")  # while nothing watched
    _scan_dirs(world, "old", "new")
    world.add_manual_tag("new/model.bin", "fresh")  # another program tags the new file
    with world.sessions() as s, s.begin():
        pair_moved_files(s, roots=[world.root.id], since=since)
    _hash(world)
    tags = world.tags_of("new/model.bin")
    assert tags.get("owner") == "manual" and tags.get("fresh") == "manual", tags
    assert world.state("old/model.bin") is None
    assert _pathless(world) == 0


def test_a_hashed_seed_is_never_left_without_a_path(world: World) -> None:
    """kill -9 in a burst: the seed was hashed before the pairing ran."""
    old = world.write("a/f.bin", b"content")
    world.scan()
    since = dt.datetime.now(dt.UTC)
    (world.dir / "b").mkdir()
    old.rename(world.dir / "b/f.bin")
    _scan_dirs(world, "a", "b")
    _hash(world)  # the seed takes the hash; the old asset never had one
    with world.sessions() as s, s.begin():
        pair_moved_files(s, roots=[world.root.id], since=since)
    assert _pathless(world) == 0
    assert world.state("b/f.bin") is not None


@pytest.mark.parametrize("halves", ["one batch", "two batches"])
def test_move_onto_a_path_with_a_row_is_an_edit_of_it(world: World, halves: str) -> None:
    w = Worker(world.sessions, [world.root])
    x = world.write("x.txt", b"version 1")
    w.apply(coalesce([Change(C, str(x))]))
    _hash(world)
    world.add_manual_tag("x.txt", "x-tag")
    _set_metadata(world, "x.txt", '{"owner": "x"}')
    y = world.write(".x.txt.swp", b"version 2, longer")  # the editor's temp file
    if halves == "two batches":
        w.apply(coalesce([Change(C, str(y))]))
        world.add_manual_tag(".x.txt.swp", "y-tag")
    y.rename(x)  # the atomic save
    changes = [Change(MV, str(y), dest=str(x))]
    if halves == "one batch":
        changes.insert(0, Change(C, str(y)))
    w.apply(coalesce(changes))
    row = world.state("x.txt")
    assert row is not None and row["is_missing"] is False and row["needs_verify"] is True
    assert world.state(".x.txt.swp") is None
    assert world.tags_of("x.txt").get("x-tag") == "manual"
    if halves == "two batches":
        assert world.tags_of("x.txt").get("y-tag") == "manual"
    assert _pathless(world) == 0
    _hash(world)  # the edit is read: still one asset with everything on it
    assert world.tags_of("x.txt").get("x-tag") == "manual"
    assert {"owner": "x"} in _metadata(world, "x.txt")
    assert _pathless(world) == 0


def test_mv_y_x_with_both_tagged(world: World) -> None:
    w = Worker(world.sessions, [world.root])
    x, y = world.write("x", b"old x"), world.write("y", b"the y content")
    w.apply(coalesce([Change(C, str(x)), Change(C, str(y))]))
    _hash(world)
    world.add_manual_tag("x", "x-tag")
    world.add_manual_tag("y", "y-tag")
    y.rename(x)
    assert w.apply(coalesce([Change(MV, str(y), dest=str(x))])).moved == 1
    assert {"x-tag", "y-tag"} <= set(world.tags_of("x"))
    assert world.state("y") is None
    assert _pathless(world) == 0
    _hash(world)
    assert {"x-tag", "y-tag"} <= set(world.tags_of("x"))
    assert _pathless(world) == 0


def test_mv_y_x_found_by_reconcile(world: World) -> None:
    x, y = world.write("x", b"old x"), world.write("y", b"the y content")
    world.scan()
    _hash(world)
    world.add_manual_tag("x", "x-tag")
    world.add_manual_tag("y", "y-tag")
    y.rename(x)  # while the daemon was down
    world.scan()
    assert world.tags_of("x").get("x-tag") == "manual"
    assert _pathless(world) == 0
    _hash(world)
    assert {"x-tag", "y-tag"} <= set(world.tags_of("x"))
    assert world.state("y") is None, "y moved onto x: it is not a missing file"
    assert _pathless(world) == 0


def test_tags_are_recomputed_for_more_than_a_thousand_moved_assets(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    a = make_world(sessions, tmp_path / "a", name="a", tags=("a-tag",))
    b = make_world(sessions, tmp_path / "b", name="b", tags=("b-tag",))
    for i in range(1001):
        a.write(f"d/f{i:04d}", b"%d" % i)
    a.scan(a.root, b.root)
    with sessions() as s, s.begin():  # as a move of the directory to root b does to the rows
        ids = list(s.execute(select(cs.c.asset_id)).scalars())
        s.execute(
            update(cs).values(
                root_id=b.root.id, file_path=func.replace(cs.c.file_path, str(a.dir), str(b.dir))
            )
        )
        done = recompute_tags_after_moves(s, ids, auto_tags_for([a.root, b.root]))
    assert done == 1001
    with sessions() as s:
        wrong = s.execute(
            text("SELECT count(*) FROM asset_info_tags WHERE tag_name = 'a-tag'")
        ).scalar_one()
        right = s.execute(
            text("SELECT count(*) FROM asset_info_tags WHERE tag_name = 'b-tag'")
        ).scalar_one()
    assert (wrong, right) == (0, 1001)


def test_why_says_what_happened_to_a_replaced_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`mv y x` while the daemon was down: `why x` shows the guess, then, once hashed, that x
    was replaced and kept both files' metadata."""
    isolate(monkeypatch, tmp_path)
    cli = Cli(capsys)
    lib = tree(tmp_path / "lib", {"x": b"old x", "y": b"the y content"})
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    assert cli("scan", "--config", config).code == 0
    assert cli("hash", "--config", config).code == 0
    (lib / "y").rename(lib / "x")
    assert cli("scan", "--config", config).code == 0
    guess = cli("why", str(lib / "x"), "--config", config)
    assert f"may be {lib / 'y'} moved here" in guess.out, guess.out
    assert cli("hash", "--config", config).code == 0
    done = cli("why", str(lib / "x"), "--config", config)
    assert "another file was moved onto this path" in done.out, done.out
    assert "'y'" in done.out  # y's info came along (as rule 2's merge)
    assert "not in the catalog" in cli("why", str(lib / "y"), "--config", config).out
