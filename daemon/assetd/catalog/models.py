"""The ORM classes of the catalog tables (DESIGN §3), mapped onto the Core tables of
:mod:`assetd.catalog.tables` ("declarative with imperative table"): one definition serves
Alembic, the ORM and the Core queries. The annotations type the mapped attributes; the columns
themselves (types, keys, defaults, indexes) are the tables'.

Importing this module imports ``sqlalchemy.orm``: the read-only commands use
:mod:`assetd.catalog.tables` instead. The table names are re-exported for the modules that
import them from here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from assetd.catalog import tables
from assetd.catalog.tables import (
    NAMING,
    UTCDateTime,
    asset_info_tags,
    asset_infos,
    asset_moves,
    assets,
    cache_states,
    daemons,
    roots,
    share_claims,
    tags,
)

__all__ = [
    "NAMING",
    "Asset",
    "AssetCacheState",
    "AssetInfo",
    "AssetInfoTag",
    "AssetMove",
    "Base",
    "Daemon",
    "Root",
    "ShareHashClaim",
    "Tag",
    "UTCDateTime",
    "asset_info_tags",
    "asset_infos",
    "asset_moves",
    "assets",
    "cache_states",
    "daemons",
    "roots",
    "share_claims",
    "tags",
]


class Base(DeclarativeBase):
    metadata = tables.metadata


class Root(Base):
    __table__ = tables.roots

    id: Mapped[int]
    host: Mapped[str]
    name: Mapped[str]
    path: Mapped[str]
    device: Mapped[int | None]
    is_mount: Mapped[bool]
    shared: Mapped[str]
    state: Mapped[str]
    state_reason: Mapped[str | None]
    epoch: Mapped[int]
    created_at: Mapped[dt.datetime]
    last_event_at: Mapped[dt.datetime | None]
    last_reconcile_at: Mapped[dt.datetime | None]
    last_reconcile_ms: Mapped[int | None]


class Asset(Base):
    __table__ = tables.assets

    id: Mapped[int]
    hash: Mapped[str | None]
    size_bytes: Mapped[int]
    mime_type: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    pathless_since: Mapped[dt.datetime | None]


class AssetCacheState(Base):
    __table__ = tables.cache_states

    id: Mapped[int]
    asset_id: Mapped[int]
    root_id: Mapped[int]
    file_path: Mapped[str]
    file_path_raw: Mapped[bytes | None]
    size_bytes: Mapped[int]
    mtime_ns: Mapped[int]
    device: Mapped[int | None]
    inode: Mapped[int | None]
    needs_verify: Mapped[bool]
    is_missing: Mapped[bool]
    missing_since: Mapped[dt.datetime | None]
    state_changed_at: Mapped[dt.datetime]
    state_reason: Mapped[str]
    birth_ns: Mapped[int | None]
    is_symlink: Mapped[bool]
    move_candidate_id: Mapped[int | None]
    hashed_size_bytes: Mapped[int | None]
    hashed_mtime_ns: Mapped[int | None]


class ShareHashClaim(Base):
    """A host reading a file of a share now (DESIGN §7): see :data:`tables.share_claims`."""

    __table__ = tables.share_claims

    shared: Mapped[str]
    rel_path: Mapped[str]
    host: Mapped[str]
    size_bytes: Mapped[int]
    mtime_ns: Mapped[int]
    claimed_at: Mapped[dt.datetime]


class AssetInfo(Base):
    __table__ = tables.asset_infos

    id: Mapped[int]
    asset_id: Mapped[int]
    name: Mapped[str]
    user_metadata: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Tag(Base):
    __table__ = tables.tags

    name: Mapped[str]
    created_at: Mapped[dt.datetime]


class AssetInfoTag(Base):
    __table__ = tables.asset_info_tags

    asset_info_id: Mapped[int]
    tag_name: Mapped[str]
    origin: Mapped[str]
    added_at: Mapped[dt.datetime]


class AssetMove(Base):
    """A move the catalog applied (DESIGN §3): see :data:`tables.asset_moves`."""

    __table__ = tables.asset_moves

    id: Mapped[int]
    asset_id: Mapped[int | None]
    root_id: Mapped[int]
    from_path: Mapped[str]
    to_path: Mapped[str]
    is_dir: Mapped[bool]
    how: Mapped[str]
    moved_at: Mapped[dt.datetime]


class Daemon(Base):
    __table__ = tables.daemons

    id: Mapped[int]
    host: Mapped[str]
    pid: Mapped[int | None]
    version: Mapped[str | None]
    started_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]
    status: Mapped[str]
    error: Mapped[str | None]
