"""Read queries behind ``assetd why``: everything the catalog holds about one path, the counts
below a directory, and where a file renamed away went (the move history, written by
:mod:`assetd.catalog.movelog`). The roots with their counts and the daemons table, behind
``status``, are :mod:`assetd.catalog.overview`; the missing rows :mod:`assetd.catalog.listing`.
Plain SQL text (:mod:`assetd.catalog.sqltext`): ``why`` reads a SQLite catalog without
importing SQLAlchemy. Nothing here writes."""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from assetd.catalog.overview import RootRow, iso, root_rows
from assetd.catalog.sqltext import TextReader, is_sqlite, prefix_range, query, utc


@dataclass(frozen=True, slots=True)
class InfoFacts:
    id: int
    name: str
    user_metadata: Any
    tags: tuple[tuple[str, str], ...]  # (tag, origin)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "user_metadata": self.user_metadata,
            "tags": [{"name": t, "origin": o} for t, o in self.tags],
        }


@dataclass(frozen=True, slots=True)
class PathFacts:
    """One cache state and what hangs on it: its root, asset, infos and tags, and the other
    paths of the same asset."""

    root: RootRow
    id: int
    path: str
    size: int
    mtime_ns: int
    is_missing: bool
    missing_since: dt.datetime | None
    state_changed_at: dt.datetime | None
    state_reason: str
    needs_verify: bool
    asset_id: int
    hash: str | None
    asset_size: int
    mime_type: str | None
    infos: tuple[InfoFacts, ...] = ()
    other_paths: tuple[tuple[str, bool], ...] = ()  # (path, is_missing), a sample
    other_count: int = 0
    move_candidate: str | None = None  # the vanished path this one may continue (a guess)
    extra: dict[str, object] = field(default_factory=dict)
    path_raw: bytes | None = None  # the exact bytes of a name that is not UTF-8

    def as_dict(self) -> dict[str, object]:
        return {
            "root": self.root.as_dict(),
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "is_missing": self.is_missing,
            "missing_since": iso(self.missing_since),
            "state_changed_at": iso(self.state_changed_at),
            "state_reason": self.state_reason,
            "needs_verify": self.needs_verify,
            "asset": {
                "id": self.asset_id,
                "hash": self.hash,
                "size": self.asset_size,
                "mime_type": self.mime_type,
                "other_paths": [{"path": p, "is_missing": m} for p, m in self.other_paths],
                "other_count": self.other_count,
            },
            "infos": [i.as_dict() for i in self.infos],
            "move_candidate": self.move_candidate,
            **self.extra,
        }


OTHER_PATHS_SAMPLE = 10

_FACTS = (
    "id",
    "root_id",
    "file_path",
    "file_path_raw",
    "size_bytes",
    "mtime_ns",
    "is_missing",
    "missing_since",
    "state_changed_at",
    "state_reason",
    "needs_verify",
    "asset_id",
    "move_candidate_id",
)


def path_facts(session: TextReader, file_path: str) -> list[PathFacts]:
    """Every cache state at ``file_path`` (catalog form; one per root that holds it, usually
    one), with its asset, infos, tags and a sample of the asset's other paths."""
    rows = query(
        session,
        f"SELECT {', '.join('c.' + c for c in _FACTS)}, a.hash, a.size_bytes, a.mime_type "
        "FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
        "WHERE c.file_path = :path ORDER BY c.root_id",
        path=file_path,
    )
    found = []
    for row in rows:
        r = dict(zip(_FACTS, row, strict=False))
        asset_hash, asset_size, mime_type = row[len(_FACTS) :]
        [root] = root_rows(session, ids=[int(r["root_id"])])
        others = query(
            session,
            "SELECT file_path, is_missing FROM asset_cache_states "
            "WHERE asset_id = :asset AND id <> :id ORDER BY is_missing, file_path LIMIT :n",
            asset=r["asset_id"],
            id=r["id"],
            n=OTHER_PATHS_SAMPLE,
        )
        [(other_count,)] = query(
            session,
            "SELECT count(*) FROM asset_cache_states WHERE asset_id = :asset AND id <> :id",
            asset=r["asset_id"],
            id=r["id"],
        )
        candidate = None
        if r["move_candidate_id"] is not None:
            named = query(
                session,
                "SELECT file_path FROM asset_cache_states WHERE id = :id",
                id=r["move_candidate_id"],
            )
            candidate = named[0][0] if named else None
        raw = r["file_path_raw"]
        found.append(
            PathFacts(
                root=root,
                id=int(r["id"]),
                path=r["file_path"],
                size=int(r["size_bytes"]),
                mtime_ns=int(r["mtime_ns"]),
                is_missing=bool(r["is_missing"]),
                missing_since=utc(r["missing_since"]),
                state_changed_at=utc(r["state_changed_at"]),
                state_reason=r["state_reason"],
                needs_verify=bool(r["needs_verify"]),
                asset_id=int(r["asset_id"]),
                hash=asset_hash,
                asset_size=int(asset_size),
                mime_type=mime_type,
                infos=_infos(session, int(r["asset_id"])),
                other_paths=tuple((str(p), bool(m)) for p, m in others),
                other_count=int(other_count),
                move_candidate=candidate,
                path_raw=None if raw is None else bytes(raw),
            )
        )
    return found


