"""Moves keep the cache state (and so the asset, its infos and tags): metadata follows a file
or a whole directory at once, within a root or across roots of this host."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.orm import Session

from assetd.catalog.metadata import AutoTags, recompute_automatic_tags
from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import (
    db_value,
    normalize_prefix,
    placeholder,
    select_in,
    under_prefix,
)
from assetd.catalog.states import Reason, utcnow


def move_cache_state(
    session: Session,
    src: str,
    dest: str,
    *,
    src_root: int,
    dest_root: int,
    dest_raw: bytes | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Rewrite the row at ``src`` to ``dest`` (catalog paths); returns whether a row moved.

    A row already standing at ``dest`` is removed first (its file was overwritten); its asset
    and infos stay until ``cleanup``. The moved row keeps its state but is live again if the
    source was marked missing meanwhile (the disk decides later in the batch anyway).
    """
    now = now or utcnow()
    moving = session.execute(
        select(cs.c.id).where(cs.c.root_id == src_root, cs.c.file_path == src)
    ).scalar_one_or_none()
    if moving is None:
        return False
    session.execute(
        delete(cs).where(cs.c.root_id == dest_root, cs.c.file_path == dest, cs.c.id != moving)
    )
    session.execute(
        update(cs)
        .where(cs.c.id == moving)
        .values(
            root_id=dest_root,
            file_path=dest,
            file_path_raw=dest_raw,
            state_changed_at=now,
            state_reason=Reason.MOVED,
        )
    )
    return True


def move_directory(
    session: Session,
    src: str,
    dest: str,
    *,
    src_root: int,
    dest_root: int,
    now: dt.datetime | None = None,
) -> int:
    """Rewrite every row under directory ``src`` to lie under ``dest``, in one statement (plus
    one to clear rows standing where the moved ones land). Returns rows moved.

    Rows with a non-UTF-8 name (``file_path_raw`` set) get their exact bytes rewritten too.
    """
    now = now or utcnow()
    src, dest = normalize_prefix(src), normalize_prefix(dest)
    if src == dest and src_root == dest_root:
        return 0
    cut = len(src) + 1  # 1-based position of the "/" after src
    # rows already under dest that a moved row would land on: their files were overwritten
    landing = cs.alias("landing")
    session.execute(
        delete(cs).where(
            cs.c.root_id == dest_root,
            under_prefix(cs.c.file_path, dest),
            select(landing.c.id)
            .where(
                landing.c.root_id == src_root,
                under_prefix(landing.c.file_path, src),
                literal(dest) + func.substr(landing.c.file_path, cut) == cs.c.file_path,
            )
            .exists(),
        )
    )
    return rewrite_prefix(
        session,
        src_root,
        src,
        dest,
        root_id=dest_root,
        state_changed_at=now,
        state_reason=Reason.MOVED,
    )


def rewrite_prefix(session: Session, in_root: int, old: str, new: str, /, **values: object) -> int:
    """Rewrite ``file_path`` (and the exact bytes in ``file_path_raw``) of every row of root
    ``in_root`` below directory ``old`` to lie below ``new``, in one statement plus one per
    non-UTF-8 name; ``values`` are set on the same rows. Returns rows rewritten."""
    old, new = normalize_prefix(old), normalize_prefix(new)
    cut = len(old) + 1  # 1-based position of the "/" after old
    below = (cs.c.root_id == in_root, under_prefix(cs.c.file_path, old))
    raw_rows = session.execute(
        select(cs.c.id, cs.c.file_path_raw).where(*below, cs.c.file_path_raw.is_not(None))
    ).all()
    result = session.execute(
        update(cs)
        .where(*below)
        .values(file_path=literal(new) + func.substr(cs.c.file_path, cut), **values)
        .execution_options(synchronize_session=False)
    )
    old_b, new_b = os.fsencode(old), os.fsencode(new)
    for row_id, raw in raw_rows:
        data = bytes(raw)
        if data.startswith(old_b):
            session.execute(
                update(cs).where(cs.c.id == row_id).values(file_path_raw=new_b + data[len(old_b) :])
            )
    return int(result.rowcount)  # type: ignore[attr-defined]


