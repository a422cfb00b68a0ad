"""Automatic tags (content rule 5): an asset's automatic tags are the union of what its live
paths give, recomputed in a few bulk statements per chunk of assets (after a directory rename
or a move of thousands of files), or for one asset (a hash that merged or split it).

No live path: nothing changes (the tags describe where the content was last seen). A live path
in a root this host does not know (another host's) only adds tags. A tag someone added (any
origin but ``automatic``) is never removed, and a wanted tag an info carries manually stays
manual.

The tags depend on a path's directory only (:data:`~assetd.catalog.metadata.AutoTags`), so the
database gives each asset's distinct directories and each is asked once: an asset of 100,000
copies of one file in ten folders costs ten questions, not 100,000.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from assetd.catalog.metadata import AUTOMATIC, AutoTags
from assetd.catalog.models import asset_info_tags, tags
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import chunked, delete_rows, insert_rows, placeholder, select_in

CHUNK = 1000
"""Assets per round of statements (bounded memory and parameters at any size)."""
CROWDED = 64
"""An asset with more infos than this (copies of one content, each named apart) has the database
find those of its infos whose tags are not already right, instead of reading every tag row."""


def recompute_automatic_tags(session: Session, asset_id: int, auto_tags: AutoTags) -> int:
    """:func:`recompute_automatic_tags_many` for one asset."""
    return recompute_automatic_tags_many(session, [asset_id], auto_tags)


def recompute_automatic_tags_many(
    session: Session, asset_ids: Collection[int], auto_tags: AutoTags, chunk: int = CHUNK
) -> int:
    """Recompute the automatic tags of every asset in ``asset_ids``, ``chunk`` assets at a
    time; returns the number of tag rows added or removed. Runs in the caller's transaction."""
    changed = 0
    for part in chunked(sorted(set(asset_ids)), chunk):
        changed += _recompute_chunk(session, list(part), auto_tags)
    return changed


_DIRS_SQL = (  # each directory with its trailing "/": the path up to its last "/"
    "SELECT DISTINCT asset_id, root_id, rtrim(file_path, replace(file_path, '/', '')) "
    "FROM asset_cache_states WHERE is_missing = {p} AND asset_id {in}"
)
_INFOS_SQL = "SELECT id, asset_id FROM asset_infos WHERE asset_id {in}"
_TAGS_SQL = "SELECT asset_info_id, tag_name, origin FROM asset_info_tags WHERE asset_info_id {in}"


def live_asset_ids(
    session: Session, root_ids: Collection[int], *, after: int = 0, limit: int = CHUNK
) -> list[int]:
    """Up to ``limit`` ids (ascending, above ``after``) of assets with a live path in these
    roots: a keyset page."""
    if not root_ids:
        return []
    query = (
        select(cs.c.asset_id)
        .where(cs.c.root_id.in_(list(root_ids)), cs.c.is_missing == false(), cs.c.asset_id > after)
        .group_by(cs.c.asset_id)
        .order_by(cs.c.asset_id)
        .limit(limit)
    )
    return [int(a) for a in session.execute(query).scalars()]


def _wanted(
    session: Session, ids: list[int], auto_tags: AutoTags
) -> dict[int, tuple[set[str], bool]]:
    """asset id -> (wanted automatic tags, complete) for assets with a live path."""
    out: dict[int, tuple[set[str], bool]] = {}
    for asset_id, root_id, directory in select_in(session, _DIRS_SQL, ids, (False,)):
        wanted, complete = out.get(int(asset_id), (set(), True))
        found = auto_tags(int(root_id), str(directory))
        if found is None:
            complete = False
        else:
            wanted.update(found)
        out[int(asset_id)] = (wanted, complete)
    return out


def _needing_work(session: Session, asset_id: int, want: set[str], complete: bool) -> set[int]:
    """The infos of ``asset_id`` that lack a tag of ``want``, or (``complete``) carry an
    automatic tag not in it: a count by the key of ``asset_info_tags`` per info, in SQL."""
    p, names = placeholder(session), sorted(want)
    holes = ", ".join([p] * len(names))
    tests: list[str] = []
    params: list[object] = [asset_id]
    if names:
        tests.append(
            "(SELECT count(*) FROM asset_info_tags t WHERE t.asset_info_id = i.id "
            f"AND t.tag_name IN ({holes})) < {p}"
        )
        params += [*names, len(names)]
    if complete:
        tests.append(
            "EXISTS (SELECT 1 FROM asset_info_tags t WHERE t.asset_info_id = i.id "
            f"AND t.origin = {p}" + (f" AND t.tag_name NOT IN ({holes}))" if names else ")")
        )
        params += [AUTOMATIC, *names]
    if not tests:
        return set()
    sql = f"SELECT i.id FROM asset_infos i WHERE i.asset_id = {p} AND ({' OR '.join(tests)})"
    rows = session.connection().exec_driver_sql(sql, tuple(params))
    return {int(r[0]) for r in rows}


def _recompute_chunk(session: Session, ids: list[int], auto_tags: AutoTags) -> int:
    wanted = _wanted(session, ids, auto_tags)
    if not wanted:
        return 0
    infos = {int(i): int(a) for i, a in select_in(session, _INFOS_SQL, sorted(wanted))}
    crowded = {a for a, n in Counter(infos.values()).items() if n > CROWDED}
    if crowded:  # their infos whose tags are right are left out, in one pass
        needing = set().union(*(_needing_work(session, a, *wanted[a]) for a in sorted(crowded)))
        infos = {i: a for i, a in infos.items() if i in needing or a not in crowded}
    present: dict[int, dict[str, str]] = {}
    for info_id, tag, origin in select_in(session, _TAGS_SQL, sorted(infos)):
        present.setdefault(int(info_id), {})[str(tag)] = str(origin)
    stale: list[tuple[int, str]] = []
    add: list[tuple[int, str, str]] = []
    for info_id, asset_id in sorted(infos.items()):
        want, complete = wanted[asset_id]
        have = present.get(info_id, {})
        if complete:
            stale += [
                (info_id, t)
                for t, origin in sorted(have.items())
                if origin == AUTOMATIC and t not in want
            ]
        add += [(info_id, t, AUTOMATIC) for t in sorted(want) if t not in have]
    removed = delete_rows(
        session,
        asset_info_tags,
        ("asset_info_id", "tag_name"),
        stale,
        extra=f"origin = '{AUTOMATIC}'",
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
    return removed + len(add)