def _json(session: TextReader, value: Any) -> Any:
    """A JSON column's value: SQLite returns its text, PostgreSQL's driver the parsed value."""
    return json.loads(value) if is_sqlite(session) and isinstance(value, str) else value


def _infos(session: TextReader, asset_id: int) -> tuple[InfoFacts, ...]:
    infos = query(
        session,
        "SELECT id, name, user_metadata FROM asset_infos WHERE asset_id = :asset ORDER BY name",
        asset=asset_id,
    )
    tag_rows = query(
        session,
        "SELECT asset_info_id, tag_name, origin FROM asset_info_tags "
        "WHERE asset_info_id IN :infos ORDER BY origin, tag_name",
        infos=[i[0] for i in infos],
    )
    by_info: dict[int, list[tuple[str, str]]] = {}
    for info_id, tag, origin in tag_rows:
        by_info.setdefault(int(info_id), []).append((str(tag), str(origin)))
    return tuple(
        InfoFacts(int(i), str(name), _json(session, meta), tuple(by_info.get(int(i), ())))
        for i, name, meta in infos
    )


def count_under(session: TextReader, directory: str) -> tuple[int, int]:
    """``(live, missing)`` cache states below ``directory`` (catalog form), every root."""
    lo, hi = prefix_range(directory)
    live = missing = 0
    for is_missing, n in query(
        session,
        "SELECT is_missing, count(*) FROM asset_cache_states "
        "WHERE file_path >= :lo AND file_path < :hi GROUP BY is_missing",
        lo=lo,
        hi=hi,
    ):
        if is_missing:
            missing += int(n)
        else:
            live += int(n)
    return live, missing


# --- the move history ----------------------------------------------------------------------

TRACE_HOPS = 16


@dataclass(frozen=True, slots=True)
class Hop:
    """One move on the way from an old path to the current one."""

    from_path: str  # the path the file had (below a moved directory: the file's own path)
    to_path: str
    moved_at: dt.datetime
    how: str
    directory: str | None = None  # the directory that moved, for a ``directory`` hop

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.from_path,
            "to": self.to_path,
            "moved_at": self.moved_at.isoformat(),
            "how": self.how,
            "directory": self.directory,
        }


def _ancestors(path: str) -> list[str]:
    out = [path]
    while (parent := posixpath.dirname(out[-1])) != out[-1]:
        out.append(parent)
    return out


def trace_moves(
    session: TextReader, path: str, *, roots: Collection[int] | None = None
) -> list[Hop]:
    """The moves from ``path`` to where its file is now: the last move out of ``path`` (or out
    of a directory above it), then each later move of where that led; at most
    :data:`TRACE_HOPS`. Empty when the history knows no move of ``path``."""
    hops: list[Hop] = []
    current, after = path, None
    while len(hops) < TRACE_HOPS:
        sql = (
            "SELECT id, from_path, to_path, is_dir, moved_at, how FROM asset_moves "
            "WHERE from_path IN :ancestors AND (is_dir = true OR from_path = :current)"
        )
        params: dict[str, Any] = {"ancestors": _ancestors(current), "current": current}
        if roots is not None:
            sql += " AND root_id IN :roots"
            params["roots"] = list(roots)
        if after is None:  # the last move out of the asked path
            sql += " ORDER BY id DESC"
        else:  # then the first move of where it led, after that one
            sql += " AND id > :after ORDER BY id"
            params["after"] = after
        rows = query(session, sql + " LIMIT 1", **params)
        if not rows:
            break
        row_id, from_path, to_path, is_dir, moved_at, how = rows[0]
        to = to_path + current[len(from_path) :] if is_dir else to_path
        directory = from_path if is_dir else None
        moved = utc(moved_at)
        assert moved is not None  # a NOT NULL column
        hops.append(Hop(current, to, moved, how, directory))
        current, after = to, int(row_id)
    return hops
