"""The only hard delete of assets and metadata, on explicit request (``assetd cleanup``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, and_, delete, exists, false, or_, select
from sqlalchemy.orm import Session, aliased

from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import chunked
from assetd.catalog.states import Reason, utcnow


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


_AWAY = (Reason.ROOT_UNAVAILABLE, Reason.ROOT_COVERED)


def _cleanup_candidates(
    roots: Collection[int], cutoff: dt.datetime, include_unavailable: bool = False
) -> Select[Any]:
    """Assets whose every path belongs to these roots and has been missing since before cutoff
    (a path missing because its root is unavailable or covered keeps its asset, unless
    ``include_unavailable``: an unplugged disk is not a deletion)."""
    other = aliased(cs)
    keeps = or_(
        other.c.root_id.not_in(list(roots)),  # another root (or host) still references it
        other.c.is_missing == false(),
        other.c.missing_since.is_(None),
        other.c.missing_since >= cutoff,
        *(() if include_unavailable else (other.c.state_reason.in_(_AWAY),)),
    )
    return (
        select(assets.c.id)
        .where(
            _has_state_in(roots),
            ~exists().where(and_(other.c.asset_id == assets.c.id, keeps)),
        )
        .order_by(assets.c.id)
    )


def find_cleanup_candidates(
    session: Session,
    *,
    roots: Collection[int],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    include_unavailable: bool = False,
) -> list[int]:
    if not roots:
        return []
    cutoff = (now or utcnow()) - older_than
    query = _cleanup_candidates(roots, cutoff, include_unavailable)
    return list(session.execute(query).scalars())


def cleanup_unreferenced_assets(
    session: Session,
    *,
    roots: Collection[int],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    include_unavailable: bool = False,
) -> int:
    """Hard-delete assets (hashed or not) whose every path, all in these roots, has been missing
    for longer than ``older_than``, with their cache states, infos and tags on those infos.

    An asset any other root or host still references is never deleted, nor one with a path
    missing because its root is unavailable or covered (``root-unavailable``,
    ``root-covered``) unless ``include_unavailable``. Returns assets deleted.
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
