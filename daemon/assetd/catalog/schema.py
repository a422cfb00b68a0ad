"""Who creates and who upgrades the catalog schema (DESIGN §3).

A command that writes creates the schema in a new, empty catalog. An older schema is upgraded
by ``assetd db upgrade`` (and by ``run`` on SQLite); anything else facing a schema it does not
match refuses with one line naming ``assetd db upgrade``.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

from assetd import log
from assetd.errors import CatalogMissing, SchemaMismatch

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0006"
"""The newest revision under ``migrations/versions`` (tests/test_schema.py keeps it equal to
Alembic's head). Knowing it without Alembic lets a command whose catalog is current skip
importing Alembic (~0.4 s): only creating or upgrading a schema loads it. This module imports
SQLAlchemy only in the functions that use it, so :mod:`assetd.catalog.lite` can check it too."""
_log = log.get_logger(__name__)


class Upgrade(enum.Enum):
    """What a command may do to the schema it finds."""

    NEVER = "never"  # read-only commands: the schema must exist and match
    CREATE = "create"  # writing commands: may create a new catalog, never upgrade one
    ALWAYS = "always"  # `db upgrade`, and `run` on SQLite


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return HEAD


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def script_head() -> str:
    """Alembic's own view of the newest revision (what :data:`HEAD` must say)."""
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The catalog's schema revision (``alembic_version``), or None when it has none."""
    from sqlalchemy import inspect, text  # (loaded already: the caller has a connection)

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


SCHEMA_LOCK_KEY = 0x61737365_74640001
"""The PostgreSQL advisory lock (``pg_advisory_xact_lock``) around creating or upgrading the
schema: every assetd process of every host takes this one key, so the work is done once."""


def _check(current: str | None, has_tables: bool, upgrade: Upgrade, head: str) -> None:
    """Refuse (one line naming ``assetd db upgrade``) what ``upgrade`` does not allow."""
    if current is None:
        if has_tables:
            raise SchemaMismatch(
                "the database holds tables but no assetd schema version; "
                "point database.url at an assetd catalog"
            )
        if upgrade is Upgrade.NEVER:
            raise CatalogMissing("no catalog yet: run `assetd scan` (or `assetd run`) first")
        return
    known = {rev.revision for rev in _script().walk_revisions()}
    if current not in known:
        raise SchemaMismatch(
            f"catalog schema {current} is newer than this assetd knows (head {head}): "
            "upgrade assetd; `assetd db upgrade` cannot go back"
        )
    if upgrade is not Upgrade.ALWAYS:
        raise SchemaMismatch(
            f"catalog schema {current} is older than this assetd's {head}: run `assetd db upgrade`"
        )


def _serialize(conn: Connection) -> None:
    """Hold the schema lock until this transaction ends. SQLite: a writer's transaction began
    ``IMMEDIATE`` (:mod:`assetd.catalog.engine`), so it holds the write lock already (and
    waits up to the busy timeout for it); PostgreSQL: the advisory lock, waited for."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})


def ensure_schema(engine: Engine, upgrade: Upgrade) -> str:
    """Check the catalog's schema and create or upgrade it as ``upgrade`` allows.

    Returns what was done: "created", "upgraded" or "current". Processes doing this at once
    (two daemons starting on a fresh catalog, two ``db upgrade``) are serialized by
    :func:`_serialize`: the first does the work in one transaction, the others wait, find the
    schema current, and proceed."""
    from sqlalchemy import inspect

    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
        has_tables = bool(inspect(conn).get_table_names())
    if current == head:
        return "current"
    _check(current, has_tables, upgrade, head)
    with engine.begin() as conn:
        _serialize(conn)
        found = current_revision(conn)
        if found == head:  # another process did it while this one waited
            _log.info("catalog.current", revision=head, waited_for="another process")
            return "current"
        if found != current:
            _check(found, bool(inspect(conn).get_table_names()), upgrade, head)
        _upgrade(conn)
    if found is None:
        _log.info("catalog.created", revision=head)
        return "created"
    _log.info("catalog.upgraded", revision_from=found, revision=head)
    return "upgraded"
