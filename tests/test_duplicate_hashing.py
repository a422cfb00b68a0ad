"""Hashing many copies of one content (empty label files of a dataset, the same licence file in
every folder) is linear in the copies: each merge into the content's asset does not read every
path the asset already has (found by the small-files benchmark: 10,000 empty files took 283 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog import content
from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec, automatic_tags
from assetd.hashing.run import hash_pending
from catalog_world import make_world

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
