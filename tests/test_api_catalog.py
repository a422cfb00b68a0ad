"""The API's catalog queries on SQLite and PostgreSQL: filters, both page kinds, tags, renames."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.api_assets import (
    AssetFilter,
    Cursor,
    cache_states_by_root,
    count_assets,
    get_asset,
    info_ids_for_paths,
    list_assets,
)
from assetd.catalog.api_tags import (
    InfoNotFound,
    NameTaken,
    add_manual_tags,
    list_tags,
    remove_tags,
    update_info,
)
from assetd.catalog.engine import SessionFactory
from catalog_world import World, make_world


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    w = make_world(sessions, tmp_path / "lib")
    for i in range(7):
        w.write(f"d{i % 2}/file_{i}.bin", b"x" * (i + 1))
    w.write("d0/50%_off.bin", b"percent")
    w.scan()
    return w


def _ids(world: World, rel: str) -> int:
    with world.sessions() as s:
        found = info_ids_for_paths(s, [str(world.dir / rel)])
    return found[str(world.dir / rel)][0]


@pytest.mark.parametrize("sort", ["name", "created_at", "updated_at", "size"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_pages_equal_one_big_page(world: World, sort: str, order: str) -> None:
    flt = AssetFilter()
    with world.sessions() as s:
        everything, more = list_assets(s, flt, sort=sort, order=order, limit=100)
        assert not more and len(everything) == 8 == count_assets(s, flt)
        seen, cursor = [], None
        while True:
            page, more = list_assets(s, flt, sort=sort, order=order, limit=3, after=cursor)
            seen += [e.id for e in page]
            if not more:
                break
            last = page[-1]
            cursor = Cursor(sort, order, last.sort_value(sort), last.id)
    assert seen == [e.id for e in everything]
    keys = [(e.sort_value(sort), e.id) for e in everything]
    assert keys == sorted(keys, reverse=order == "desc")


def test_filters(world: World) -> None:
    with world.sessions() as s:

        def names(**kw: object) -> list[str]:
            page, _ = list_assets(s, AssetFilter(**kw), sort="name", order="asc")  # type: ignore[arg-type]
            return [e.name for e in page]

        assert names(name_contains="50%") == ["50%_off.bin"]  # % is literal
        assert names(name_contains="FILE_1") == ["file_1.bin"]
        assert names(path_prefix=str(world.dir / "d1")) == [
            "file_1.bin",
            "file_3.bin",
            "file_5.bin",
        ]
        assert names(in_root="lib", include_tags=("models",))[:1] == ["50%_off.bin"]
        assert names(in_root="elsewhere") == []
        assert names(exclude_tags=("models",)) == []
    (world.dir / "d1" / "file_1.bin").unlink()
    world.scan()
    with world.sessions() as s:
        live, _ = list_assets(s, AssetFilter(path_prefix=str(world.dir / "d1")), sort="name")
        every, _ = list_assets(
            s, AssetFilter(path_prefix=str(world.dir / "d1"), include_missing=True), sort="name"
        )
        assert len(live) == 2 and len(every) == 3
        gone = next(e for e in every if e.name == "file_1.bin")
        assert [p.is_missing for p in gone.paths] == [True]
        assert cache_states_by_root(s) == {("lib", "live"): 7, ("lib", "missing"): 1}


def test_tags_and_rename(world: World) -> None:
    info = _ids(world, "d0/file_0.bin")
    with world.sessions() as s, s.begin():
        added = add_manual_tags(s, info, ["fav", "models", "fav"])
        assert (added.changed, added.unchanged, added.total) == (
            ["fav"],
            ["models"],
            ["fav", "models"],
        )
    with world.sessions() as s, s.begin():
        removed = remove_tags(s, info, ["fav", "models", "nope"])
        assert (removed.changed, removed.unchanged, removed.protected) == (
            ["fav"],
            ["nope"],
            ["models"],
        )
        rows, total = list_tags(s, prefix="fa", limit=10, offset=0, order="name_asc")
        assert rows == [("fav", 0)] and total == 1  # the tag stays, used by no entry
        rows, _ = list_tags(s, prefix=None, limit=10, offset=0, order="count_desc")
        assert rows[0] == ("models", 8)
        update_info(s, info, name="renamed.bin", user_metadata={"k": [1, 2]})
        with pytest.raises(InfoNotFound):
            add_manual_tags(s, 10**9, ["x"])
    with world.sessions() as s:
        entry = get_asset(s, info)
        assert entry is not None and entry.name == "renamed.bin"
        assert entry.user_metadata == {"k": [1, 2]}
        assert entry.updated_at >= entry.created_at


def test_a_name_taken_by_the_same_content_is_refused(world: World) -> None:
    info = _ids(world, "d0/file_0.bin")
    with world.sessions() as s, s.begin():
        asset_id = s.execute(
            text("SELECT asset_id FROM asset_infos WHERE id = :i"),
            {"i": info},
        ).scalar_one()
        s.execute(
            text("INSERT INTO asset_infos (asset_id, name) VALUES (:a, 'other.bin')"),
            {"a": asset_id},
        )
    with world.sessions() as s, s.begin(), pytest.raises(NameTaken):
        update_info(s, info, name="other.bin", user_metadata=None)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_over_mixed_timestamp_forms(world: World, order: str) -> None:
    """Server-default timestamps (no fraction on SQLite) next to Python's (microseconds)."""
    for rel in ("d0/file_0.bin", "d1/file_3.bin", "d0/file_4.bin"):
        with world.sessions() as s, s.begin():
            update_info(s, _ids(world, rel), name=None, user_metadata={"touched": True})
    with world.sessions() as s:
        everything, _ = list_assets(s, AssetFilter(), sort="updated_at", order=order, limit=100)
        seen, cursor = [], None
        while True:
            page, more = list_assets(
                s, AssetFilter(), sort="updated_at", order=order, limit=2, after=cursor
            )
            seen += [e.id for e in page]
            if not more:
                break
            cursor = Cursor("updated_at", order, page[-1].sort_value("updated_at"), page[-1].id)
    assert seen == [e.id for e in everything] and len(seen) == 8
    touched = [e.id for e in everything if e.user_metadata.get("touched")]
    assert (everything[-3:] if order == "asc" else everything[:3]) == [
        e for e in everything if e.id in touched
    ]
