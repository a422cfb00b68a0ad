"""``status``, ``ls``, ``missing`` and ``why`` read a SQLite catalog through the standard
library's ``sqlite3`` and any other through SQLAlchemy, with the same SQL text (issue 14:
start-up under 500 ms): what they print is the same either way, on both engines, and a
database error is the same one line and exit code. (That no SQLAlchemy module is loaded:
``tests/test_cli_process.py``.)"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import assetd.catalog_reader
from assetd.catalog.api_tags import add_manual_tags, update_info
from assetd.catalog.daemons import heartbeat, record_start
from assetd.catalog.engine import make_engine, session_factory, translate_db_errors
from assetd.catalog.lite import open_sqlite_reader, translate_sqlite_errors
from assetd.errors import DatabaseLocked
from cli_world import Cli, tree, write_config


def _catalogue(cli: Cli, tmp_path: Path, url: str) -> tuple[Path, Path]:
    """Three files scanned, one then deleted and scanned again; a daemon of this host that
    stopped. Returns the root and the config."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a" * 3, "d/b.bin": b"b" * 5, "d/c.bin": b"c"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, url=url, host="h1")
    assert cli("scan", "--config", config).code == 0
    (lib / "d" / "c.bin").unlink()
    assert cli("scan", "--config", config).code == 0
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s, s.begin():
            record_start(s, "h1", 4242, "0.0.1")
            heartbeat(s, "h1", "stopped")
            [info] = s.execute(
                text(
                    "SELECT i.id FROM asset_infos i JOIN asset_cache_states c "
                    "ON c.asset_id = i.asset_id WHERE c.file_path = :p"
                ),
                {"p": str(lib / "a.bin")},
            ).one()
            update_info(s, info, name=None, user_metadata={"k": [1, "é"], "n": None})
            add_manual_tags(s, info, ["kept"])
    finally:
        engine.dispose()
    os.rename(lib / "d" / "b.bin", lib / "b.bin")  # a move the history keeps: why OLD follows it
    assert cli("scan", "--config", config).code == 0
    return lib, config


def _json_status(cli: Cli, config: Path) -> dict[str, Any]:
    run = cli("status", "--json", "--config", config)
    assert run.code == 0, run.err
    report: dict[str, Any] = json.loads(run.out)
    for d in report["daemons"]:
        d.pop("heartbeat_age_s")  # (the clock moved on between two runs)
    return report


def _json_why(cli: Cli, config: Path, path: Path) -> dict[str, Any]:
    run = cli("why", "--json", path, "--config", config)
    assert run.code == 0, run.err
    report: dict[str, Any] = json.loads(run.out)
    return report


def test_why_reads_metadata_tags_and_moves_on_both_engines(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    lib, config = _catalogue(cli, tmp_path, db_url)
    [row] = _json_why(cli, config, lib / "a.bin")["rows"]
    [info] = row["infos"]
    assert info["user_metadata"] == {"k": [1, "é"], "n": None}
    assert info["tags"] == [{"name": "kept", "origin": "manual"}]
    assert row["root"]["name"] == "lib" and row["is_missing"] is False
    gone = _json_why(cli, config, lib / "d" / "b.bin")
    assert gone["known"] is False and gone["moved_to"]["path"] == str(lib / "b.bin"), gone
    assert _json_why(cli, config, lib / "d")["below"] == {"live": 0, "missing": 1}


def test_status_reports_the_catalog_on_both_engines(cli: Cli, tmp_path: Path, db_url: str) -> None:
    lib, config = _catalogue(cli, tmp_path, db_url)
    report = _json_status(cli, config)
    [root] = report["roots"]
    assert (root["name"], root["path"], root["live"], root["missing"]) == ("lib", str(lib), 2, 1)
    assert root["unhashed"] == 2 and root["last_reconcile_at"].endswith("+00:00")
    assert (root["live"], root["missing"]) == (2, 1)
    [daemon] = report["daemons"]
    assert (daemon["host"], daemon["pid"], daemon["status"]) == ("h1", 4242, "stopped")
    assert daemon["heartbeat_at"].endswith("+00:00") and daemon["running"] is False
    assert report["hashing_backlog"] == {"files": 2, "bytes": 8}  # a.bin, b.bin
    text = cli("status", "--config", config)
    assert text.code == 0, text.err
    assert text.lines[1].startswith("daemon:   not running (stopped "), text.out
    assert "hashing backlog: 2 file(s), 8 B" in text.lines


def test_sqlite3_and_sqlalchemy_read_the_same_status(
    cli: Cli, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib, config = _catalogue(cli, tmp_path, sqlite_url)
    assert open_sqlite_reader(sqlite_url) is not None  # (the stdlib's reader takes this one)
    paths = [lib / "a.bin", lib / "d" / "b.bin", lib / "d" / "c.bin", lib / "d", lib / "no"]

    def everything() -> list[object]:
        ls = cli("ls", "--all", "--json", "--config", config)
        missing = json.loads(cli("missing", "--json", "--config", config).out)
        for d in missing["roots"]:
            for directory in d["directories"]:
                for f in directory["files"]:
                    f.pop("age_s")  # (the clock moved on)
        return [
            _json_status(cli, config),
            ls.out,
            missing,
            [_json_why(cli, config, p) for p in paths],
        ]

    through_sqlite3 = everything()
    monkeypatch.setattr(assetd.catalog_reader, "open_sqlite_reader", lambda url: None)
    through_sqlalchemy = everything()
    assert through_sqlite3 == through_sqlalchemy


def test_a_catalog_not_at_the_current_schema_is_left_to_sqlalchemy(
    cli: Cli, tmp_path: Path, sqlite_url: str
) -> None:
    """Another revision (or none) is not read by sqlite3: the usual path refuses it, with its
    usual line."""
    _catalogue(cli, tmp_path, sqlite_url)
    db = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    assert open_sqlite_reader(sqlite_url) is None
    run = cli("status", "--config", tmp_path / "c.toml")
    assert run.code != 0 and "older than this assetd's" in run.err, run.err


def test_a_locked_catalog_is_the_same_line_and_exit_75_through_either(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    url = f"sqlite:///{db}"
    holder = sqlite3.connect(db, isolation_level=None)  # a rollback journal: readers wait
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(url, connect_args={"timeout": 0.1})
    try:
        with pytest.raises(DatabaseLocked) as stdlib, translate_sqlite_errors(url):
            reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
            try:
                reader.execute("SELECT x FROM t").fetchall()
            finally:
                reader.close()
        with pytest.raises(DatabaseLocked) as core, translate_db_errors(url), engine.connect() as c:
            c.exec_driver_sql("SELECT x FROM t").fetchall()
    finally:
        engine.dispose()
        holder.execute("ROLLBACK")
        holder.close()
    line = f"catalog is locked by another writer ({url}): database is locked"
    assert str(stdlib.value) == str(core.value) == line
    assert stdlib.value.exit_code == core.value.exit_code == 75
