"""Read queries for people and programs (``ls``, ``missing``). Missing cache states are hidden
unless asked for. Plain SQL text (:mod:`assetd.catalog.sqltext`): ``ls`` and ``missing`` read a
SQLite catalog without importing SQLAlchemy, as ``status`` does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from assetd.catalog.sqltext import TextReader, prefix_range, query, utc


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


_LISTED = (
    "SELECT r.name, c.file_path, c.size_bytes, c.mtime_ns, c.is_missing, c.missing_since, "
    "c.state_reason, c.needs_verify, c.asset_id, a.hash FROM asset_cache_states c "
    "JOIN roots r ON r.id = c.root_id JOIN assets a ON a.id = c.asset_id"
)


def list_cache_states(
    session: TextReader,
    *,
    roots: Collection[int] | None = None,
    include_missing: bool = False,
    only_missing: bool = False,
    under: str | None = None,
    limit: int | None = None,
) -> list[ListedFile]:
    """Cache states ordered by root and path; live ones only unless ``include_missing``
    (or ``only_missing``)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if roots is not None:
        where.append("c.root_id IN :roots")
        params["roots"] = list(roots)
    if only_missing:
        where.append("c.is_missing = true")
    elif not include_missing:
        where.append("c.is_missing = false")
    if under is not None:
        where.append("c.file_path >= :lo AND c.file_path < :hi")
        params["lo"], params["hi"] = prefix_range(under)
    sql = _LISTED + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY r.name, c.file_path"
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = int(limit)
    return [
        ListedFile(
            root=r[0],
            path=r[1],
            size=r[2],
            mtime_ns=r[3],
            is_missing=bool(r[4]),
            missing_since=utc(r[5]),
            state_reason=r[6],
            needs_verify=bool(r[7]),
            asset_id=r[8],
            hash=r[9],
        )
        for r in query(session, sql, **params)
    ]


def count_cache_states(
    session: TextReader, *, roots: Collection[int] | None = None
) -> dict[str, int]:
    """Counts of live and missing cache states (optionally for these roots)."""
    sql = "SELECT is_missing, count(*) FROM asset_cache_states"
    params: dict[str, Any] = {}
    if roots is not None:
        sql += " WHERE root_id IN :roots"
        params["roots"] = list(roots)
    counts = {"live": 0, "missing": 0}
    for missing, n in query(session, sql + " GROUP BY is_missing", **params):
        counts["missing" if missing else "live"] += int(n)
    return counts


@dataclass(frozen=True, slots=True)
class MissingRow:
    root_id: int
    path: str
    size: int
    missing_since: dt.datetime | None
    state_reason: str
    hash: str | None


def missing_rows(
    session: TextReader,
    *,
    roots: Collection[int] | None = None,
    since: dt.datetime | None = None,
) -> list[MissingRow]:
    """Missing cache states ordered by root and path; with ``since``, only those that went
    missing at or after it."""
    sql = (
        "SELECT c.root_id, c.file_path, c.size_bytes, c.missing_since, c.state_reason, a.hash "
        "FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id WHERE c.is_missing = true"
    )
    params: dict[str, Any] = {}
    if roots is not None:
        sql += " AND c.root_id IN :roots"
        params["roots"] = list(roots)
    rows = [
        MissingRow(int(r[0]), str(r[1]), int(r[2]), utc(r[3]), str(r[4]), r[5])
        for r in query(session, sql + " ORDER BY c.root_id, c.file_path", **params)
    ]
    if since is not None:  # compared here: the column is text on SQLite, a timestamp on PG
        rows = [r for r in rows if r.missing_since is not None and r.missing_since >= since]
    return rows