_CANDIDATES = (
    "SELECT id, root_id, file_path, file_path_raw, asset_id, device, inode, size_bytes, mtime_ns "
    "FROM asset_cache_states WHERE root_id IN ({roots}) AND is_missing = {{p}} "
    "AND state_changed_at >= {{p}} AND device IS NOT NULL AND inode IS NOT NULL"
)


def _candidates(
    session: Session,
    roots: Collection[int],
    missing: bool,
    since: dt.datetime,
    paths: Sequence[str] | None,
) -> list[tuple[Any, ...]]:
    sql = _CANDIDATES.format(roots=", ".join(str(int(r)) for r in roots))
    if not missing:
        sql += " AND state_reason = {p}"
    params: tuple[Any, ...] = (missing, db_value(session, since))
    if not missing:
        params += (Reason.SEED,)
    if paths is None:
        p = placeholder(session)
        return [tuple(r) for r in session.connection().exec_driver_sql(sql.format(p=p), params)]
    return select_in(session, sql + " AND file_path {in}", sorted(paths), params)


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[5], row[6], row[7], row[8]  # device, inode, size, mtime_ns


def pair_moved_files(
    session: Session,
    *,
    roots: Collection[int],
    since: dt.datetime,
    old_paths: Sequence[str] | None = None,
    new_paths: Sequence[str] | None = None,
) -> list[tuple[str, str, int]]:
    """Moves that arrived as a delete and a create (while the daemon was down, by copy and
    delete, across roots): a row marked missing since ``since`` and a row seeded since then
    with the same (device, inode, size, mtime_ns), each the only match of the other, become
    one: the old row (with its asset, infos and tags) takes the new path, and the fresh seed
    (an unhashed asset nobody has touched) is removed. ``old_paths``/``new_paths`` narrow the
    candidates (a live batch). Returns the (old path, new path, asset id) of each pair.
    """
    if not roots:
        return []
    since = since - dt.timedelta(seconds=1)  # SQLite's CURRENT_TIMESTAMP has whole seconds
    olds = _candidates(session, roots, True, since, old_paths)
    if not olds:
        return []
    news = _candidates(session, roots, False, since, new_paths)
    old_by = Counter(_key(r) for r in olds)
    new_by = {_key(r): r for r in news if old_by[_key(r)] == 1}
    new_count = Counter(_key(r) for r in news)
    done: list[tuple[str, str, int]] = []
    for old in olds:
        k = _key(old)
        seed = new_by.get(k)
        if seed is None or old_by[k] != 1 or new_count[k] != 1 or seed[0] == old[0]:
            continue
        session.execute(delete(cs).where(cs.c.id == seed[0]))
        still_used = session.execute(
            select(cs.c.id).where(cs.c.asset_id == seed[4]).limit(1)
        ).first()
        if still_used is None:  # the seed's own unhashed asset, with its info and tags
            session.execute(delete(assets).where(assets.c.id == seed[4], assets.c.hash.is_(None)))
        session.execute(
            update(cs)
            .where(cs.c.id == old[0])
            .values(
                root_id=seed[1],
                file_path=seed[2],
                file_path_raw=seed[3],
                is_missing=False,
                missing_since=None,
                state_changed_at=utcnow(),
                state_reason=Reason.MOVED,
            )
        )
        done.append((old[2], seed[2], int(old[4])))
    return done


def recompute_tags_after_moves(
    session: Session, asset_ids: Collection[int], auto_tags: AutoTags, limit: int = 1000
) -> int:
    """Automatic tags follow the paths: recompute them for assets whose file moved (to another
    root, or another directory with ``tags_from_dirs``). Above ``limit`` assets (a huge
    directory move) it is left to the next merge or split; returns how many were done."""
    ids = sorted(set(asset_ids))
    if len(ids) > limit:
        return 0
    for asset_id in ids:
        recompute_automatic_tags(session, asset_id, auto_tags)
    return len(ids)
