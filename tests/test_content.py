"""The content rules of DESIGN §4 on both engines, with real files: every hash is checked against
an independent blake3 of the file's bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import blake3
import pytest
from sqlalchemy import func, select, text, update

from assetd.catalog.content import apply_hash, auto_tags_for, hashing_backlog, next_to_hash
from assetd.catalog.engine import SessionFactory
from assetd.catalog.metadata import MERGED_FROM, merge_assets, merge_metadata
from assetd.catalog.models import asset_infos, assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.roots import RootSpec
from assetd.catalog.tagsync import recompute_automatic_tags
from assetd.hashing.digest import LARGE_FILE
from assetd.hashing.run import HashRunResult, hash_pending
from catalog_world import World, make_world


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def hash_all(world: World, *roots: RootSpec) -> HashRunResult:
    return hash_pending(world.sessions, list(roots) or [world.root])


def asset_id(world: World, rel: str) -> int:
    row = world.state(rel)
    assert row is not None, rel
    return int(row["asset_id"])


def asset_hash(world: World, aid: int) -> str | None:
    with world.sessions() as s:
        value: str | None = s.execute(select(assets.c.hash).where(assets.c.id == aid)).scalar()
        return value


def infos(world: World, aid: int) -> dict[str, dict[str, Any]]:
    """name -> {"meta": user_metadata, "tags": {tag: origin}} for the infos of an asset."""
    out: dict[str, dict[str, Any]] = {}
    with world.sessions() as s:
        rows = s.execute(
            select(asset_infos.c.id, asset_infos.c.name, asset_infos.c.user_metadata).where(
                asset_infos.c.asset_id == aid
            )
        ).all()
        for info_id, name, meta in rows:
            tag_rows = s.execute(
                text("SELECT tag_name, origin FROM asset_info_tags WHERE asset_info_id = :i"),
                {"i": info_id},
            ).all()
            out[name] = {"meta": meta, "tags": dict(tag_rows)}
    return out


def set_meta(world: World, aid: int, name: str, meta: dict[str, Any]) -> None:
    """As another program would: plain SQL."""
    with world.sessions() as s, s.begin():
        s.execute(
            text("UPDATE asset_infos SET user_metadata = :m WHERE asset_id = :a AND name = :n"),
            {"m": json.dumps(meta), "a": aid, "n": name},
        )


def tag_info(world: World, aid: int, name: str, tag: str) -> None:
    with world.sessions() as s, s.begin():
        info_id = s.execute(
            text("SELECT id FROM asset_infos WHERE asset_id = :a AND name = :n"),
            {"a": aid, "n": name},
        ).scalar_one()
        s.execute(text("INSERT INTO tags (name) VALUES (:t) ON CONFLICT DO NOTHING"), {"t": tag})
        s.execute(
            text("INSERT INTO asset_info_tags (asset_info_id, tag_name) VALUES (:i, :t)"),
            {"i": info_id, "t": tag},
        )


def edit(world: World, rel: str, data: bytes, before: int | None = None) -> None:
    """Rewrite a file in place with a new mtime, and let a scan record the change."""
    path = world.dir / rel
    before = path.stat().st_mtime_ns if before is None else before
    path.write_bytes(data)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))
    world.scan()


def count_assets(world: World) -> int:
    with world.sessions() as s:
        return int(s.execute(select(func.count()).select_from(assets)).scalar_one())


# --------------------------------------------------------------------------- hashing


def test_hash_equals_independent_blake3(world: World) -> None:
    files = {
        "empty.bin": b"",
        "small.bin": b"hello",
        "dir/mid.bin": os.urandom(3 * 1024 * 1024),
        "large.bin": os.urandom(LARGE_FILE + 12345),  # update_mmap in the child process
    }
    for rel, data in files.items():
        world.write(rel, data)
    world.scan()
    with world.sessions() as s:
        assert hashing_backlog(s, roots=[world.root.id]) == (4, sum(map(len, files.values())))
    result = hash_all(world)
    assert result.outcomes == {"hashed": 4}
    assert result.backlog_after == (0, 0)
    for rel, data in files.items():
        row = world.state(rel)
        assert row is not None and row["needs_verify"] is False
        aid = asset_id(world, rel)
        assert asset_hash(world, aid) == b3(data), rel
        with world.sessions() as s:
            size = s.execute(select(assets.c.size_bytes).where(assets.c.id == aid)).scalar()
        assert size == len(data)
    assert hash_all(world).files == 0  # nothing left to do


def test_non_utf8_name_is_hashed_through_its_raw_bytes(world: World) -> None:
    raw = os.fsencode(str(world.dir)) + b"/caf\xe9.bin"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    world.scan()
    assert hash_all(world).outcomes == {"hashed": 1}
    row = world.state(str(world.dir) + "/caf\\xe9.bin")
    assert row is not None and row["file_path_raw"] == raw
    assert asset_hash(world, int(row["asset_id"])) == b3(b"latin-1 name")


def test_apply_hash_is_stale_when_the_row_changed(world: World) -> None:
    world.write("a.bin", b"one")
    world.scan()
    row = world.state("a.bin")
    assert row is not None
    auto = auto_tags_for([world.root])
    with world.sessions() as s, s.begin():
        outcome = apply_hash(
            s,
            row["id"],
            b3(b"two"),
            3,
            row["mtime_ns"] + 1,
            auto_tags=auto,
        )
    assert outcome == "stale"
    assert asset_hash(world, asset_id(world, "a.bin")) is None


# --------------------------------------------------------------------------- dedupe


def test_identical_files_share_one_asset(world: World) -> None:
    world.write("a.bin", b"same content")
    world.write("sub/b.bin", b"same content")
    world.write("c.bin", b"other content")
    world.scan()
    assert count_assets(world) == 3
    result = hash_all(world)
    assert result.outcomes == {"hashed": 2, "merged": 1}
    a, b, c = (asset_id(world, r) for r in ("a.bin", "sub/b.bin", "c.bin"))
    assert a == b != c
    assert count_assets(world) == 2
    assert asset_hash(world, a) == b3(b"same content")
    assert set(infos(world, a)) == {"a.bin", "b.bin"}  # both infos on the survivor
    assert infos(world, a)["b.bin"]["tags"] == {"models": "automatic"}


def test_same_name_infos_merge_tags_and_metadata(world: World) -> None:
    world.write("d1/x.bin", b"dup")
    world.write("d2/x.bin", b"dup")
    world.scan()
    first, second = asset_id(world, "d1/x.bin"), asset_id(world, "d2/x.bin")
    tag_info(world, first, "x.bin", "fav")
    tag_info(world, second, "x.bin", "wip")
    # a manual tag on the merged info that is automatic on the survivor's: manual wins
    with world.sessions() as s, s.begin():
        s.execute(
            text(
                "UPDATE asset_info_tags SET origin = 'manual' WHERE tag_name = 'models' AND "
                "asset_info_id = (SELECT id FROM asset_infos WHERE asset_id = :a)"
            ),
            {"a": second},
        )
    set_meta(world, first, "x.bin", {"rating": 5, "note": "first"})
    set_meta(world, second, "x.bin", {"rating": 3, "source": "web", "note": "first"})
    hash_all(world)
    assert asset_id(world, "d1/x.bin") == asset_id(world, "d2/x.bin") == first
    merged = infos(world, first)
    assert list(merged) == ["x.bin"]
    assert merged["x.bin"]["tags"] == {"models": "manual", "fav": "manual", "wip": "manual"}
    assert merged["x.bin"]["meta"] == {
        "rating": 5,
        "note": "first",
        "source": "web",
        MERGED_FROM.format(second): {"rating": 3},
    }


def test_merge_keeps_unmergeable_metadata_as_a_renamed_info(world: World) -> None:
    world.write("d1/x.bin", b"dup")
    world.write("d2/x.bin", b"dup")
    world.scan()
    first, second = asset_id(world, "d1/x.bin"), asset_id(world, "d2/x.bin")
    with world.sessions() as s, s.begin():
        s.execute(
            text("UPDATE asset_infos SET user_metadata = :m WHERE asset_id = :a"),
            {"m": json.dumps(["a", "list"]), "a": second},
        )
        s.execute(
            text("UPDATE asset_infos SET user_metadata = :m WHERE asset_id = :a"),
            {"m": json.dumps({"k": 1}), "a": first},
        )
        merge_assets(s, first, second)
    names = infos(world, first)
    assert names["x.bin"]["meta"] == {"k": 1}
    assert names[f"x.bin (merged from asset {second})"]["meta"] == ["a", "list"]
    assert count_assets(world) == 1


@pytest.mark.parametrize(
    ("survivor", "merged", "expected"),
    [
        ({"a": 1}, None, {"a": 1}),
        (None, {"a": 1}, {"a": 1}),
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 2}),
        ({"a": 1}, {"a": 2}, {"a": 1, "merged_from_9": {"a": 2}}),
        (
            {"a": 1, "merged_from_9": "mine"},
            {"a": 2},
            {"a": 1, "merged_from_9": "mine", "merged_from_9_2": {"a": 2}},
        ),
    ],
)
def test_merge_metadata(survivor: Any, merged: Any, expected: Any) -> None:
    assert merge_metadata(survivor, merged, 9) == (expected, True)


def test_merge_metadata_refuses_what_it_cannot_merge() -> None:
    assert merge_metadata({"a": 1}, [1, 2], 9) == ({"a": 1}, False)
    assert merge_metadata("text", {"a": 1}, 9) == ("text", False)
    assert merge_metadata([1], [1], 9) == ([1], True)  # equal: nothing to keep


# --------------------------------------------------------------------------- edits


@pytest.mark.parametrize("how", ["in place", "deleted and back changed"])
def test_edited_file_alone_keeps_asset_and_metadata(world: World, how: str) -> None:
    world.write("m.safetensors", b"version 1")
    world.scan()
    hash_all(world)
    aid = asset_id(world, "m.safetensors")
    world.add_manual_tag("m.safetensors", "favourite")
    set_meta(world, aid, "m.safetensors", {"rating": 5})
    if how == "in place":
        edit(world, "m.safetensors", b"version 2, longer")
    else:
        before = (world.dir / "m.safetensors").stat().st_mtime_ns
        (world.dir / "m.safetensors").unlink()
        world.scan()
        assert world.state("m.safetensors")["is_missing"]  # type: ignore[index]
        edit(world, "m.safetensors", b"version 2, longer", before)
    row = world.state("m.safetensors")
    assert row is not None and row["needs_verify"] and not row["is_missing"]
    assert hash_all(world).outcomes == {"updated": 1}
    assert asset_id(world, "m.safetensors") == aid
    assert asset_hash(world, aid) == b3(b"version 2, longer")
    info = infos(world, aid)["m.safetensors"]
    assert info["tags"] == {"models": "automatic", "favourite": "manual"}
    assert info["meta"] == {"rating": 5}
    assert world.state("m.safetensors")["needs_verify"] is False  # type: ignore[index]


def test_unchanged_content_is_verified(world: World) -> None:
    world.write("a.bin", b"content")
    world.scan()
    hash_all(world)
    aid = asset_id(world, "a.bin")
    os.utime(world.dir / "a.bin", ns=(1, 1))  # touched, same bytes
    world.scan()
    assert world.state("a.bin")["needs_verify"]  # type: ignore[index]
    assert hash_all(world).outcomes == {"verified": 1}
    assert asset_id(world, "a.bin") == aid and asset_hash(world, aid) == b3(b"content")


def test_editing_one_of_two_duplicates_splits_it_off(world: World) -> None:
    world.write("a.bin", b"shared")
    world.write("b.bin", b"shared")
    world.scan()
    hash_all(world)
    aid = asset_id(world, "a.bin")
    assert asset_id(world, "b.bin") == aid
    tag_info(world, aid, "a.bin", "fav")
    set_meta(world, aid, "a.bin", {"rating": 4})
    before = infos(world, aid)
    edit(world, "b.bin", b"b was edited")
    assert hash_all(world).outcomes == {"split": 1}
    new = asset_id(world, "b.bin")
    assert new != aid and asset_id(world, "a.bin") == aid
    assert asset_hash(world, new) == b3(b"b was edited")
    assert asset_hash(world, aid) == b3(b"shared")
    # the duplicate left alone keeps everything, unchanged
    assert infos(world, aid) == before
    # the split-off path carries copies of the infos and manual tags
    copied = infos(world, new)
    assert set(copied) == {"a.bin", "b.bin"}
    assert copied["a.bin"]["meta"] == {"rating": 4}
    assert copied["a.bin"]["tags"] == {"models": "automatic", "fav": "manual"}
    assert copied["b.bin"]["tags"] == {"models": "automatic"}


def test_edited_into_existing_content_merges(world: World) -> None:
    world.write("a.bin", b"old a")
    world.write("c.bin", b"the content c")
    world.scan()
    hash_all(world)
    a, c = asset_id(world, "a.bin"), asset_id(world, "c.bin")
    world.add_manual_tag("a.bin", "keep")
    edit(world, "a.bin", b"the content c")
    assert hash_all(world).outcomes == {"merged": 1}
    assert asset_id(world, "a.bin") == c
    assert asset_hash(world, a) is None and count_assets(world) == 1  # a's asset merged away
    merged = infos(world, c)
    assert set(merged) == {"a.bin", "c.bin"}
    assert merged["a.bin"]["tags"] == {"models": "automatic", "keep": "manual"}


def test_edited_duplicate_into_existing_content_splits_then_merges(world: World) -> None:
    world.write("a.bin", b"pair")
    world.write("b.bin", b"pair")
    world.write("c.bin", b"third")
    world.scan()
    hash_all(world)
    pair, third = asset_id(world, "a.bin"), asset_id(world, "c.bin")
    tag_info(world, pair, "b.bin", "fav")
    edit(world, "b.bin", b"third")
    assert hash_all(world).outcomes == {"merged": 1}
    assert asset_id(world, "b.bin") == third and asset_id(world, "a.bin") == pair
    assert set(infos(world, pair)) == {"a.bin", "b.bin"}  # left alone
    assert infos(world, pair)["b.bin"]["tags"] == {"models": "automatic", "fav": "manual"}
    got = infos(world, third)
    assert set(got) == {"a.bin", "b.bin", "c.bin"}  # copies merged into the existing content
    assert got["b.bin"]["tags"] == {"models": "automatic", "fav": "manual"}
    assert count_assets(world) == 2


def test_paths_carried_to_a_new_hash_unread_are_verified(world: World) -> None:
    """An unhashed asset with two paths (as another program might leave it): hashing one path
    flags the other, which is then read on its own and split off as it differs."""
    world.write("a.bin", b"first")
    world.write("b.bin", b"second")
    world.scan()
    a, b = asset_id(world, "a.bin"), asset_id(world, "b.bin")
    with world.sessions() as s, s.begin():
        s.execute(update(cs).where(cs.c.asset_id == b).values(asset_id=a))
    assert hash_all(world).outcomes == {"hashed": 1, "split": 1}
    assert asset_hash(world, asset_id(world, "a.bin")) == b3(b"first")
    assert asset_hash(world, asset_id(world, "b.bin")) == b3(b"second")


# --------------------------------------------------------------------------- automatic tags


def test_automatic_tags_follow_live_paths_and_manual_tags_stay(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    w1 = make_world(sessions, tmp_path / "models", name="models", tags=("models",))
    w2 = make_world(
        sessions, tmp_path / "loras", name="loras", tags=("loras",), tags_from_dirs=True
    )
    w1.write("x.bin", b"one content")
    w2.write("Style/x.bin", b"one content")
    w1.scan(w1.root, w2.root)
    aid = asset_id(w1, "x.bin")
    tag_info(w1, aid, "x.bin", "mine")
    tag_info(w1, aid, "x.bin", "loras")  # manual, and also what the other root gives
    hash_all(w1, w1.root, w2.root)
    survivor = asset_id(w1, "x.bin")
    assert asset_id(w2, "Style/x.bin") == survivor
    got = infos(w1, survivor)["x.bin"]["tags"]
    assert got == {"models": "automatic", "loras": "manual", "style": "automatic", "mine": "manual"}
    # the loras path goes: its automatic tags go with it, manual ones stay
    (w2.dir / "Style/x.bin").unlink()
    w1.scan(w1.root, w2.root)
    auto = auto_tags_for([w1.root, w2.root])
    with sessions() as s, s.begin():
        recompute_automatic_tags(s, survivor, auto)
    got = infos(w1, survivor)["x.bin"]["tags"]
    assert got == {"models": "automatic", "loras": "manual", "mine": "manual"}
    # a root this host does not know: its tags are not removed
    with sessions() as s, s.begin():
        recompute_automatic_tags(s, survivor, auto_tags_for([]))
    assert infos(w1, survivor)["x.bin"]["tags"] == got


# --------------------------------------------------------------------------- queries


def test_backlog_and_next_to_hash(world: World) -> None:
    for i in range(5):
        world.write(f"f{i}.bin", bytes([i]) * (i + 1))
    world.scan()
    (world.dir / "f4.bin").unlink()
    world.scan()  # f4 missing: not in the backlog
    ids = [world.state(f"f{i}.bin")["id"] for i in range(5)]  # type: ignore[index]
    with world.sessions() as s:
        assert hashing_backlog(s, roots=[world.root.id]) == (4, 1 + 2 + 3 + 4)
        assert hashing_backlog(s, roots=[world.root.id + 1000]) == (0, 0)
        jobs = next_to_hash(s, roots=[world.root.id], limit=10)
        assert [j.id for j in jobs] == ids[:4]
        assert jobs[0].path == str(world.dir / "f0.bin") and jobs[2].size == 3
        assert [j.id for j in next_to_hash(s, roots=[world.root.id], limit=2)] == ids[:2]
        got = next_to_hash(s, roots=[world.root.id], limit=2, exclude_ids={ids[0], ids[1]})
        assert [j.id for j in got] == ids[2:4]
        got = next_to_hash(s, roots=[world.root.id], limit=10, after_id=ids[1])
        assert [j.id for j in got] == ids[2:4]
    hash_all(world)
    with world.sessions() as s:
        assert hashing_backlog(s, roots=[world.root.id]) == (0, 0)
        assert next_to_hash(s, roots=[world.root.id], limit=10) == []
