"""Read queries behind ``assetd why``: everything the catalog holds about one path, and the
counts below a directory (the roots with their counts and the daemons table, behind ``status``,
are :mod:`assetd.catalog.overview`; the missing rows :mod:`assetd.catalog.listing`). Nothing
here writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from assetd.catalog.overview import RootRow, iso, root_rows
from assetd.catalog.sqlutil import Reader, under_prefix
from assetd.catalog.tables import asset_info_tags, asset_infos, assets
from assetd.catalog.tables import cache_states as cs

# --- one path ------------------------------------------------------------------------------


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


def path_facts(session: Reader, file_path: str) -> list[PathFacts]:
    """Every cache state at ``file_path`` (catalog form; one per root that holds it, usually
    one), with its asset, infos, tags and a sample of the asset's other paths."""
    rows = session.execute(
        select(cs, assets.c.hash, assets.c.size_bytes.label("asset_size"), assets.c.mime_type)
        .join(assets, assets.c.id == cs.c.asset_id)
        .where(cs.c.file_path == file_path)
        .order_by(cs.c.root_id)
    ).mappings()
    found = []
    for r in rows.all():
        [root] = root_rows(session, ids=[int(r["root_id"])])
        others = session.execute(
            select(cs.c.file_path, cs.c.is_missing)
            .where(cs.c.asset_id == r["asset_id"], cs.c.id != r["id"])
            .order_by(cs.c.is_missing, cs.c.file_path)
            .limit(OTHER_PATHS_SAMPLE)
        ).all()
        other_count = session.execute(
            select(func.count()).where(cs.c.asset_id == r["asset_id"], cs.c.id != r["id"])
        ).scalar_one()
        candidate = None
        if r["move_candidate_id"] is not None:
            candidate = session.execute(
                select(cs.c.file_path).where(cs.c.id == r["move_candidate_id"])
            ).scalar_one_or_none()
        found.append(
            PathFacts(
                root=root,
                id=int(r["id"]),
                path=r["file_path"],
                size=int(r["size_bytes"]),
                mtime_ns=int(r["mtime_ns"]),
                is_missing=bool(r["is_missing"]),
                missing_since=r["missing_since"],
                state_changed_at=r["state_changed_at"],
                state_reason=r["state_reason"],
                needs_verify=bool(r["needs_verify"]),
                asset_id=int(r["asset_id"]),
                hash=r["hash"],
                asset_size=int(r["asset_size"]),
                mime_type=r["mime_type"],
                infos=_infos(session, int(r["asset_id"])),
                other_paths=tuple((str(p), bool(m)) for p, m in others),
                other_count=int(other_count),
                move_candidate=candidate,
                path_raw=r["file_path_raw"],
            )
        )
    return found


def _infos(session: Reader, asset_id: int) -> tuple[InfoFacts, ...]:
    infos = session.execute(
        select(asset_infos.c.id, asset_infos.c.name, asset_infos.c.user_metadata)
        .where(asset_infos.c.asset_id == asset_id)
        .order_by(asset_infos.c.name)
    ).all()
    tag_rows = session.execute(
        select(
            asset_info_tags.c.asset_info_id, asset_info_tags.c.tag_name, asset_info_tags.c.origin
        )
        .where(asset_info_tags.c.asset_info_id.in_([i[0] for i in infos]))
        .order_by(asset_info_tags.c.origin, asset_info_tags.c.tag_name)
    ).all()
    by_info: dict[int, list[tuple[str, str]]] = {}
    for info_id, tag, origin in tag_rows:
        by_info.setdefault(int(info_id), []).append((str(tag), str(origin)))
    return tuple(
        InfoFacts(int(i), str(name), meta, tuple(by_info.get(int(i), ())))
        for i, name, meta in infos
    )


def count_under(session: Reader, directory: str) -> tuple[int, int]:
    """``(live, missing)`` cache states below ``directory`` (catalog form), every root."""
    live = missing = 0
    for is_missing, n in session.execute(
        select(cs.c.is_missing, func.count())
        .where(under_prefix(cs.c.file_path, directory))
        .group_by(cs.c.is_missing)
    ):
        if is_missing:
            missing += int(n)
        else:
            live += int(n)
    return live, missing
