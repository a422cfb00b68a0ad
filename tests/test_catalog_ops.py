"""The soft-delete operations of DESIGN §3 on both engines, on real files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select, text

from assetd.catalog import (
    batch_insert_seed_assets,
    bulk_update_is_missing,
    cleanup_unreferenced_assets,
    get_unreferenced_unhashed_asset_ids,
    list_cache_states,
    mark_assets_missing_outside_prefixes,
    mark_cache_states_missing_outside_prefixes,
    mark_missing_outside_prefixes_safely,
    restore_cache_states_by_paths,
    states,
)
from assetd.catalog.engine import SessionFactory, make_engine, session_factory
from assetd.catalog.models import asset_infos, assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.seed import COPY_MIN_ROWS, SeedSpec
from assetd.catalog.sqlutil import CHUNK
from assetd.catalog.states import Figures
from assetd.fsutil import stat_file
from catalog_world import World, make_world


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _stat(world: World, rel: str) -> Figures:
    st = stat_file(str(world.dir / rel))
    assert st is not None
    return Figures(st.path, st.size, st.mtime_ns, st.device, st.inode)


def test_delete_marks_missing_and_reappear_restores(world: World) -> None:
    world.write("a/one.bin", b"1111")
    world.write("a/two.bin", b"22")
    assert world.scan().new == 2
    path = str(world.dir / "a/one.bin")
    os.unlink(path)
    with world.sessions() as s, s.begin():
        assert bulk_update_is_missing(s, [path], True, roots=[world.root.id]) == 1
        # already missing: not written again
        assert bulk_update_is_missing(s, [path], True, roots=[world.root.id]) == 0
    row = world.state("a/one.bin")
    assert row is not None and row["is_missing"] and row["missing_since"] is not None
    assert row["state_reason"] == "live"
    assert row["missing_since"].tzinfo is not None
    assert world.state("a/two.bin")["is_missing"] is False  # type: ignore[index]

    world.write("a/one.bin", b"1111")
    os.utime(path, ns=(row["mtime_ns"], row["mtime_ns"]))
    with world.sessions() as s, s.begin():
        assert (
            restore_cache_states_by_paths(s, [_stat(world, "a/one.bin")], roots=[world.root.id])
            == 1
        )
    row = world.state("a/one.bin")
    assert row is not None and not row["is_missing"] and row["missing_since"] is None
    assert row["needs_verify"] is False  # same figures: nothing to verify


def test_reappear_changed_is_restored_and_needs_verify(world: World) -> None:
    world.write("m.safetensors", b"old")
    world.scan()
    path = str(world.dir / "m.safetensors")
    asset_before = world.state("m.safetensors")["asset_id"]  # type: ignore[index]
    os.unlink(path)
    with world.sessions() as s, s.begin():
        bulk_update_is_missing(s, [path], True, roots=[world.root.id])
    world.write("m.safetensors", b"new content, longer")
    with world.sessions() as s, s.begin():
        assert (
            restore_cache_states_by_paths(s, [_stat(world, "m.safetensors")], roots=[world.root.id])
            == 1
        )
    row = world.state("m.safetensors")
    assert row is not None
    assert not row["is_missing"] and row["needs_verify"] is True
    assert row["size_bytes"] == len(b"new content, longer")
    assert row["asset_id"] == asset_before  # same asset: its metadata stays


def test_restore_ignores_live_rows_and_other_roots(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    a = make_world(sessions, tmp_path / "a", name="a")
    b = make_world(sessions, tmp_path / "b", name="b")
    a.write("f"), b.write("f")
    a.scan(), b.scan()
    pa = str(a.dir / "f")
    with sessions() as s, s.begin():
        # a root this call may not touch is never written
        assert bulk_update_is_missing(s, [pa], True, roots=[b.root.id]) == 0
        assert bulk_update_is_missing(s, [pa], True, roots=[a.root.id]) == 1
        assert restore_cache_states_by_paths(s, [_stat(a, "f")], roots=[b.root.id]) == 0
        # a live row is not "restored"
        assert restore_cache_states_by_paths(s, [_stat(b, "f")], roots=[b.root.id]) == 0


def test_manual_tag_survives_delete_reappear_and_prefix_change(world: World) -> None:
    world.write("sub/model.ckpt", b"weights")
    world.scan()
    world.add_manual_tag("sub/model.ckpt", "favourite")
    assert world.tags_of("sub/model.ckpt") == {"models": "automatic", "favourite": "manual"}

    os.unlink(world.dir / "sub/model.ckpt")
    assert world.scan().missing == 1
    assert world.tags_of("sub/model.ckpt")["favourite"] == "manual"
    world.write("sub/model.ckpt", b"weights")
    assert world.scan().restored == 1
    assert world.tags_of("sub/model.ckpt")["favourite"] == "manual"

    # the root is removed from the base directories, then re-added
    with world.sessions() as s, s.begin():
        n = mark_assets_missing_outside_prefixes(s, ["/elsewhere"], roots=[world.root.id])
    assert n == 1 and world.state("sub/model.ckpt")["is_missing"]  # type: ignore[index]
    assert world.tags_of("sub/model.ckpt")["favourite"] == "manual"
    assert world.scan().restored == 1
    assert world.tags_of("sub/model.ckpt") == {"models": "automatic", "favourite": "manual"}


def test_prune_to_one_prefix_marks_the_rows_below_and_above_it(world: World) -> None:
    """The rows outside one prefix lie before its key range ("m-x", "a") and after it ("m0",
    "z"): both are marked, the rows below the prefix are not."""
    for rel in ("a.bin", "m-x.bin", "m/x.bin", "m/y/z.bin", "m0.bin", "z.bin"):
        world.write(rel)
    world.scan()
    with world.sessions() as s, s.begin():
        n = mark_cache_states_missing_outside_prefixes(
            s, [str(world.dir / "m")], roots=[world.root.id]
        )
    assert n == 4
    missing = {
        rel: (world.state(rel) or {}).get("is_missing")
        for rel in ("a.bin", "m-x.bin", "m/x.bin", "m/y/z.bin", "m0.bin", "z.bin")
    }
    assert missing == {
        "a.bin": True,
        "m-x.bin": True,
        "m/x.bin": False,
        "m/y/z.bin": False,
        "m0.bin": True,
        "z.bin": True,
    }


def test_prune_leaves_other_roots_and_hosts_alone(sessions: SessionFactory, tmp_path: Path) -> None:
    mine = make_world(sessions, tmp_path / "mine", name="mine")
    gone = make_world(sessions, tmp_path / "old", name="old")
    other_host = make_world(sessions, tmp_path / "nas", name="nas", host="host-b")
    for w in (mine, gone, other_host):
        w.write("f.bin")
        w.scan()
    count = mark_missing_outside_prefixes_safely(
        sessions, [str(mine.dir)], roots=[mine.root.id, gone.root.id]
    )
    assert count == 1
    assert gone.state("f.bin")["is_missing"] is True  # type: ignore[index]
    assert gone.state("f.bin")["state_reason"] == "prune"  # type: ignore[index]
    assert mine.state("f.bin")["is_missing"] is False  # type: ignore[index]
    assert other_host.state("f.bin")["is_missing"] is False  # type: ignore[index]


def test_safe_prune_refuses_empty_prefixes_and_reports_db_errors(
    sessions: SessionFactory, world: World
) -> None:
    world.write("f")
    world.scan()
    assert mark_missing_outside_prefixes_safely(sessions, [], roots=[world.root.id]) is None
    assert world.state("f")["is_missing"] is False  # type: ignore[index]

    def broken() -> object:
        raise_on = sessions()
        bind = raise_on.get_bind()
        assert isinstance(bind, Engine)
        bind.dispose()

        class Exploding:
            def __enter__(self) -> object:
                return self

            def __exit__(self, *a: object) -> None:
                return None

            def begin(self) -> object:
                from sqlalchemy.exc import OperationalError

                raise OperationalError("UPDATE", {}, Exception("disk I/O error"))

        return Exploding()

    assert mark_missing_outside_prefixes_safely(broken, ["/x"], roots=[world.root.id]) is None  # type: ignore[arg-type]


def test_missing_rows_hidden_unless_asked(world: World) -> None:
    world.write("keep")
    world.write("drop")
    world.scan()
    os.unlink(world.dir / "drop")
    world.scan()
    with world.sessions() as s:
        live = [r.path for r in list_cache_states(s)]
        both = [r.path for r in list_cache_states(s, include_missing=True)]
        missing = [r.path for r in list_cache_states(s, only_missing=True)]
    assert live == [str(world.dir / "keep")]
    assert both == [str(world.dir / "drop"), str(world.dir / "keep")]
    assert missing == [str(world.dir / "drop")]


def test_chunking_past_the_parameter_limit(world: World) -> None:
    n = 40_000  # above SQLite's 32,766 bound parameters per statement
    specs = [SeedSpec(world.root.id, f"{world.dir}/d{i % 50}/f{i:06d}", i, i) for i in range(n)]
    with world.sessions() as s, s.begin():
        res = batch_insert_seed_assets(s, specs, roots=[world.root.id])
    assert res.inserted == n
    with world.sessions() as s, s.begin():
        assert (
            bulk_update_is_missing(s, [sp.path for sp in specs], True, roots=[world.root.id]) == n
        )
    with world.sessions() as s, s.begin():
        res = batch_insert_seed_assets(s, specs, roots=[world.root.id])
    assert (res.inserted, res.restored, res.already_present) == (0, n, 0)
    with world.sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == n


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "select-then-update"])
def test_mark_paths_missing_returns_the_rows_it_marked(
    world: World, returning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live worker's delete: the paths with a live row come back (the others may have
    been directories), rows already missing keep their ``missing_since``; past one chunk.
    Without RETURNING (SQLite < 3.35) a SELECT, then the UPDATE: the same answer."""
    with world.sessions() as s:
        if not returning and s.get_bind().dialect.name == "postgresql":
            pytest.skip("PostgreSQL always has RETURNING")
    monkeypatch.setattr(states, "SQLITE_RETURNING", returning)
    n = CHUNK + 7
    specs = [SeedSpec(world.root.id, f"{world.dir}/d{i % 50}/f{i:06d}", i, i) for i in range(n)]
    with world.sessions() as s, s.begin():
        batch_insert_seed_assets(s, specs, roots=[world.root.id])
    early = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    with world.sessions() as s, s.begin():
        bulk_update_is_missing(s, [specs[0].path], True, roots=[world.root.id], now=early)
    asked = [sp.path for sp in specs] + [f"{world.dir}/d1", f"{world.dir}/nothing"]
    with world.sessions() as s, s.begin():
        marked = states.mark_paths_missing(s, reversed(asked), roots=[world.root.id])
        assert states.mark_paths_missing(s, asked, roots=[world.root.id + 1]) == []
    assert sorted(marked) == sorted(sp.path for sp in specs[1:])
    first = world.state(specs[0].path)
    assert first is not None and first["missing_since"] == early
    with world.sessions() as s:
        live = s.execute(select(func.count()).select_from(cs).where(cs.c.is_missing.is_(False)))
        assert live.scalar() == 0


