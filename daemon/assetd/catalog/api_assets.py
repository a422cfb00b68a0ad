"""Read queries behind the HTTP API's asset list: one asset info per entry, ComfyUI's shape.

An entry is an asset info (what a person or app sees) with its content's facts (hash, size,
mime type), its tags and the paths of its content. An info whose content has no live path is
hidden unless ``include_missing``, as every list in assetd. Pages are ordered by the sort key
and the info id (a total order), so a keyset cursor (:class:`Cursor`) resumes exactly where a
page ended, whatever was added or removed meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.orm import Session

from assetd.catalog.models import asset_info_tags, asset_infos, assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.models import roots as roots_table
from assetd.catalog.sqlutil import is_postgresql, under_prefix

SORTS = ("name", "created_at", "updated_at", "size")
_SORT_COLUMNS = {
    "name": asset_infos.c.name,
    "created_at": asset_infos.c.created_at,
    "updated_at": asset_infos.c.updated_at,
    "size": assets.c.size_bytes,
}


@dataclass(frozen=True, slots=True)
class AssetFilter:
    include_tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    name_contains: str | None = None
    in_root: str | None = None
    path_prefix: str | None = None
    include_missing: bool = False


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last entry's sort value and id (keyset pagination)."""

    sort: str
    order: str
    value: Any
    id: int


@dataclass(frozen=True, slots=True)
class PathEntry:
    root: str
    path: str
    is_missing: bool


@dataclass(slots=True)
class AssetEntry:
    id: int
    asset_id: int
    name: str
    hash: str | None
    size: int
    mime_type: str | None
    user_metadata: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    tags: list[str] = field(default_factory=list)
    paths: list[PathEntry] = field(default_factory=list)
    sort_key: Any = None  # the page's sort expression, as the database compared it

    def sort_value(self, sort: str) -> Any:
        """The cursor value of this entry for ``sort`` (JSON-safe)."""
        key = self.sort_key
        return key.isoformat() if isinstance(key, dt.datetime) else key


def _path_matches(flt: AssetFilter) -> ColumnElement[bool]:
    """The info's content has a path (live unless include_missing) matching the filter."""
    conds: list[ColumnElement[bool]] = [cs.c.asset_id == asset_infos.c.asset_id]
    if not flt.include_missing:
        conds.append(cs.c.is_missing == false())
    if flt.in_root is not None:
        conds.append(
            cs.c.root_id.in_(select(roots_table.c.id).where(roots_table.c.name == flt.in_root))
        )
    if flt.path_prefix:
        conds.append(under_prefix(cs.c.file_path, flt.path_prefix))
    return exists(select(cs.c.id).where(*conds))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _name_matches(session: Session, text: str) -> ColumnElement[bool]:
    """The info's name contains ``text``, ignoring case. SQLite's LIKE already ignores ASCII
    case (and its ``lower()`` folds only ASCII too), so the name is compared as stored: the
    column stays readable from an index, and a count skips a ``lower()`` call per row."""
    pattern = f"%{_escape_like(text.lower())}%"
    if is_postgresql(session):
        return func.lower(asset_infos.c.name).like(pattern, escape="\\")
    return asset_infos.c.name.like(pattern, escape="\\")


def _filtered(session: Session, query: Select[Any], flt: AssetFilter) -> Select[Any]:
    """The filter's conditions, cheapest first: the name (one column of the row at hand), then
    the tags, then the live path (a lookup in another table), so the lookups are made only for
    the rows the name and tags kept (SQLite evaluates them in this order)."""
    if flt.name_contains:
        query = query.where(_name_matches(session, flt.name_contains))
    for tag in flt.include_tags:
        query = query.where(
            exists(
                select(asset_info_tags.c.tag_name).where(
                    asset_info_tags.c.asset_info_id == asset_infos.c.id,
                    asset_info_tags.c.tag_name == tag,
                )
            )
        )
    if flt.exclude_tags:
        query = query.where(
            ~exists(
                select(asset_info_tags.c.tag_name).where(
                    asset_info_tags.c.asset_info_id == asset_infos.c.id,
                    asset_info_tags.c.tag_name.in_(list(flt.exclude_tags)),
                )
            )
        )
    return query.where(_path_matches(flt))


def _base() -> Select[Any]:
    return select(
        asset_infos.c.id,
        asset_infos.c.asset_id,
        asset_infos.c.name,
        assets.c.hash,
        assets.c.size_bytes,
        assets.c.mime_type,
        asset_infos.c.user_metadata,
        asset_infos.c.created_at,
        asset_infos.c.updated_at,
    ).join(assets, assets.c.id == asset_infos.c.asset_id)


def count_assets(session: Session, flt: AssetFilter) -> int:
    """The filter's exact total. Counted over ``asset_infos`` alone (no filter needs the
    content's row, and every info has one: a foreign key), so SQLite scans a narrow covering
    index (``asset_id``, ``name``) rather than the table joined to ``assets``."""
    query = _filtered(session, select(func.count()).select_from(asset_infos), flt)
    return int(session.execute(query).scalar_one())


def _raw_text(session: Session, sort: str) -> bool:
    """SQLite keeps timestamps as text in two forms (the server default has no fraction,
    Python's have microseconds): there a timestamp cursor carries the stored text and is
    compared as text, exactly as ORDER BY compares the column (an index on it stays usable)."""
    return sort in ("created_at", "updated_at") and not is_postgresql(session)


