"""The catalog tables (DESIGN §3). Table and column names are a contract with other programs.

Every NOT NULL column has a server-side default or is a key, so plain-SQL inserts from other
programs work. Paths compare byte-wise on both engines (``COLLATE "C"`` on PostgreSQL, SQLite's
default BINARY), which makes a prefix a key range and matches Python's ``str`` ordering.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

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
        if value is None:
            return None
        if isinstance(value, str):  # plain-SQL rows on SQLite may hold any ISO text
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Root(Base):
    __tablename__ = "roots"
    __table_args__ = (UniqueConstraint("host", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(PathText)
    device: Mapped[int | None] = mapped_column(BigInteger)
    is_mount: Mapped[bool] = mapped_column(Boolean, server_default=false())
    shared: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    state: Mapped[str] = mapped_column(String(32), server_default=text("'watching'"))
    state_reason: Mapped[str | None] = mapped_column(Text)
    epoch: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    last_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_reconcile_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_reconcile_ms: Mapped[int | None] = mapped_column(Integer)


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (Index("ix_assets_size_bytes_id", "size_bytes", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    mime_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    # when the asset lost its last path row (e.g. ``roots retire``): cleanup counts from here
    pathless_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AssetCacheState(Base):
    __tablename__ = "asset_cache_states"
    __table_args__ = (
        UniqueConstraint("root_id", "file_path"),
        Index("ix_asset_cache_states_live_path", "root_id", "is_missing", "file_path"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int] = mapped_column(
        Id, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    root_id: Mapped[int] = mapped_column(Id, ForeignKey("roots.id", ondelete="CASCADE"))
    file_path: Mapped[str] = mapped_column(PathText)
    file_path_raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    mtime_ns: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    device: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    needs_verify: Mapped[bool] = mapped_column(Boolean, server_default=false())
    is_missing: Mapped[bool] = mapped_column(Boolean, server_default=false())
    missing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    state_reason: Mapped[str] = mapped_column(String(32), server_default=text("'seed'"))
    # statx birth time where the filesystem keeps one: a moved file keeps it, a new one does not
    birth_ns: Mapped[int | None] = mapped_column(BigInteger)
    # a symlink catalogued by its own lstat (its target is outside every root): never read
    is_symlink: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # a guessed move (same device, inode, size, mtime_ns) not yet confirmed by the hash: the
    # vanished row this new path may continue; metadata follows only once the content agrees
    move_candidate_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("asset_cache_states.id", ondelete="SET NULL")
    )
    # the size and mtime_ns the file had when its asset's hash was read (or trusted) for this
    # path; another host of the same share trusts the hash only for exactly these (DESIGN §7)
    hashed_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    hashed_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)


class ShareHashClaim(Base):
    """A host is reading this file of a share now (DESIGN §7): the others wait for its hash
    rather than read it too, until ``claimed_at`` is older than the lease."""

    __tablename__ = "share_hash_claims"

    shared: Mapped[str] = mapped_column(String(255), primary_key=True)
    rel_path: Mapped[str] = mapped_column(PathText, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), server_default=text("''"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    mtime_ns: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)


class AssetInfo(Base):
    __tablename__ = "asset_infos"
    __table_args__ = (
        UniqueConstraint("asset_id", "name"),
        # keyset pages of the HTTP API, by each sort it offers (ties broken by id)
        Index("ix_asset_infos_created_at_id", "created_at", "id"),
        Index("ix_asset_infos_updated_at_id", "updated_at", "id"),
        Index("ix_asset_infos_name_id", "name", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int] = mapped_column(Id, ForeignKey("assets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, server_default=text("'{}'"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)


class Tag(Base):
    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)


class AssetInfoTag(Base):
    __tablename__ = "asset_info_tags"

    asset_info_id: Mapped[int] = mapped_column(
        Id, ForeignKey("asset_infos.id", ondelete="CASCADE"), primary_key=True
    )
    tag_name: Mapped[str] = mapped_column(
        ForeignKey("tags.name", ondelete="CASCADE"), primary_key=True, index=True
    )
    origin: Mapped[str] = mapped_column(String(16), server_default=text("'manual'"))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)


class AssetMove(Base):
    """A move the catalog applied (DESIGN §3): ``why OLD`` follows these to where a file went.

    One row per file moved (``asset_id`` set) and one per directory moved (``is_dir``, no
    asset: the files below it moved with it). Bounded: rows older than
    :data:`assetd.catalog.movelog.KEEP_DAYS` and all but an asset's last
    :data:`assetd.catalog.movelog.KEEP_PER_ASSET` go (the periodic reconcile pass prunes)."""

    __tablename__ = "asset_moves"
    __table_args__ = (
        Index("ix_asset_moves_from_path_id", "from_path", "id"),
        Index("ix_asset_moves_moved_at", "moved_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    asset_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    root_id: Mapped[int] = mapped_column(Id, ForeignKey("roots.id", ondelete="CASCADE"))
    from_path: Mapped[str] = mapped_column(PathText)
    to_path: Mapped[str] = mapped_column(PathText)
    is_dir: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # rename (reported by the kernel), directory, birth-time or hash (a pairing, confirmed)
    how: Mapped[str] = mapped_column(String(32))
    moved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)


class Daemon(Base):
    __tablename__ = "daemons"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    pid: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=NOW)
    status: Mapped[str] = mapped_column(String(32), server_default=text("'starting'"))
    error: Mapped[str | None] = mapped_column(Text)  # why a daemon failed (status 'failed')


assets = cast(Table, Asset.__table__)
cache_states = cast(Table, AssetCacheState.__table__)
asset_infos = cast(Table, AssetInfo.__table__)
tags = cast(Table, Tag.__table__)
asset_info_tags = cast(Table, AssetInfoTag.__table__)
roots = cast(Table, Root.__table__)
daemons = cast(Table, Daemon.__table__)
asset_moves = cast(Table, AssetMove.__table__)
share_claims = cast(Table, ShareHashClaim.__table__)
