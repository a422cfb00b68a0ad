"""``assetd roots retire NAME --host HOST`` (DESIGN §7): a decommissioned host's root leaves the
shared PostgreSQL catalog with its path rows; the content and metadata it pointed at stay, and
this host's rows are untouched. Refused while that host's daemon says it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import make_engine, session_factory
from assetd.catalog.states import utcnow
from cli_world import Cli, write_config

pytestmark = pytest.mark.pg


def _count(url: str, sql: str, **params: object) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def test_a_decommissioned_hosts_root_is_retired_from_another_host(
    cli: Cli, tmp_path: Path, pg_url: str
) -> None:
    here, gone = tmp_path / "here", tmp_path / "gone"
    for d, names in ((here, ("a", "b")), (gone, ("a", "c"))):
        d.mkdir()
        for n in names:
            (d / f"{n}.txt").write_text(f"content {n}")
    cfg_a = write_config(
        tmp_path / "a.toml", roots={"lib": here}, state_dir=tmp_path / "sa", url=pg_url, host="a"
    )
    cfg_b = write_config(
        tmp_path / "b.toml", roots={"lib": gone}, state_dir=tmp_path / "sb", url=pg_url, host="b"
    )
    assert cli("scan", "--config", cfg_a).code == 0
    assert cli("scan", "--config", cfg_b).code == 0
    assert cli("hash", "--config", cfg_a).code == 0
    assert cli("hash", "--config", cfg_b).code == 0
    engine = make_engine(pg_url)
    with session_factory(engine)() as s, s.begin():  # a manual tag on host b's only copy of c
        s.execute(text("INSERT INTO tags (name) VALUES ('keep')"))
        s.execute(
            text(
                "INSERT INTO asset_info_tags (asset_info_id, tag_name) SELECT i.id, 'keep' "
                "FROM asset_infos i JOIN asset_cache_states c ON c.asset_id = i.asset_id "
                "WHERE c.file_path = :p"
            ),
            {"p": str(gone / "c.txt")},
        )
        # host b's daemon last said it runs, just now: refused (exit 75)
        s.execute(
            text(
                "INSERT INTO daemons (host, pid, status, heartbeat_at) "
                "VALUES ('b', 1, 'running', :t)"
            ),
            {"t": utcnow()},
        )
    engine.dispose()
    assets_before = _count(pg_url, "SELECT count(*) FROM assets")
    run = cli("roots", "retire", "lib", "--host", "b", "--yes", "--config", cfg_a)
    assert run.code == 75, run.err
    assert "host 'b'" in run.err and "Traceback" not in run.err
    _stop(pg_url)

    run = cli("roots", "retire", "lib", "--host", "b", "--yes", "--config", cfg_a)
    assert run.code == 0, run.err
    assert "of host 'b'" in run.out and "2 path row(s) removed" in run.out
    assert _count(pg_url, "SELECT count(*) FROM roots WHERE host = 'b'") == 0
    assert _count(pg_url, "SELECT count(*) FROM asset_cache_states") == 2  # host a's
    assert _count(pg_url, "SELECT count(*) FROM assets") == assets_before  # nothing deleted
    assert _count(pg_url, "SELECT count(*) FROM asset_info_tags WHERE tag_name = 'keep'") == 1
    assert _count(pg_url, "SELECT count(*) FROM assets WHERE pathless_since IS NOT NULL") == 1
    assert cli("roots", "retire", "lib", "--host", "b", "--yes", "--config", cfg_a).code == 2
    # this host's own root, still configured: refused as before
    assert cli("roots", "retire", "lib", "--yes", "--config", cfg_a).code == 2


def _stop(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE daemons SET status = 'stopped' WHERE host = 'b'"))
    finally:
        engine.dispose()
