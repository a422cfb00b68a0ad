"""Moving what people wrote between assets without losing any of it (DESIGN §4): merging two
assets into one, and splitting a path off with copies of its metadata (the automatic tags
are recomputed from live paths by :mod:`assetd.catalog.tagsync`).

Merging never drops what a user wrote: infos with the same name merge their tags (a tag on both
stays manual if either had it manual) and their metadata (survivor's keys win; the merged info's
conflicting values are kept under ``"merged_from_<merged asset id>"``). Tags with
``origin = 'automatic'`` are the daemon's own and are recomputed from live paths; any other
origin is a person's or a program's and is never removed. All functions run in the caller's
transaction.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any, TypeAlias

from sqlalchemy import (
    CursorResult,
    Text,
    and_,
    cast,
    delete,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from assetd.catalog.models import asset_info_tags, asset_infos, asset_moves, assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import chunked
from assetd.catalog.states import utcnow

AUTOMATIC = "automatic"
MANUAL = "manual"
MERGED_FROM = "merged_from_{}"
"""Key under which a merge keeps the merged info's conflicting metadata values."""

AutoTags: TypeAlias = Callable[[int, str], "tuple[str, ...] | None"]
"""``(root_id, file_path) -> automatic tags`` of a path; ``None`` for a root this host does not
know (another host's), whose automatic tags are then left as they are. They depend on the
path's directory only (a root's tags, its directory names): a directory with a trailing ``/``
stands for every file in it (:mod:`assetd.catalog.tagsync` asks once per directory)."""


def copy_infos(session: Session, asset_id: int) -> int:
    """A new, unhashed asset carrying copies of ``asset_id``'s infos (name, user_metadata) and
    their non-automatic tags; returns its id. Automatic tags are the caller's to recompute."""
    created = typing.cast(CursorResult[Any], session.execute(insert(assets).values(size_bytes=0)))
    key = created.inserted_primary_key  # lastrowid on SQLite: no RETURNING needed
    assert key is not None
    new_id = int(key[0])
    session.execute(  # created_at, updated_at: the server-side default (now)
        insert(asset_infos).from_select(
            ["asset_id", "name", "user_metadata"],
            select(
                literal(new_id, type_=asset_infos.c.asset_id.type),
                asset_infos.c.name,
                asset_infos.c.user_metadata,
            ).where(asset_infos.c.asset_id == asset_id),
        )
    )
    old, new = asset_infos.alias("old_info"), asset_infos.alias("new_info")
    session.execute(
        insert(asset_info_tags).from_select(
            ["asset_info_id", "tag_name", "origin", "added_at"],
            select(
                new.c.id,
                asset_info_tags.c.tag_name,
                asset_info_tags.c.origin,
                asset_info_tags.c.added_at,
            )
            .select_from(
                asset_info_tags.join(old, old.c.id == asset_info_tags.c.asset_info_id).join(
                    new, and_(new.c.name == old.c.name, new.c.asset_id == new_id)
                )
            )
            .where(old.c.asset_id == asset_id, asset_info_tags.c.origin != AUTOMATIC),
        )
    )
    return new_id


def split_off(session: Session, cache_state_id: int, asset_id: int) -> int:
    """Move this cache state to a new, unhashed asset carrying copies of ``asset_id``'s infos
    (:func:`copy_infos`); returns the new asset's id.

    Automatic tags are not copied: the caller recomputes them for both assets.
    """
    new_id = copy_infos(session, asset_id)
    session.execute(update(cs).where(cs.c.id == cache_state_id).values(asset_id=new_id))
    return new_id


def drop_pristine_infos(session: Session, asset_id: int) -> int:
    """Delete the infos of ``asset_id`` nobody attached anything to: no user_metadata and only
    automatic tags (the info assetd made for a new file, named after it). Used before such an
    asset merges into the one it turned out to continue, so a rename or an atomic save does not
    leave an info named after every temporary file. Returns infos deleted."""
    meta_text = cast(asset_infos.c.user_metadata, Text)
    rows = session.execute(
        select(asset_infos.c.id, meta_text).where(asset_infos.c.asset_id == asset_id)
    ).all()
    candidates = [int(i) for i, meta in rows if _empty(_load(meta)[0])]
    if not candidates:
        return 0
    tagged = set(
        session.execute(
            select(asset_info_tags.c.asset_info_id).where(
                asset_info_tags.c.asset_info_id.in_(candidates),
                asset_info_tags.c.origin != AUTOMATIC,
            )
        ).scalars()
    )
    pristine = [i for i in candidates if i not in tagged]
    if pristine:
        session.execute(delete(asset_infos).where(asset_infos.c.id.in_(pristine)))
    return len(pristine)


# --------------------------------------------------------------------------- merge


def _load(text_value: str | None) -> tuple[Any, bool]:
    """A stored user_metadata value and whether it could be parsed (None for SQL NULL)."""
    if text_value is None:
        return None, True
    try:
        return json.loads(text_value), True
    except ValueError:
        return text_value, False


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == ""