def _after(session: Session, sort: str, order: str, cursor: Cursor) -> ColumnElement[bool]:
    column = _SORT_COLUMNS[sort]
    value: Any = cursor.value
    if _raw_text(session, sort):
        value = literal(str(value), type_=Text())
    elif sort in ("created_at", "updated_at"):
        value = dt.datetime.fromisoformat(str(value))
    if order == "asc":
        return or_(column > value, and_(column == value, asset_infos.c.id > cursor.id))
    return or_(column < value, and_(column == value, asset_infos.c.id < cursor.id))


def list_assets(
    session: Session,
    flt: AssetFilter,
    *,
    sort: str = "created_at",
    order: str = "desc",
    limit: int = 20,
    offset: int = 0,
    after: Cursor | None = None,
) -> tuple[list[AssetEntry], bool]:
    """One page of entries and whether more follow (one extra row is read to tell)."""
    column = _SORT_COLUMNS[sort]
    key = type_coerce(column, Text()) if _raw_text(session, sort) else column
    query = _filtered(session, _base().add_columns(key.label("sort_key")), flt)
    if after is not None:
        query = query.where(_after(session, sort, order, after))
    if order == "asc":
        query = query.order_by(column.asc(), asset_infos.c.id.asc())
    else:
        query = query.order_by(column.desc(), asset_infos.c.id.desc())
    query = query.limit(limit + 1).offset(offset)
    rows = session.execute(query).all()
    entries = [_entry(r) for r in rows[:limit]]
    _attach(session, entries, include_missing=flt.include_missing)
    return entries, len(rows) > limit


def _entry(r: Any) -> AssetEntry:
    metadata = r[6] if isinstance(r[6], dict) else {}
    entry = AssetEntry(r[0], r[1], r[2], r[3], int(r[4] or 0), r[5], metadata, r[7], r[8])
    if len(r) > 9:
        entry.sort_key = r[9]
    return entry


def _attach(session: Session, entries: Sequence[AssetEntry], *, include_missing: bool) -> None:
    """Each entry's tags (sorted) and its content's paths (by root and path)."""
    if not entries:
        return
    by_info = {e.id: e for e in entries}
    for info_id, tag in session.execute(
        select(asset_info_tags.c.asset_info_id, asset_info_tags.c.tag_name)
        .where(asset_info_tags.c.asset_info_id.in_(list(by_info)))
        .order_by(asset_info_tags.c.tag_name)
    ):
        by_info[info_id].tags.append(tag)
    by_asset: dict[int, list[AssetEntry]] = {}
    for e in entries:
        by_asset.setdefault(e.asset_id, []).append(e)
    query = (
        select(cs.c.asset_id, roots_table.c.name, cs.c.file_path, cs.c.is_missing)
        .join(roots_table, roots_table.c.id == cs.c.root_id)
        .where(cs.c.asset_id.in_(list(by_asset)))
        .order_by(roots_table.c.name, cs.c.file_path)
    )
    if not include_missing:
        query = query.where(cs.c.is_missing == false())
    for asset_id, root, path, missing in session.execute(query):
        for e in by_asset[asset_id]:
            e.paths.append(PathEntry(root, path, bool(missing)))


def get_asset(session: Session, info_id: int) -> AssetEntry | None:
    """One entry by its info id, every path included (missing ones flagged)."""
    row = session.execute(_base().where(asset_infos.c.id == info_id)).first()
    if row is None:
        return None
    entry = _entry(row)
    _attach(session, [entry], include_missing=True)
    return entry


def hash_exists(session: Session, digest: str) -> bool:
    return session.execute(select(assets.c.id).where(assets.c.hash == digest)).first() is not None


def info_ids_for_paths(session: Session, paths: Sequence[str]) -> dict[str, list[int]]:
    """The asset info ids concerned by each catalogued path (for the change feed)."""
    if not paths:
        return {}
    out: dict[str, list[int]] = {}
    query = (
        select(cs.c.file_path, asset_infos.c.id)
        .join(asset_infos, asset_infos.c.asset_id == cs.c.asset_id)
        # root_id IN (every root) changes no answer but lets the (root_id, file_path) index
        # serve the look-up: without it SQLite scans every info on each live batch
        .where(cs.c.root_id.in_(select(roots_table.c.id)), cs.c.file_path.in_(list(paths)))
        .order_by(asset_infos.c.id)
    )
    for path, info_id in session.execute(query):
        ids = out.setdefault(path, [])
        if info_id not in ids:
            ids.append(info_id)
    return out


def database_answers(session: Session) -> None:
    """A trivial query: raises if the database does not answer."""
    session.execute(select(true())).all()


def cache_states_by_root(session: Session) -> dict[tuple[str, str], int]:
    """(root name, ``live``/``missing``) -> cache states, over every host's roots."""
    query = (
        select(roots_table.c.name, cs.c.is_missing, func.count())
        .join(roots_table, roots_table.c.id == cs.c.root_id)
        .group_by(roots_table.c.name, cs.c.is_missing)
    )
    out: dict[tuple[str, str], int] = {}
    for name, missing, n in session.execute(query):
        key = (str(name), "missing" if missing else "live")
        out[key] = out.get(key, 0) + int(n)
    return out
