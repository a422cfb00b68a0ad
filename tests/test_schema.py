"""The migrations produce exactly the models' schema; who creates and who upgrades it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from assetd.catalog.engine import make_engine
from assetd.catalog.models import Base
from assetd.catalog.schema import (
    Upgrade,
    alembic_config,
    ensure_schema,
    head_revision,
    script_head,
)
from assetd.errors import CatalogMissing, SchemaMismatch


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_marking_a_path_missing_or_live_rewrites_no_index_entry(engine: Engine) -> None:
    """A burst of deletions is one UPDATE of ``is_missing`` per path: no index may hold it
    (revision 0006), and each path is still found by ``UNIQUE (root_id, file_path)``."""
    indexes = inspect(engine).get_indexes("asset_cache_states")
    assert not [i["name"] for i in indexes if "is_missing" in i["column_names"]]
    uniques = inspect(engine).get_unique_constraints("asset_cache_states")
    assert ["root_id", "file_path"] in [u["column_names"] for u in uniques]


def test_a_0005_catalog_upgrades_to_no_is_missing_index_and_keeps_its_rows(engine: Engine) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    assert "ix_asset_cache_states_live_path" in [
        i["name"] for i in inspect(engine).get_indexes("asset_cache_states")
    ]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO roots (host, name, path) VALUES ('h', 'r', '/r')"))
        conn.execute(text("INSERT INTO assets (size_bytes) VALUES (1)"))
        conn.execute(
            text(
                "INSERT INTO asset_cache_states (asset_id, root_id, file_path, is_missing) "
                "SELECT a.id, r.id, '/r/x', true FROM assets a, roots r"
            )
        )
    assert ensure_schema(engine, Upgrade.ALWAYS) == "upgraded"
    indexes = inspect(engine).get_indexes("asset_cache_states")
    assert not [i["name"] for i in indexes if "is_missing" in i["column_names"]]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT file_path, is_missing FROM asset_cache_states")).all()
    assert [(str(p), bool(m)) for p, m in rows] == [("/r/x", True)]


def test_new_catalog_is_created_only_by_writers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = make_engine(url)
    with pytest.raises(CatalogMissing):
        ensure_schema(engine, Upgrade.NEVER)
    assert ensure_schema(engine, Upgrade.CREATE) == "created"
    assert ensure_schema(engine, Upgrade.NEVER) == "current"
    engine.dispose()


def test_a_newer_schema_is_refused_by_everyone(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    for mode in Upgrade:
        with pytest.raises(SchemaMismatch, match="newer"):
            ensure_schema(engine, mode)


def test_an_older_schema_is_upgraded_only_when_allowed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_head = head_revision()
    monkeypatch.setattr("assetd.catalog.schema.head_revision", lambda: "0002_future")
    for mode in (Upgrade.NEVER, Upgrade.CREATE):
        with pytest.raises(SchemaMismatch, match="assetd db upgrade"):
            ensure_schema(engine, mode)
    monkeypatch.setattr("assetd.catalog.schema.head_revision", lambda: real_head)
    assert ensure_schema(engine, Upgrade.ALWAYS) == "current"


def test_foreign_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE something (x INTEGER)"))
    with pytest.raises(SchemaMismatch):
        ensure_schema(engine, Upgrade.CREATE)
    engine.dispose()


def test_head_constant_is_alembics_head() -> None:
    """schema.HEAD lets commands skip importing Alembic: it must name the newest revision."""
    assert head_revision() == script_head()


def test_the_orm_classes_map_every_column_of_their_table() -> None:
    """The ORM classes map onto the Core tables (one definition); each annotates exactly its
    table's columns, so an attribute the table lacks, or a column left untyped, is caught."""
    from sqlalchemy import inspect

    from assetd.catalog import models, tables

    classes = models.Base.__subclasses__()
    assert models.Base.metadata is tables.metadata
    assert len(classes) == len(tables.metadata.tables)
    for table in tables.metadata.sorted_tables:
        [cls] = [c for c in classes if inspect(c).local_table is table]
        annotated = {k for k in cls.__annotations__ if not k.startswith("_")}
        assert annotated == set(table.columns.keys()), table.name