def merge_metadata(survivor: Any, merged: Any, merged_asset_id: int) -> tuple[Any, bool]:
    """``(value, mergeable)``: the survivor's metadata with the merged info's folded in.

    Both dicts: keys only the merged one has are added; a key both have with different values
    keeps the survivor's, and the merged values of such keys are kept together under
    ``"merged_from_<merged_asset_id>"`` (``_2``, ``_3``... if taken). Either side empty: the
    other. Anything else that differs (a list, a scalar, unparsable text) is not mergeable: the
    caller keeps the merged info whole instead.
    """
    if _empty(merged) or merged == survivor:
        return survivor, True
    if _empty(survivor):
        return merged, True
    if not (isinstance(survivor, dict) and isinstance(merged, dict)):
        return survivor, False
    out = dict(survivor)
    conflicts: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in out:
            out[key] = value
        elif out[key] != value:
            conflicts[key] = value
    if conflicts:
        key, n = MERGED_FROM.format(merged_asset_id), 1
        while key in out:
            n += 1
            key = f"{MERGED_FROM.format(merged_asset_id)}_{n}"
        out[key] = conflicts
    return out, True


def merge_assets(session: Session, survivor_id: int, merged_id: int) -> None:
    """Merge asset ``merged_id`` into ``survivor_id`` (one content, one asset), then delete the
    emptied ``merged_id``.

    Cache states and infos move to the survivor. An info whose name the survivor already has is
    folded into the survivor's info (tags unioned, manual winning over automatic; metadata
    merged by :func:`merge_metadata`) and deleted; if its metadata cannot be merged it moves
    across whole, renamed ``"<name> (merged from asset <id>)"``. Nothing a user wrote is lost.
    Automatic tags are left to the caller
    (:func:`assetd.catalog.tagsync.recompute_automatic_tags`).
    """
    if survivor_id == merged_id:
        return
    session.execute(update(cs).where(cs.c.asset_id == merged_id).values(asset_id=survivor_id))
    session.execute(  # it has paths again, or will: cleanup counts from its next loss
        update(assets)
        .where(assets.c.id == survivor_id, assets.c.pathless_since.is_not(None))
        .values(pathless_since=None)
    )
    meta_text = cast(asset_infos.c.user_metadata, Text)
    merged_infos = session.execute(
        select(asset_infos.c.id, asset_infos.c.name, meta_text.label("meta"))
        .where(asset_infos.c.asset_id == merged_id)
        .order_by(asset_infos.c.id)
    ).all()
    # only the survivor's infos of those names: an asset of many copies has an info per name
    survivor_infos: dict[str, tuple[int, str | None]] = {}
    for names in chunked(sorted({info.name for info in merged_infos})):
        survivor_infos.update(
            (r.name, (r.id, r.meta))
            for r in session.execute(
                select(asset_infos.c.id, asset_infos.c.name, meta_text.label("meta")).where(
                    asset_infos.c.asset_id == survivor_id, asset_infos.c.name.in_(names)
                )
            )
        )
    moving: list[int] = []
    now = utcnow()
    for info in merged_infos:
        if info.name not in survivor_infos:
            moving.append(info.id)
            continue
        s_id, s_text = survivor_infos[info.name]
        s_meta, s_ok = _load(s_text)
        m_meta, m_ok = _load(info.meta)
        value, mergeable = merge_metadata(s_meta, m_meta, merged_id)
        if not (s_ok and m_ok and mergeable):
            name = _free_name(session, survivor_id, f"{info.name} (merged from asset {merged_id})")
            session.execute(
                update(asset_infos)
                .where(asset_infos.c.id == info.id)
                .values(asset_id=survivor_id, name=name, updated_at=now)
            )
            continue
        _merge_tags(session, s_id, info.id)
        if value != s_meta:
            session.execute(
                update(asset_infos)
                .where(asset_infos.c.id == s_id)
                .values(user_metadata=value, updated_at=now)
            )
        session.execute(delete(asset_infos).where(asset_infos.c.id == info.id))
    for chunk in chunked(moving):
        session.execute(
            update(asset_infos)
            .where(asset_infos.c.id.in_(list(chunk)))
            .values(asset_id=survivor_id, updated_at=now)
        )
    # the move history follows too (its rows would go with the merged asset)
    session.execute(
        update(asset_moves).where(asset_moves.c.asset_id == merged_id).values(asset_id=survivor_id)
    )
    session.execute(delete(assets).where(assets.c.id == merged_id))


def _free_name(session: Session, asset_id: int, wanted: str) -> str:
    taken = set(
        session.execute(
            select(asset_infos.c.name).where(
                asset_infos.c.asset_id == asset_id, asset_infos.c.name.startswith(wanted)
            )
        ).scalars()
    )
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted} {n}"
    return name


def _merge_tags(session: Session, survivor_info: int, merged_info: int) -> None:
    """Union the merged info's tags onto the survivor's info; a tag both carry becomes the
    merged one's origin if that is not automatic (manual wins). Keeps ``added_at``."""
    have: dict[str, str] = {
        r.tag_name: r.origin
        for r in session.execute(
            select(asset_info_tags.c.tag_name, asset_info_tags.c.origin).where(
                asset_info_tags.c.asset_info_id == survivor_info
            )
        )
    }
    rows = session.execute(
        select(
            asset_info_tags.c.tag_name, asset_info_tags.c.origin, asset_info_tags.c.added_at
        ).where(asset_info_tags.c.asset_info_id == merged_info)
    ).all()
    for tag_name, origin, added_at in rows:
        if tag_name not in have:
            session.execute(
                insert(asset_info_tags).values(
                    asset_info_id=survivor_info,
                    tag_name=tag_name,
                    origin=origin,
                    added_at=added_at,
                )
            )
        elif have[tag_name] == AUTOMATIC and origin != AUTOMATIC:
            session.execute(
                update(asset_info_tags)
                .where(
                    asset_info_tags.c.asset_info_id == survivor_info,
                    asset_info_tags.c.tag_name == tag_name,
                )
                .values(origin=origin)
            )