def test_chunks_whose_every_path_had_a_live_row_are_not_read_back(world: World) -> None:
    """SQLite: a chunk whose paths all had a live row is one UPDATE, its rows counted, not
    returned; a chunk with a path that had none is rolled back to its savepoint and marked
    again with RETURNING (rows already missing keep their ``missing_since``). PostgreSQL:
    one ``UPDATE ... RETURNING`` for all. The same answer either way."""
    n = 2 * CHUNK + 5
    specs = [SeedSpec(world.root.id, f"{world.dir}/d/f{i:06d}", i, i) for i in range(n)]
    with world.sessions() as s, s.begin():
        batch_insert_seed_assets(s, specs, roots=[world.root.id])
    early = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    last = specs[-1].path  # the third chunk: a row already missing and a path with no row
    with world.sessions() as s, s.begin():
        bulk_update_is_missing(s, [last], True, roots=[world.root.id], now=early)
    statements: list[str] = []
    with world.sessions() as s, s.begin():
        engine = s.get_bind()

        def seen(_c: object, _cur: object, sql: str, *_rest: object) -> None:
            statements.append(sql)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            asked = [sp.path for sp in specs] + [f"{world.dir}/d/zz-nothing"]
            marked = states.mark_paths_missing(s, asked, roots=[world.root.id])
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        postgresql = engine.dialect.name == "postgresql"
    assert sorted(marked) == [sp.path for sp in specs[:-1]]
    row = world.state(last)
    assert row is not None and row["missing_since"] == early
    returning = [q for q in statements if "RETURNING" in q]
    if postgresql:
        assert len(returning) == 1
    else:
        assert len(returning) == 1  # the third chunk's second run only
        assert sum(q.startswith("ROLLBACK TO") for q in statements) == 1
        assert sum(q.startswith("UPDATE") for q in statements) == 4


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "select-then-update"])
def test_marking_a_few_paths_missing_does_not_visit_every_row_of_the_root(
    sqlite_url: str, tmp_path: Path, returning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live delete looks its paths up through the index on (root, is_missing, path): its
    cost follows the paths asked, not the rows of the root. ``NOT is_missing`` in the WHERE
    made SQLite's planner use that index on the root alone and visit every row of the root
    for each chunk of paths (a 1,000,000-file root: 8.4 s for a batch of 13,756 deletions).
    Counted in SQLite virtual-machine steps (SQLite only), so it does not depend on the
    machine's speed."""
    engine = make_engine(sqlite_url)
    world = make_world(session_factory(engine), tmp_path / "lib")
    monkeypatch.setattr(states, "SQLITE_RETURNING", returning)
    n = 20_000
    specs = [SeedSpec(world.root.id, f"{world.dir}/d{i % 50}/f{i:06d}", i, i) for i in range(n)]
    with world.sessions() as s, s.begin():
        batch_insert_seed_assets(s, specs, roots=[world.root.id])
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0  # go on

    few = [sp.path for sp in specs[::2_000]]  # 10 paths in a root of 20,000 rows
    with world.sessions() as s, s.begin():
        raw = s.connection().connection.driver_connection
        assert raw is not None
        raw.set_progress_handler(tick, 100)  # called every 100 virtual-machine steps
        try:
            assert len(states.mark_paths_missing(s, few, roots=[world.root.id])) == 10
        finally:
            raw.set_progress_handler(None, 0)
    engine.dispose()
    # visiting the root's 20,000 rows takes several steps per row (200,000 before the fix)
    assert counted[0] * 100 < 10_000, counted[0] * 100


def test_seed_is_on_conflict_do_nothing_and_refuses_foreign_roots(world: World) -> None:
    spec = SeedSpec(world.root.id, f"{world.dir}/x.bin", 3, 7, tags=("a", "b"))
    foreign = SeedSpec(world.root.id + 999, f"{world.dir}/y.bin", 3, 7)
    with world.sessions() as s, s.begin():
        first = batch_insert_seed_assets(s, [spec, foreign], roots=[world.root.id])
        again = batch_insert_seed_assets(s, [spec], roots=[world.root.id])
    assert (first.inserted, first.refused) == (1, 1)
    assert (again.inserted, again.already_present) == (0, 1)
    assert world.tags_of("x.bin") == {"a": "automatic", "b": "automatic"}
    with world.sessions() as s:
        info = s.execute(select(asset_infos.c.name, asset_infos.c.user_metadata)).one()
    assert info == ("x.bin", {})


def test_a_bulk_seed_of_a_path_another_writer_catalogued_meanwhile_keeps_that_row(
    world: World,
) -> None:
    """A reconcile seeds paths it just saw absent (``known_new``); another writer catalogued
    one of them since. Its row, asset and metadata stay; the others are seeded; no orphan
    asset is left (on PostgreSQL this is the COPY that collides and is replaced by
    INSERT ... ON CONFLICT DO NOTHING)."""
    n = COPY_MIN_ROWS + 10
    specs = [
        SeedSpec(world.root.id, f"{world.dir}/d/f{i:05d}", i, i, tags=("t",)) for i in range(n)
    ]
    taken = specs[n // 2]
    with world.sessions() as s, s.begin():
        assert batch_insert_seed_assets(s, [taken], roots=[world.root.id]).inserted == 1
        theirs = s.execute(select(cs.c.id, cs.c.asset_id).where(cs.c.file_path == taken.path)).one()
    with world.sessions() as s, s.begin():
        res = batch_insert_seed_assets(s, specs, roots=[world.root.id], known_new=True)
    assert (res.inserted, res.already_present) == (n - 1, 1)
    with world.sessions() as s:
        assert (
            s.execute(select(cs.c.id, cs.c.asset_id).where(cs.c.file_path == taken.path)).one()
            == theirs
        )
        assert s.execute(select(func.count()).select_from(cs)).scalar() == n
        assert s.execute(select(func.count()).select_from(assets)).scalar() == n  # no orphan
        assert s.execute(select(func.count()).select_from(asset_infos)).scalar() == n


def test_plain_sql_rows_from_other_programs(world: World) -> None:
    with world.sessions() as s, s.begin():
        s.execute(text("INSERT INTO assets (size_bytes) VALUES (5)"))
        asset_id = s.execute(select(func.max(assets.c.id))).scalar_one()
        s.execute(
            text("INSERT INTO asset_infos (asset_id, name) VALUES (:a, 'note')"), {"a": asset_id}
        )
        s.execute(
            text(
                "INSERT INTO asset_cache_states (asset_id, root_id, file_path) VALUES (:a, :r, :p)"
            ),
            {"a": asset_id, "r": world.root.id, "p": f"{world.dir}/by-hand.bin"},
        )
    row = world.state("by-hand.bin")
    assert row is not None and row["is_missing"] is False and row["state_reason"] == "seed"
    assert row["state_changed_at"].tzinfo is not None
    # the next reconcile sees the file is not there and marks it missing, deleting nothing
    assert world.scan().missing == 1
    with world.sessions() as s:
        assert s.execute(select(func.count()).select_from(asset_infos)).scalar() == 1


def test_cleanup_only_on_explicit_call(
    world: World, sessions: SessionFactory, tmp_path: Path
) -> None:
    world.write("old.bin", b"o")
    world.write("kept.bin", b"k")
    world.scan()
    world.add_manual_tag("old.bin", "precious")
    os.unlink(world.dir / "old.bin")
    world.scan()
    world.scan()
    old_asset = world.state("old.bin")["asset_id"]  # type: ignore[index]
    with sessions() as s:
        # reconcile and prune never hard-delete: the seed asset and its info stay
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 2
        assert get_unreferenced_unhashed_asset_ids(s, roots=[world.root.id]) == [old_asset]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    with sessions() as s, s.begin():
        # missing for less than 30 days at "now": nothing
        assert (
            cleanup_unreferenced_assets(s, roots=[world.root.id], older_than=dt.timedelta(days=30))
            == 0
        )
        assert (
            cleanup_unreferenced_assets(
                s, roots=[world.root.id], older_than=dt.timedelta(days=30), now=later
            )
            == 1
        )
    assert world.state("old.bin") is None
    assert world.state("kept.bin") is not None
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(asset_infos)).scalar() == 1


def test_cleanup_never_deletes_what_another_host_references(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    mine = make_world(sessions, tmp_path / "mine", name="m")
    theirs = make_world(sessions, tmp_path / "theirs", name="t", host="host-b")
    mine.write("f")
    mine.scan()
    asset_id = mine.state("f")["asset_id"]  # type: ignore[index]
    with sessions() as s, s.begin():  # the other host has a (missing) path to the same content
        s.execute(
            cs.insert().values(
                asset_id=asset_id,
                root_id=theirs.root.id,
                file_path="/nas/f",
                is_missing=True,
                missing_since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            )
        )
    os.unlink(mine.dir / "f")
    mine.scan()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with sessions() as s, s.begin():
        assert (
            cleanup_unreferenced_assets(
                s, roots=[mine.root.id], older_than=dt.timedelta(days=1), now=later
            )
            == 0
        )
    assert mine.state("f") is not None


def test_cleanup_never_counts_rows_of_an_unplugged_or_covered_root(
    world: World, sessions: SessionFactory
) -> None:
    """DESIGN §3, §6: a root that went away is not a deletion; only --include-unavailable."""
    world.write("disk.bin", b"d")
    world.scan()
    world.dir.rename(world.dir.with_name("unplugged"))
    world.scan()  # the root is unavailable (missing): its row is marked root-unavailable
    assert world.state("disk.bin")["state_reason"] == "root-unavailable"  # type: ignore[index]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    month = dt.timedelta(days=30)
    with sessions() as s, s.begin():
        assert (
            cleanup_unreferenced_assets(s, roots=[world.root.id], older_than=month, now=later) == 0
        )
        s.execute(cs.update().values(state_reason="root-covered"))
        assert (
            cleanup_unreferenced_assets(s, roots=[world.root.id], older_than=month, now=later) == 0
        )
        assert (
            cleanup_unreferenced_assets(
                s, roots=[world.root.id], older_than=month, now=later, include_unavailable=True
            )
            == 1
        )
