"""Hashing many copies of one content (empty label files of a dataset, the same licence file in
every folder) is linear in the copies: each merge into the content's asset does not read every
path the asset already has (found by the small-files benchmark: 10,000 empty files took 283 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog import content, tagsync
from assetd.catalog.content import auto_tags_for
from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec, automatic_tags
from assetd.hashing.run import hash_pending
from catalog_world import World, make_world

COPIES = 300
DIRS = ("Alpha", "Beta", "Gamma")


def test_hashing_copies_of_one_content_asks_each_directory_not_each_path_per_copy(
    sessions: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(sessions, tmp_path / "lib", tags=("data",), tags_from_dirs=True)
    for i in range(COPIES):
        world.write(f"{DIRS[i % len(DIRS)]}/f{i:03d}.txt", b"")
    world.scan()
    asked = 0

    def counting(root: RootSpec, file_path: str) -> tuple[str, ...]:
        nonlocal asked
        asked += 1
        return automatic_tags(root, file_path)

    monkeypatch.setattr(content, "automatic_tags", counting)
    result = hash_pending(world.sessions, [world.root])
    assert result.outcomes == {"hashed": 1, "merged": COPIES - 1}
    # once per directory of the asset per transaction at most; every path per merged copy
    # was COPIES**2 / 2
    assert asked <= len(DIRS) * COPIES
    with world.sessions() as s:
        (assets,) = s.execute(text("SELECT count(*) FROM assets")).one()
        tags = s.execute(
            text(
                "SELECT i.name, t.tag_name, t.origin FROM asset_infos i "
                "JOIN asset_info_tags t ON t.asset_info_id = i.id"
            )
        ).all()
    assert assets == 1
    by_info: dict[str, set[tuple[str, str]]] = {}
    for name, tag, origin in tags:
        by_info.setdefault(str(name), set()).add((str(tag), str(origin)))
    every = {(t, "automatic") for t in ("data", "alpha", "beta", "gamma")}
    assert by_info == {f"f{i:03d}.txt": every for i in range(COPIES)}


def _tag_rows(world: World) -> set[tuple[str, str, str]]:
    with world.sessions() as s:
        rows = s.execute(
            text(
                "SELECT i.name, t.tag_name, t.origin FROM asset_infos i "
                "JOIN asset_info_tags t ON t.asset_info_id = i.id"
            )
        ).all()
    return {(str(n), str(t), str(o)) for n, t, o in rows}


def _disturb(world: World) -> None:
    """As other programs might: a stale automatic tag, a missing one, a manual one."""
    with world.sessions() as s, s.begin():
        s.execute(text("INSERT INTO tags (name) VALUES ('old') ON CONFLICT DO NOTHING"))
        s.execute(
            text(
                "INSERT INTO asset_info_tags (asset_info_id, tag_name, origin) "
                "SELECT id, 'old', 'automatic' FROM asset_infos WHERE name = 'f003.txt'"
            )
        )
        s.execute(
            text(
                "DELETE FROM asset_info_tags WHERE tag_name = 'data' AND asset_info_id = "
                "(SELECT id FROM asset_infos WHERE name = 'f005.txt')"
            )
        )
        s.execute(
            text(
                "UPDATE asset_info_tags SET origin = 'manual' WHERE tag_name = 'alpha' AND "
                "asset_info_id = (SELECT id FROM asset_infos WHERE name = 'f007.txt')"
            )
        )


@pytest.mark.parametrize("crowded", [True, False])
def test_an_asset_of_many_infos_gets_the_tags_one_of_few_would(
    sessions: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crowded: bool
) -> None:
    """The database's pick of the infos to fix (more than CROWDED) ends where reading every
    tag row does: stale automatic tags go, missing ones come, a manual one stays manual."""
    if not crowded:
        monkeypatch.setattr(tagsync, "CROWDED", 10**9)
    copies = tagsync.CROWDED + 6 if crowded else 70
    world = make_world(sessions, tmp_path / "lib", tags=("data",), tags_from_dirs=True)
    for i in range(copies):
        world.write(f"{DIRS[i % len(DIRS)]}/f{i:03d}.txt", b"same")
    world.scan()
    hash_pending(world.sessions, [world.root])
    _disturb(world)
    with world.sessions() as s, s.begin():
        (asset_id,) = s.execute(text("SELECT id FROM assets")).one()
        changed = tagsync.recompute_automatic_tags(s, int(asset_id), auto_tags_for([world.root]))
    assert changed == 2  # 'old' removed, 'data' added back
    every = {(t, "automatic") for t in ("data", "alpha", "beta", "gamma")}
    want = {(f"f{i:03d}.txt", t, o) for i in range(copies) for t, o in every}
    want = (want - {("f007.txt", "alpha", "automatic")}) | {("f007.txt", "alpha", "manual")}
    assert _tag_rows(world) == want
