"""Automatic tags for many assets at once: after a directory rename or a move of thousands of
files, each asset's automatic tags become the union of what its live paths give (content rule
5), in a few bulk statements per chunk of assets instead of several per asset.

The rules are those of :func:`assetd.catalog.metadata.recompute_automatic_tags`: no live path,
nothing changes; a live path in a root this host does not know only adds tags; a tag someone
added (any origin but ``automatic``) is never removed, and a wanted tag an info carries manually
stays manual.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, bindparam, delete, false, select
from sqlalchemy.orm import Session

from assetd.catalog.metadata import AUTOMATIC, AutoTags
from assetd.catalog.models import asset_info_tags, asset_infos, tags
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import chunked, insert_rows

CHUNK = 1000
"""Assets per round of statements (bounded memory and parameters at any size)."""


def recompute_automatic_tags_many(
    session: Session, asset_ids: Collection[int], auto_tags: AutoTags, chunk: int = CHUNK
) -> int:
    """Recompute the automatic tags of every asset in ``asset_ids``, ``chunk`` assets at a
    time; returns the number of tag rows added or removed. Runs in the caller's transaction."""
    changed = 0
    for part in chunked(sorted(set(asset_ids)), chunk):
        changed += _recompute_chunk(session, list(part), auto_tags)
    return changed


def _wanted(
    session: Session, ids: list[int], auto_tags: AutoTags
) -> dict[int, tuple[set[str], bool]]:
    """asset id -> (wanted automatic tags, complete) for assets with a live path."""
    out: dict[int, tuple[set[str], bool]] = {}
    rows = session.execute(
        select(cs.c.asset_id, cs.c.root_id, cs.c.file_path).where(
            cs.c.asset_id.in_(ids), cs.c.is_missing == false()
        )
    )
    for asset_id, root_id, file_path in rows:
        wanted, complete = out.get(int(asset_id), (set(), True))
        found = auto_tags(int(root_id), str(file_path))
        if found is None:
            complete = False
        else:
            wanted.update(found)
        out[int(asset_id)] = (wanted, complete)
    return out


def _recompute_chunk(session: Session, ids: list[int], auto_tags: AutoTags) -> int:
    wanted = _wanted(session, ids, auto_tags)
    if not wanted:
        return 0
    infos: dict[int, int] = {  # info id -> asset id
        int(i): int(a)
        for i, a in session.execute(
            select(asset_infos.c.id, asset_infos.c.asset_id).where(
                asset_infos.c.asset_id.in_(list(wanted))
            )
        )
    }
    present: dict[int, dict[str, str]] = {}
    for info_part in chunked(sorted(infos)):
        for info_id, tag, origin in session.execute(
            select(
                asset_info_tags.c.asset_info_id,
                asset_info_tags.c.tag_name,
                asset_info_tags.c.origin,
            ).where(asset_info_tags.c.asset_info_id.in_(list(info_part)))
        ):
            present.setdefault(int(info_id), {})[str(tag)] = str(origin)
    stale: list[dict[str, object]] = []
    add: list[tuple[int, str, str]] = []
    for info_id, asset_id in sorted(infos.items()):
        want, complete = wanted[asset_id]
        have = present.get(info_id, {})
        if complete:
            stale += [
                {"b_info": info_id, "b_tag": t}
                for t, origin in sorted(have.items())
                if origin == AUTOMATIC and t not in want
            ]
        add += [(info_id, t, AUTOMATIC) for t in sorted(want) if t not in have]
    if stale:
        session.connection().execute(
            delete(asset_info_tags).where(
                and_(
                    asset_info_tags.c.asset_info_id == bindparam("b_info"),
                    asset_info_tags.c.tag_name == bindparam("b_tag"),
                    asset_info_tags.c.origin == AUTOMATIC,
                )
            ),
            stale,
        )
    if add:
        names = sorted({t for _, t, _ in add})
        insert_rows(session, tags, ("name",), [(n,) for n in names], ignore_conflict_on=("name",))
        insert_rows(
            session,
            asset_info_tags,
            ("asset_info_id", "tag_name", "origin"),
            add,
            ignore_conflict_on=("asset_info_id", "tag_name"),
        )
    return len(stale) + len(add)
