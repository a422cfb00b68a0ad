"""Automatic directory tags (``tags_from_dirs = true``) follow renamed and moved directories,
live and found by reconcile, at any size (content rule 5). Real directories, both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import SessionFactory
from assetd.hashing.run import hash_pending
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world

MV = Kind.MOVED


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "models", tags=(), tags_from_dirs=True)


def _tag_counts(world: World) -> dict[str, int]:
    with world.sessions() as s:
        rows = s.execute(
            text(
                "SELECT tag_name, count(*) FROM asset_info_tags WHERE origin = 'automatic' "
                "GROUP BY tag_name"
            )
        ).all()
    return {str(name): int(n) for name, n in rows}


@pytest.mark.parametrize("files", [3, 1200])
def test_live_directory_rename_moves_the_directory_tag(world: World, files: int) -> None:
    for i in range(files):
        world.write(f"group2/sub/f{i:04d}.bin", b"%d" % i)
    world.scan()
    with world.sessions() as s, s.begin():  # a person made one of them their own tag
        s.execute(
            text(
                "UPDATE asset_info_tags SET origin = 'manual' WHERE tag_name = 'group2' AND "
                "asset_info_id = (SELECT min(id) FROM asset_infos)"
            )
        )
    assert _tag_counts(world) == {"group2": files - 1, "sub": files}
    w = Worker(world.sessions, [world.root])
    (world.dir / "group2").rename(world.dir / "group2-renamed")
    res = w.apply(
        coalesce(
            [
                Change(
                    MV,
                    str(world.dir / "group2"),
                    dest=str(world.dir / "group2-renamed"),
                    is_dir=True,
                )
            ]
        )
    )
    assert res.moved == files
    assert _tag_counts(world) == {"group2-renamed": files, "sub": files}
    with world.sessions() as s:
        manual = s.execute(
            text("SELECT tag_name FROM asset_info_tags WHERE origin = 'manual'")
        ).all()
    assert [r[0] for r in manual] == ["group2"]  # a person's tag is never removed


def test_directory_moved_into_another_directory(world: World) -> None:
    world.write("a/x.bin", b"x")
    (world.dir / "b").mkdir()
    world.scan()
    w = Worker(world.sessions, [world.root])
    (world.dir / "a").rename(world.dir / "b/a")
    w.apply(coalesce([Change(MV, str(world.dir / "a"), dest=str(world.dir / "b/a"), is_dir=True)]))
    assert world.tags_of("b/a/x.bin") == {"a": "automatic", "b": "automatic"}


def test_directory_renamed_while_down_is_retagged_by_reconcile(world: World) -> None:
    for i in range(5):
        world.write(f"group2/f{i}.bin", b"content %d" % i)
    world.scan()
    hash_pending(world.sessions, [world.root], isolate=False)
    world.add_manual_tag("group2/f0.bin", "keep")
    (world.dir / "group2").rename(world.dir / "group2-renamed")
    world.scan()
    hash_pending(world.sessions, [world.root], isolate=False)
    assert _tag_counts(world) == {"group2-renamed": 5}
    assert world.tags_of("group2-renamed/f0.bin")["keep"] == "manual"


def test_stale_directory_tags_are_fixed_by_the_next_scan(world: World) -> None:
    """Rows whose directory tags are stale (a rename applied before tags followed it, or by a
    program rewriting paths) are retagged by a reconcile, `scan` included."""
    for i in range(1100):
        world.write(f"group2/f{i:04d}.bin", b"%d" % i)
    world.scan()
    (world.dir / "group2").rename(world.dir / "group2-renamed")
    old, new = str(world.dir / "group2"), str(world.dir / "group2-renamed")
    with world.sessions() as s, s.begin():  # the paths follow, the tags do not (the old bug)
        s.execute(
            text("UPDATE asset_cache_states SET file_path = replace(file_path, :o, :n)"),
            {"o": old + "/", "n": new + "/"},
        )
    assert _tag_counts(world) == {"group2": 1100}
    world.scan()
    assert _tag_counts(world) == {"group2-renamed": 1100}
