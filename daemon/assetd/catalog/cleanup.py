"""The only hard delete of assets and metadata, on explicit request (``assetd cleanup``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    delete,
    distinct,
    exists,
    false,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.orm import Session, aliased

from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.models import roots as roots_table
from assetd.catalog.sqlutil import chunked
from assetd.catalog.states import UNPLUGGED, utcnow


def _has_state_in(roots: Collection[int]):  # type: ignore[no-untyped-def]
    mine = aliased(cs)
    return exists().where(mine.c.asset_id == assets.c.id, mine.c.root_id.in_(list(roots)))


def get_unreferenced_unhashed_asset_ids(session: Session, *, roots: Collection[int]) -> list[int]:
    """Unhashed assets with a cache state in these roots and no live path anywhere."""
    if not roots:
        return []
    live = aliased(cs)
    query = (
        select(assets.c.id)
        .where(
            assets.c.hash.is_(None),
            _has_state_in(roots),
            ~exists().where(live.c.asset_id == assets.c.id, live.c.is_missing == false()),
        )
        .order_by(assets.c.id)
    )
    return list(session.execute(query).scalars())


def _cleanup_candidates(
    roots: Collection[int], cutoff: dt.datetime, include_unavailable: bool
) -> Select[Any]:
    """Assets whose every path belongs to these roots and has been missing since before cutoff
    (for a reason that counts), and assets with no path at all since before cutoff."""
    other = aliased(cs)
    keeps = [
        other.c.root_id.not_in(list(roots)),  # another root (or host) still references it
        other.c.is_missing == false(),
        other.c.missing_since.is_(None),
        other.c.missing_since >= cutoff,
    ]
    if not include_unavailable:  # only unplugged, unmounted or covered: it may come back
        keeps.append(other.c.state_reason.in_(UNPLUGGED))
    with_paths = select(assets.c.id).where(
        _has_state_in(roots),
        ~exists().where(and_(other.c.asset_id == assets.c.id, or_(*keeps))),
    )
    anywhere = aliased(cs)
    pathless = select(assets.c.id).where(
        assets.c.pathless_since < cutoff,
        ~exists().where(anywhere.c.asset_id == assets.c.id),
    )
    return union(with_paths, pathless).order_by("id")  # type: ignore[return-value]


def find_cleanup_candidates(
    session: Session,
    *,
    roots: Collection[int],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    include_unavailable: bool = False,
) -> list[int]:
    """The ids :func:`cleanup_unreferenced_assets` would delete."""
    cutoff = (now or utcnow()) - older_than
    return [
        int(r[0])
        for r in session.execute(_cleanup_candidates(roots or [-1], cutoff, include_unavailable))
    ]


@dataclass(frozen=True, slots=True)
class CleanupPlan:
    """What a cleanup would delete, and what it keeps back because a root is away."""

    ids: list[int]
    pathless: int  # of ``ids``: assets with no path at all (e.g. after ``roots retire``)
    held: dict[tuple[str, str], int]  # (root name, state_reason) -> assets kept back

    @property
    def held_total(self) -> int:
        return sum(self.held.values())


def plan_cleanup(
    session: Session,
    *,
    roots: Collection[int],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    include_unavailable: bool = False,
) -> CleanupPlan:
    """:func:`find_cleanup_candidates`, with how many of them have no path at all and, per
    root and reason, the assets kept back only because their root is unplugged or covered."""
    now = now or utcnow()
    kw: dict[str, Any] = {"roots": roots, "older_than": older_than, "now": now}
    ids = find_cleanup_candidates(session, include_unavailable=include_unavailable, **kw)
    pathless = 0
    for chunk in chunked(ids):
        pathless += int(
            session.execute(
                select(func.count())
                .select_from(assets)
                .where(
                    assets.c.id.in_(list(chunk)),
                    ~exists().where(cs.c.asset_id == assets.c.id),
                )
            ).scalar_one()
        )
    held: dict[tuple[str, str], int] = {}
    if not include_unavailable:
        chosen = set(ids)
        kept = [i for i in find_cleanup_candidates(session, include_unavailable=True, **kw)]
        kept = [i for i in kept if i not in chosen]
        for chunk in chunked(kept):
            for name, reason, n in session.execute(
                select(roots_table.c.name, cs.c.state_reason, func.count(distinct(cs.c.asset_id)))
                .join(roots_table, roots_table.c.id == cs.c.root_id)
                .where(cs.c.asset_id.in_(list(chunk)), cs.c.state_reason.in_(UNPLUGGED))
                .group_by(roots_table.c.name, cs.c.state_reason)
            ):
                held[(str(name), str(reason))] = held.get((str(name), str(reason)), 0) + int(n)
    return CleanupPlan(ids, pathless, held)


def cleanup_unreferenced_assets(
    session: Session,
    *,
    roots: Collection[int],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    include_unavailable: bool = False,
) -> int:
    """Hard-delete assets (hashed or not) whose every path, all in these roots, has been missing
    for longer than ``older_than``, with their cache states, infos and tags on those infos; and
    assets with no path at all for longer than that (``assets.pathless_since``).

    A path missing only because its root is unplugged, unmounted or covered
    (``root-unavailable``, ``root-covered``) keeps its asset unless ``include_unavailable``. An
    asset any other root or host still references is never deleted. Returns assets deleted.
    """
    ids = find_cleanup_candidates(
        session,
        roots=roots,
        older_than=older_than,
        now=now,
        include_unavailable=include_unavailable,
    )
    for chunk in chunked(ids):
        session.execute(
            delete(assets).where(assets.c.id.in_(list(chunk))),
            execution_options={"synchronize_session": False},
        )
    return len(ids)


def note_pathless(
    session: Session, asset_ids: Collection[int], now: dt.datetime | None = None
) -> int:
    """Stamp ``pathless_since`` on those of these assets that have no path row left (cleanup
    counts them from then); returns how many were stamped."""
    stamp = now or utcnow()
    done = 0
    for chunk in chunked(sorted(set(asset_ids))):
        result = session.execute(
            update(assets)
            .where(
                assets.c.id.in_(list(chunk)),
                assets.c.pathless_since.is_(None),
                ~exists().where(cs.c.asset_id == assets.c.id),
            )
            .values(pathless_since=stamp)
            .execution_options(synchronize_session=False)
        )
        done += max(int(result.rowcount), 0)  # type: ignore[attr-defined]
    return done


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """One asset a cleanup would delete: its last path (None: it has none left), since when it
    is missing (its last path's ``missing_since``, or ``pathless_since``), and its size."""

    asset_id: int
    last_path: str | None
    missing_since: dt.datetime | None
    size: int

    def as_dict(self) -> dict[str, object]:
        since = self.missing_since.isoformat() if self.missing_since else None
        return {
            "asset_id": self.asset_id,
            "last_path": self.last_path,
            "missing_since": since,
            "size": self.size,
        }


def describe_candidates(session: Session, ids: Collection[int]) -> list[CandidateRow]:
    """The rows ``cleanup --dry-run`` lists for these asset ids, in id order."""
    out: list[CandidateRow] = []
    for chunk in chunked(sorted(set(ids))):
        last: dict[int, tuple[str, dt.datetime | None]] = {}
        for asset_id, path, since in session.execute(
            select(cs.c.asset_id, cs.c.file_path, cs.c.missing_since)
            .where(cs.c.asset_id.in_(list(chunk)))
            .order_by(cs.c.asset_id, cs.c.missing_since, cs.c.id)
        ):
            last[int(asset_id)] = (str(path), since)  # the one that went missing last wins
        for asset_id, size, pathless_since in session.execute(
            select(assets.c.id, assets.c.size_bytes, assets.c.pathless_since)
            .where(assets.c.id.in_(list(chunk)))
            .order_by(assets.c.id)
        ):
            path, since = last.get(int(asset_id), (None, pathless_since))
            out.append(CandidateRow(int(asset_id), path, since, int(size or 0)))
    return out
