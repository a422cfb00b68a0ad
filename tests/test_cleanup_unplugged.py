"""``cleanup`` never deletes what is only unplugged (DESIGN §3, §6): paths missing with reason
``root-unavailable`` or ``root-covered`` count only with ``--include-unavailable``, and
``--dry-run`` says which they are; an asset with no path at all (``roots retire``) counts from
the moment it lost its last path (``assets.pathless_since``). Dry runs open nothing for writing.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import text, update

from assetd.catalog.cleanup import (
    cleanup_unreferenced_assets,
    find_cleanup_candidates,
    plan_cleanup,
)
from assetd.catalog.engine import SessionFactory, make_engine
from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.roots import delete_root
from catalog_world import make_world
from cli_world import Cli, tree, write_config
from unprivileged import NOGROUP_GID, nobody


def _scalar(url: str, sql: str) -> object:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar_one()
    finally:
        engine.dispose()


def _age_missing(url: str, hours: float = 2) -> None:
    """Test set-up: make every missing path (and pathless asset) ``hours`` old, not wait."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(cs).where(cs.c.is_missing.is_(True)).values(missing_since=then))
        conn.execute(
            update(assets).where(assets.c.pathless_since.is_not(None)).values(pathless_since=then)
        )
    engine.dispose()


def _tag_all(url: str, tag: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO tags (name) VALUES ('{tag}')")
        conn.exec_driver_sql(
            f"INSERT INTO asset_info_tags (asset_info_id, tag_name) SELECT id, '{tag}' "
            "FROM asset_infos"
        )
    engine.dispose()


def test_cleanup_keeps_the_assets_of_an_unplugged_root(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    disk = tree(tmp_path / "disk", {f"f{i:03d}.bin": b"%d" % i for i in range(20)})
    other = tree(tmp_path / "other", {"gone.bin": b"g", "stays.bin": b"s"})
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "c.toml", roots={"disk": disk, "other": other}, state_dir=state, url=db_url
    )
    url = db_url
    assert cli("scan", "--config", config).code == 0
    _tag_all(url, "precious")
    disk.rename(tmp_path / "unplugged")  # the disk goes away
    os.unlink(other / "gone.bin")  # and one file is really deleted
    assert cli("scan", "--config", config).code == 0
    _age_missing(url)

    dry = cli("cleanup", "--older-than", "1h", "--dry-run", "--config", config)
    assert dry.code == 0, dry.err
    assert dry.lines[0] == "would delete 1 asset(s) missing for longer than 1h"
    assert any("20" in line and "root-unavailable" in line for line in dry.lines[1:]), dry.out
    assert any("--include-unavailable" in line for line in dry.lines[1:]), dry.out

    run = cli("cleanup", "--older-than", "1h", "--yes", "--config", config)
    assert run.code == 0, run.err
    assert run.lines[0] == "deleted 1 asset(s) missing for longer than 1h"
    assert _scalar(url, "SELECT count(*) FROM assets") == 21
    assert _scalar(url, "SELECT count(*) FROM asset_info_tags WHERE tag_name = 'precious'") == 21

    (tmp_path / "unplugged").rename(disk)  # the disk is back: everything with its tags
    assert cli("scan", "--config", config).code == 0
    assert _scalar(url, "SELECT count(*) FROM asset_cache_states WHERE NOT is_missing") == 21

    disk.rename(tmp_path / "unplugged")
    assert cli("scan", "--config", config).code == 0
    _age_missing(url)
    every = cli(
        "cleanup", "--older-than", "1h", "--include-unavailable", "--yes", "--config", config
    )
    assert every.code == 0, every.err
    assert every.lines[0] == "deleted 20 asset(s) missing for longer than 1h"
    assert _scalar(url, "SELECT count(*) FROM assets") == 1


def test_cleanup_counts_an_asset_with_no_path_from_when_it_lost_it(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    old = tree(tmp_path / "old", {"a.bin": b"a", "b.bin": b"b"})
    keep = tree(tmp_path / "keep", {"k.bin": b"k"})
    state = tmp_path / "state"
    url = db_url
    config = write_config(
        tmp_path / "c.toml", roots={"old": old, "keep": keep}, state_dir=state, url=url
    )
    assert cli("scan", "--config", config).code == 0
    config = write_config(tmp_path / "c.toml", roots={"keep": keep}, state_dir=state, url=url)
    assert cli("roots", "retire", "old", "--yes", "--config", config).code == 0
    assert _scalar(url, "SELECT count(*) FROM assets WHERE pathless_since IS NOT NULL") == 2
    fresh = cli("cleanup", "--older-than", "1h", "--dry-run", "--config", config)
    assert fresh.lines[0] == "would delete 0 asset(s) missing for longer than 1h"
    _age_missing(url)
    dry = cli("cleanup", "--older-than", "1h", "--dry-run", "--config", config)
    assert dry.lines[0] == "would delete 2 asset(s) missing for longer than 1h", dry.out
    assert any("no path" in line for line in dry.lines[1:]), dry.out
    run = cli("cleanup", "--older-than", "1h", "--yes", "--config", config)
    assert run.lines[0] == "deleted 2 asset(s) missing for longer than 1h", run.out
    assert _scalar(url, "SELECT count(*) FROM assets") == 1


@pytest.mark.parametrize(
    "argv", [["hash", "--dry-run"], ["cleanup", "--older-than", "1d", "--dry-run"]]
)
def test_dry_runs_create_nothing_on_a_fresh_machine(
    cli: Cli, xdg: Path, tmp_path: Path, argv: list[str]
) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    run = cli(*argv, "--root", str(lib))
    assert run.code == 1, (run.out, run.err)
    assert "assetd scan" in run.err
    assert not xdg.exists()  # no catalog, no host id, no state directory


@pytest.mark.parametrize(
    "argv", [["hash", "--dry-run"], ["cleanup", "--older-than", "1d", "--dry-run"]]
)
def test_dry_runs_open_nothing_for_writing(cli: Cli, argv: list[str]) -> None:
    """Run as a user who may read the catalog but not write it: a dry run still answers, and
    leaves the catalog's directory exactly as it was (no -wal, no -shm)."""
    with nobody() as nb:
        lib = tree(nb.base / "lib", {"a.bin": b"a"})
        state = nb.base / "state"
        config = write_config(nb.base / "c.toml", roots={"lib": lib}, state_dir=state, host="h")
        assert cli("scan", "--config", config).code == 0  # as root
        catalog = state / "catalog.db"
        for p in (state, catalog):  # group-readable for nobody's group, as an operator would
            os.chown(p, 0, NOGROUP_GID)
        before = catalog.read_bytes()
        run = nb.assetd(*argv, "--config", str(config))
        assert run.returncode == 0, run.stderr
        assert sorted(os.listdir(state)) == ["catalog.db"]
        assert catalog.read_bytes() == before


def test_cleanup_functions_on_both_engines(sessions: SessionFactory, tmp_path: Path) -> None:
    """The catalog functions behind the command, on SQLite and PostgreSQL."""
    disk = make_world(sessions, tmp_path / "disk", name="disk")
    gone = make_world(sessions, tmp_path / "gone", name="gone")
    disk.write("a.bin", b"a")
    gone.write("b.bin", b"b")
    disk.scan(disk.root, gone.root)
    disk.dir.rename(tmp_path / "unplugged")
    disk.scan(disk.root)
    assert disk.state("a.bin")["state_reason"] == "root-unavailable"  # type: ignore[index]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    week = dt.timedelta(days=1)
    roots = [disk.root.id, gone.root.id]
    with sessions() as s, s.begin():
        assert delete_root(s, gone.root.id) == 1  # b.bin's asset has no path left
        assert find_cleanup_candidates(s, roots=roots, older_than=week) == []
        plan = plan_cleanup(s, roots=roots, older_than=week, now=later)
        assert (len(plan.ids), plan.pathless, plan.held) == (
            1,
            1,
            {("disk", "root-unavailable"): 1},
        )
        assert cleanup_unreferenced_assets(s, roots=roots, older_than=week, now=later) == 1
        assert (
            cleanup_unreferenced_assets(
                s, roots=roots, older_than=week, now=later, include_unavailable=True
            )
            == 1
        )
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM assets")).scalar_one() == 0
