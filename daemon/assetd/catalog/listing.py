"""Read queries for people and programs. Missing cache states are hidden unless asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select, true

from assetd.catalog.sqlutil import Reader, under_prefix
from assetd.catalog.tables import assets
from assetd.catalog.tables import cache_states as cs
from assetd.catalog.tables import roots as roots_table


@dataclass(frozen=True, slots=True)
class ListedFile:
    root: str
    path: str
    size: int
    mtime_ns: int
    is_missing: bool
    missing_since: dt.datetime | None
    state_reason: str
    needs_verify: bool
    asset_id: int
    hash: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "root": self.root,
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "is_missing": self.is_missing,
            "missing_since": self.missing_since.isoformat() if self.missing_since else None,
            "state_reason": self.state_reason,
            "needs_verify": self.needs_verify,
            "asset_id": self.asset_id,
            "hash": self.hash,
        }


def list_cache_states(
    session: Reader,
    *,
    roots: Collection[int] | None = None,
    include_missing: bool = False,
    only_missing: bool = False,
    under: str | None = None,
    limit: int | None = None,
) -> list[ListedFile]:
    """Cache states ordered by root and path; live ones only unless ``include_missing``
    (or ``only_missing``)."""
    query = (
        select(
            roots_table.c.name,
            cs.c.file_path,
            cs.c.size_bytes,
            cs.c.mtime_ns,
            cs.c.is_missing,
            cs.c.missing_since,
            cs.c.state_reason,
            cs.c.needs_verify,
            cs.c.asset_id,
            assets.c.hash,
        )
        .join(roots_table, roots_table.c.id == cs.c.root_id)
        .join(assets, assets.c.id == cs.c.asset_id)
        .order_by(roots_table.c.name, cs.c.file_path)
    )
    if roots is not None:
        query = query.where(cs.c.root_id.in_(list(roots)))
    if only_missing:
        query = query.where(cs.c.is_missing == true())
    elif not include_missing:
        query = query.where(cs.c.is_missing != true())
    if under is not None:
        query = query.where(under_prefix(cs.c.file_path, under))
    if limit is not None:
        query = query.limit(limit)
    return [
        ListedFile(
            root=r[0],
            path=r[1],
            size=r[2],
            mtime_ns=r[3],
            is_missing=bool(r[4]),
            missing_since=r[5],
            state_reason=r[6],
            needs_verify=bool(r[7]),
            asset_id=r[8],
            hash=r[9],
        )
        for r in session.execute(query)
    ]


def count_cache_states(session: Reader, *, roots: Collection[int] | None = None) -> dict[str, int]:
    """Counts of live and missing cache states (optionally for these roots)."""
    query = select(cs.c.is_missing, func.count()).group_by(cs.c.is_missing)
    if roots is not None:
        query = query.where(cs.c.root_id.in_(list(roots)))
    counts = {"live": 0, "missing": 0}
    for missing, n in session.execute(query):
        counts["missing" if missing else "live"] += int(n)
    return counts
