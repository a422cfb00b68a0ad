"""Writes and tag queries behind the HTTP API: tags on an info, renaming an info, its metadata.

Tags added here are ``origin = 'manual'``: a person's or a program's, which nothing in assetd
removes (DESIGN §4). Automatic tags are the daemon's own (recomputed from live paths), so they
cannot be removed here: a request to is answered with them listed as ``protected``. All
functions run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from assetd.catalog.metadata import AUTOMATIC, MANUAL
from assetd.catalog.models import asset_info_tags, asset_infos, tags
from assetd.catalog.sqlutil import insert_rows
from assetd.catalog.states import utcnow


class InfoNotFound(LookupError):
    """No asset info has this id."""


class NameTaken(ValueError):
    """Another info of the same content already has this name (unique per asset)."""


@dataclass(slots=True)
class TagChange:
    changed: list[str] = field(default_factory=list)  # added / removed
    unchanged: list[str] = field(default_factory=list)  # already_present / not_present
    protected: list[str] = field(default_factory=list)  # automatic: not removable here
    total: list[str] = field(default_factory=list)


def list_tags(
    session: Session, *, prefix: str | None, limit: int, offset: int, order: str
) -> tuple[list[tuple[str, int]], int]:
    """Tags with the number of infos carrying each (zero counts included), and the total."""
    usage = (
        select(asset_info_tags.c.tag_name, func.count().label("n"))
        .group_by(asset_info_tags.c.tag_name)
        .subquery()
    )
    count = func.coalesce(usage.c.n, 0)
    query = select(tags.c.name, count).outerjoin(usage, usage.c.tag_name == tags.c.name)
    total_q = select(func.count()).select_from(tags)
    if prefix:
        query = query.where(tags.c.name.startswith(prefix, autoescape=True))
        total_q = total_q.where(tags.c.name.startswith(prefix, autoescape=True))
    if order == "name_asc":
        query = query.order_by(tags.c.name)
    else:
        query = query.order_by(count.desc(), tags.c.name)
    rows = session.execute(query.limit(limit).offset(offset)).all()
    return [(str(r[0]), int(r[1])) for r in rows], int(session.execute(total_q).scalar_one())


def _tags_of(session: Session, info_id: int) -> dict[str, str]:
    rows = session.execute(
        select(asset_info_tags.c.tag_name, asset_info_tags.c.origin)
        .where(asset_info_tags.c.asset_info_id == info_id)
        .order_by(asset_info_tags.c.tag_name)
    )
    return {str(name): str(origin) for name, origin in rows}


def _require(session: Session, info_id: int) -> None:
    found = session.execute(select(asset_infos.c.id).where(asset_infos.c.id == info_id)).first()
    if found is None:
        raise InfoNotFound(info_id)


def add_manual_tags(session: Session, info_id: int, names: Sequence[str]) -> TagChange:
    _require(session, info_id)
    present = _tags_of(session, info_id)
    result = TagChange()
    for name in dict.fromkeys(names):
        (result.unchanged if name in present else result.changed).append(name)
    if result.changed:
        insert_rows(
            session, tags, ("name",), [(t,) for t in result.changed], ignore_conflict_on=("name",)
        )
        insert_rows(
            session,
            asset_info_tags,
            ("asset_info_id", "tag_name", "origin"),
            [(info_id, t, MANUAL) for t in result.changed],
            ignore_conflict_on=("asset_info_id", "tag_name"),
        )
        _touch(session, info_id)
    result.total = sorted(_tags_of(session, info_id))
    return result


def remove_tags(session: Session, info_id: int, names: Sequence[str]) -> TagChange:
    """Remove non-automatic tags; automatic ones are listed as protected and kept."""
    _require(session, info_id)
    present = _tags_of(session, info_id)
    result = TagChange()
    for name in dict.fromkeys(names):
        if name not in present:
            result.unchanged.append(name)
        elif present[name] == AUTOMATIC:
            result.protected.append(name)
        else:
            result.changed.append(name)
    if result.changed:
        session.execute(
            delete(asset_info_tags).where(
                asset_info_tags.c.asset_info_id == info_id,
                asset_info_tags.c.tag_name.in_(result.changed),
            )
        )
        _touch(session, info_id)
    result.total = sorted(_tags_of(session, info_id))
    return result


def _touch(session: Session, info_id: int) -> None:
    session.execute(
        update(asset_infos).where(asset_infos.c.id == info_id).values(updated_at=utcnow())
    )


def update_info(
    session: Session, info_id: int, *, name: str | None, user_metadata: dict[str, Any] | None
) -> None:
    """Rename an info and/or replace its user_metadata; ``NameTaken`` if the content already
    has an info of that name."""
    row = session.execute(
        select(asset_infos.c.asset_id, asset_infos.c.name).where(asset_infos.c.id == info_id)
    ).first()
    if row is None:
        raise InfoNotFound(info_id)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if name is not None and name != row[1]:
        clash = session.execute(
            select(asset_infos.c.id).where(
                asset_infos.c.asset_id == row[0], asset_infos.c.name == name
            )
        ).first()
        if clash is not None:
            raise NameTaken(name)
        values["name"] = name
    if user_metadata is not None:
        values["user_metadata"] = user_metadata
    session.execute(update(asset_infos).where(asset_infos.c.id == info_id).values(**values))
