"""The move history (issue 14): every move the catalog applies leaves a row in ``asset_moves`` in
its own transaction, so ``why OLD`` on a file renamed away says where it went, following later
moves (a directory renamed above it) to where it is now; the history stays bounded. Catalog
parts on both engines; ``why`` itself on a real catalog file."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from assetd.catalog import movelog, report
from assetd.catalog.engine import SessionFactory, make_engine, session_factory
from assetd.catalog.models import asset_moves
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.hashing.run import hash_pending
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world
from cli_world import Cli, isolate, sqlite_url, write_config


def _apply(world: World, *changes: Change) -> None:
    Worker(world.sessions, [world.root]).apply(coalesce(list(changes), roots=[str(world.dir)]))


def _mv(world: World, src: str, dest: str, *, is_dir: bool = False) -> Change:
    a, b = world.dir / src, world.dir / dest
    b.parent.mkdir(parents=True, exist_ok=True)
    os.rename(a, b)
    return Change(Kind.MOVED, str(a), is_dir=is_dir, dest=str(b))


def _trace(world: World, rel: str) -> list[tuple[str, str, str]]:
    with world.sessions() as s:
        hops = report.trace_moves(s, str(world.dir / rel))
    base = len(str(world.dir)) + 1
    return [(h.from_path[base:], h.to_path[base:], h.how) for h in hops]


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib", tags=())


def test_a_rename_then_its_directory_renamed_are_traced_to_the_file(world: World) -> None:
    world.write("a/x.bin", b"x" * 10)
    world.write("a/other.bin", b"o")
    world.scan()
    _apply(world, _mv(world, "a/x.bin", "b/y.bin"))
    _apply(world, _mv(world, "b", "c", is_dir=True))
    assert _trace(world, "a/x.bin") == [
        ("a/x.bin", "b/y.bin", "rename"),
        ("b/y.bin", "c/y.bin", "directory"),
    ]
    assert _trace(world, "a/other.bin") == []  # never moved
    with world.sessions() as s:  # one row per file move, one per directory move
        assert s.execute(select(func.count()).select_from(asset_moves)).scalar_one() == 2


def test_the_last_move_out_of_a_path_is_the_one_followed(world: World) -> None:
    world.write("p.bin", b"1")
    world.scan()
    _apply(world, _mv(world, "p.bin", "first.bin"))
    world.write("p.bin", b"22")  # another file at the same path, later moved away too
    _apply(world, Change(Kind.CREATED, str(world.dir / "p.bin")))
    _apply(world, _mv(world, "p.bin", "second.bin"))
    assert _trace(world, "p.bin") == [("p.bin", "second.bin", "rename")]
    assert _trace(world, "first.bin") == []


def test_a_pairing_by_birth_time_and_one_confirmed_by_the_hash_are_recorded(
    world: World,
) -> None:
    world.write("r/one.bin", b"1" * 50)
    world.write("r/two.bin", b"2" * 60)
    world.scan()
    hash_pending(world.sessions, [world.root], isolate=False)  # two.bin's content is known
    with world.sessions() as s, s.begin():  # one.bin as if never hashed
        s.execute(
            text(
                "UPDATE assets SET hash = NULL WHERE id = (SELECT asset_id FROM "
                "asset_cache_states WHERE file_path = :p)"
            ),
            {"p": str(world.dir / "r/one.bin")},
        )
    (world.dir / "n").mkdir()
    os.rename(world.dir / "r/one.bin", world.dir / "n/one.bin")
    os.rename(world.dir / "r/two.bin", world.dir / "n/two.bin")
    world.scan()  # the daemon was stopped: found by the walk
    hash_pending(world.sessions, [world.root], isolate=False)
    found = {t[0]: t for t in _trace(world, "r/one.bin") + _trace(world, "r/two.bin")}
    if found.get("r/one.bin") is None:
        pytest.skip(f"{world.dir} keeps no birth time")
    assert found["r/one.bin"] == ("r/one.bin", "n/one.bin", "birth-time")
    assert found["r/two.bin"] == ("r/two.bin", "n/two.bin", "hash")


def test_the_history_follows_an_asset_merged_into_another(world: World) -> None:
    world.write("x.bin", b"same" * 10)
    world.write("y.bin", b"same" * 10)
    world.scan()
    _apply(world, _mv(world, "y.bin", "w.bin"))
    hash_pending(world.sessions, [world.root], isolate=False)  # y's asset merges into x's
    with world.sessions() as s:
        assert s.execute(text("SELECT count(*) FROM assets")).scalar_one() == 1
    assert _trace(world, "y.bin") == [("y.bin", "w.bin", "rename")]


def test_the_history_is_pruned_by_age_and_per_asset(world: World) -> None:
    world.write("f0.bin", b"f")
    world.scan()
    for i in range(movelog.KEEP_PER_ASSET + 5):
        _apply(world, _mv(world, f"f{i}.bin", f"f{i + 1}.bin"))
    with world.sessions() as s, s.begin():
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=movelog.KEEP_DAYS + 1)
        movelog.record_directory_move(s, world.root.id, "/gone", "/there", now=old)
    world.scan()  # the periodic pass prunes
    with world.sessions() as s:
        left = s.execute(select(asset_moves.c.to_path).order_by(asset_moves.c.id)).scalars()
        kept = [p.rpartition("/")[2] for p in left]
    n = movelog.KEEP_PER_ASSET + 5
    assert kept == [f"f{i}.bin" for i in range(n - movelog.KEEP_PER_ASSET + 1, n + 1)]


# --------------------------------------------------------------------------- why


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def test_why_on_a_file_renamed_away_names_where_it_is_now(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    engine = make_engine(sqlite_url(state))
    try:
        ensure_schema(engine, Upgrade.ALWAYS)
        world = make_world(session_factory(engine), tmp_path / "lib", tags=())
        world.write("a/photo.jpg", b"j" * 9)
        world.scan()
        _apply(world, _mv(world, "a/photo.jpg", "b/renamed.jpg"))
        _apply(world, _mv(world, "b", "c", is_dir=True))
    finally:
        engine.dispose()
    config = write_config(
        tmp_path / "c.toml", roots={"lib": world.dir}, state_dir=state, host=world.host
    )
    old, new = world.dir / "a/photo.jpg", world.dir / "c/renamed.jpg"
    run = cli("why", old, "--config", config)
    assert run.code == 0, run.err
    assert "  not in the catalog" in run.lines
    moved = [line for line in run.lines if line.startswith("  moved:")]
    assert moved and moved[0].startswith(f"  moved:     to {world.dir / 'b/renamed.jpg'} at ")
    assert moved[0].endswith("(a rename seen live)"), run.out
    assert any(
        line.startswith(f"             then to {new} at ")
        and line.endswith(f"(its directory {world.dir / 'b'} was renamed or moved)")
        for line in run.lines
    ), run.out
    assert f"  now at:    {new}, live, with its metadata (`assetd why {new}`)" in run.lines
    report = json.loads(cli("why", old, "--json", "--config", config).out)
    assert report["moved_to"]["path"] == str(new)
    assert report["moved_to"]["state"] == "live"
    assert [h["how"] for h in report["moved_to"]["hops"]] == ["rename", "directory"]
    directory = cli("why", world.dir / "b", "--config", config)  # a directory renamed away
    assert f"  now at:    {world.dir / 'c'}, a directory: 1 live and 0 missing file(s)" in (
        directory.lines
    ), directory.out
    never = cli("why", world.dir / "a/never.jpg", "--json", "--config", config)
    assert json.loads(never.out)["moved_to"] is None
