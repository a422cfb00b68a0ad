"""The catalog tables (DESIGN §3) as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

Table and column names are a contract with other programs. The one definition: Alembic's
metadata, the ORM classes (:mod:`assetd.catalog.models` maps onto these tables) and every Core
query use it; a read-only command (``status``, ``ls``, ``why``, ``missing``) imports this module
and not the ORM (``sqlalchemy.orm`` costs about as much again as ``sqlalchemy`` to import).

Every NOT NULL column has a server-side default or is a key, so plain-SQL inserts from other
programs work. Paths compare byte-wise on both engines (``COLLATE "C"`` on PostgreSQL, SQLite's
default BINARY), which makes a prefix a key range and matches Python's ``str`` ordering.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from assetd.catalog.sqltext import utc

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Byte-wise ordering on PostgreSQL, so ``file_path >= 'd/' AND file_path < 'd0'`` is a prefix.
PathText = Text().with_variant(Text(collation="C"), "postgresql")
NOW = text("CURRENT_TIMESTAMP")
# 64-bit keys on PostgreSQL; SQLite's INTEGER PRIMARY KEY (the rowid) is 64-bit already.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps in UTC: ``timestamptz`` on PostgreSQL, naive-UTC text on SQLite.

    Values come back timezone-aware (UTC) on both engines.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return utc(value)  # (plain-SQL rows on SQLite may hold any ISO text)


def _key() -> Column[int]:
    return Column("id", Id, primary_key=True)


def _now(name: str) -> Column[dt.datetime]:
    """A NOT NULL timestamp the database fills in."""
    return Column(name, UTCDateTime, nullable=False, server_default=NOW)


def _flag(name: str) -> Column[bool]:
    """A NOT NULL boolean, false unless set."""
    return Column(name, Boolean, nullable=False, server_default=false())


def _zero(name: str, type_: Any = BigInteger) -> Column[int]:
    return Column(name, type_, nullable=False, server_default=text("0"))


roots = Table(
    "roots",
    metadata,
    _key(),
    Column("host", String(255), nullable=False, server_default=text("''")),
    Column("name", String(255), nullable=False),
    Column("path", PathText, nullable=False),
    Column("device", BigInteger),
    _flag("is_mount"),
    Column("shared", String(255), nullable=False, server_default=text("''")),
    Column("state", String(32), nullable=False, server_default=text("'watching'")),
    Column("state_reason", Text),
    _zero("epoch", Integer),
    _now("created_at"),
    Column("last_event_at", UTCDateTime),
    Column("last_reconcile_at", UTCDateTime),
    Column("last_reconcile_ms", Integer),
    UniqueConstraint("host", "name"),
)

assets = Table(
    "assets",
    metadata,
    _key(),
    Column("hash", String(128), unique=True),
    _zero("size_bytes"),
    Column("mime_type", String(255)),
    _now("created_at"),
    # when the asset lost its last path row (e.g. ``roots retire``): cleanup counts from here
    Column("pathless_since", UTCDateTime),
    Index("ix_assets_size_bytes_id", "size_bytes", "id"),
)

cache_states = Table(
    "asset_cache_states",
    metadata,
    _key(),
    Column("asset_id", Id, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("root_id", Id, ForeignKey("roots.id", ondelete="CASCADE"), nullable=False),
    Column("file_path", PathText, nullable=False),
    Column("file_path_raw", LargeBinary),
    _zero("size_bytes"),
    _zero("mtime_ns"),
    Column("device", BigInteger),
    Column("inode", BigInteger),
    _flag("needs_verify"),
    _flag("is_missing"),
    Column("missing_since", UTCDateTime),
    _now("state_changed_at"),
    Column("state_reason", String(32), nullable=False, server_default=text("'seed'")),
    # statx birth time where the filesystem keeps one: a moved file keeps it, a new one does not
    Column("birth_ns", BigInteger),
    # a symlink catalogued by its own lstat (its target is outside every root): never read
    _flag("is_symlink"),
    # a guessed move (same device, inode, size, mtime_ns) not yet confirmed by the hash: the
    # vanished row this new path may continue; metadata follows only once the content agrees
    Column("move_candidate_id", Id, ForeignKey("asset_cache_states.id", ondelete="SET NULL")),
    # the size and mtime_ns the file had when its asset's hash was read (or trusted) for this
    # path; another host of the same share trusts the hash only for exactly these (DESIGN §7)
    Column("hashed_size_bytes", BigInteger),
    Column("hashed_mtime_ns", BigInteger),
    # serves a path's row and a root's rows in path order; ``is_missing`` is in no index on
    # purpose: marking a row missing or live then rewrites no index entry (revision 0006)
    UniqueConstraint("root_id", "file_path"),
)

share_claims = Table(
    # A host is reading this file of a share now (DESIGN §7): the others wait for its hash
    # rather than read it too, until ``claimed_at`` is older than the lease.
    "share_hash_claims",
    metadata,
    Column("shared", String(255), primary_key=True),
    Column("rel_path", PathText, primary_key=True),
    Column("host", String(255), nullable=False, server_default=text("''"), index=True),
    _zero("size_bytes"),
    _zero("mtime_ns"),
    _now("claimed_at"),
)

asset_infos = Table(
    "asset_infos",
    metadata,
    _key(),
    Column("asset_id", Id, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("user_metadata", JSON, server_default=text("'{}'")),
    _now("created_at"),
    _now("updated_at"),
    UniqueConstraint("asset_id", "name"),
    # keyset pages of the HTTP API, by each sort it offers (ties broken by id)
    Index("ix_asset_infos_created_at_id", "created_at", "id"),
    Index("ix_asset_infos_updated_at_id", "updated_at", "id"),
    Index("ix_asset_infos_name_id", "name", "id"),
)

tags = Table(
    "tags",
    metadata,
    Column("name", String(255), primary_key=True),
    _now("created_at"),
)

asset_info_tags = Table(
    "asset_info_tags",
    metadata,
    Column("asset_info_id", Id, ForeignKey("asset_infos.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "tag_name",
        String(255),
        ForeignKey("tags.name", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("origin", String(16), nullable=False, server_default=text("'manual'")),
    _now("added_at"),
)

asset_moves = Table(
    # A move the catalog applied (DESIGN §3): ``why OLD`` follows these to where a file went.
    # One row per file moved (``asset_id`` set) and one per directory moved (``is_dir``, no
    # asset: the files below it moved with it). Bounded: rows older than
    # :data:`assetd.catalog.movelog.KEEP_DAYS` and all but an asset's last
    # :data:`assetd.catalog.movelog.KEEP_PER_ASSET` go (the periodic reconcile pass prunes).
    "asset_moves",
    metadata,
    _key(),
    Column("asset_id", Id, ForeignKey("assets.id", ondelete="CASCADE"), index=True),
    Column("root_id", Id, ForeignKey("roots.id", ondelete="CASCADE"), nullable=False),
    Column("from_path", PathText, nullable=False),
    Column("to_path", PathText, nullable=False),
    _flag("is_dir"),
    # rename (reported by the kernel), directory, birth-time or hash (a pairing, confirmed)
    Column("how", String(32), nullable=False),
    _now("moved_at"),
    Index("ix_asset_moves_from_path_id", "from_path", "id"),
    Index("ix_asset_moves_moved_at", "moved_at"),
)

daemons = Table(
    "daemons",
    metadata,
    _key(),
    Column("host", String(255), nullable=False, unique=True),
    Column("pid", Integer),
    Column("version", String(64)),
    _now("started_at"),
    _now("heartbeat_at"),
    Column("status", String(32), nullable=False, server_default=text("'starting'")),
    Column("error", Text),  # why a daemon failed (status 'failed')
)
