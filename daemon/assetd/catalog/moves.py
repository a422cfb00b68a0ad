"""Moves keep the cache state (and so the asset, its infos and tags): metadata follows a file
or a whole directory at once, within a root or across roots of this host."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection

from sqlalchemy import delete, func, literal, select, true, update
from sqlalchemy.orm import Session

from assetd.catalog.metadata import (
    AutoTags,
    copy_infos,
    drop_pristine_infos,
    merge_assets,
    split_off,
)
from assetd.catalog.models import cache_states as cs
from assetd.catalog.movelog import How, record_directory_move, record_move
from assetd.catalog.sqlutil import normalize_prefix, under_prefix
from assetd.catalog.states import Reason, utcnow
from assetd.catalog.tagsync import recompute_automatic_tags_many


def move_cache_state(
    session: Session,
    src: str,
    dest: str,
    *,
    src_root: int,
    dest_root: int,
    dest_raw: bytes | None = None,
    now: dt.datetime | None = None,
    touched_assets: set[int] | None = None,
) -> bool:
    """Rewrite the row at ``src`` to ``dest`` (catalog paths); returns whether a row moved.

    A row already standing at ``dest`` (``mv y x``, an editor's atomic save) is not dropped:
    the move is an edit of that path (:func:`absorb_row`), which keeps its row and gains what
    was attached to the moved one; the asset it ends on is added to ``touched_assets`` (its
    automatic tags are the caller's to recompute). The moved row keeps its state but is live
    again if the source was marked missing meanwhile (the disk decides later in the batch).
    """
    now = now or utcnow()
    found = session.execute(
        select(cs.c.id, cs.c.asset_id).where(cs.c.root_id == src_root, cs.c.file_path == src)
    ).first()
    if found is None:
        return False
    moving, asset = int(found.id), int(found.asset_id)
    standing = session.execute(
        select(cs.c.id).where(cs.c.root_id == dest_root, cs.c.file_path == dest, cs.c.id != moving)
    ).scalar_one_or_none()
    if standing is not None:
        target = absorb_row(session, standing, moving, now=now)
        if touched_assets is not None:
            touched_assets.add(target)
        record_move(session, target, dest_root, src, dest, How.RENAME, now=now)
        return True
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
    record_move(session, asset, dest_root, src, dest, How.RENAME, now=now)
    return True


def absorb_row(
    session: Session, keep_id: int, moving_id: int, *, now: dt.datetime | None = None
) -> int:
    """A file moved onto a path that has a row: an edit of that path (DESIGN §2).

    The row ``keep_id`` stays (its path is where the file is now) and takes the moved row's
    figures with ``needs_verify``; the moved row ``moving_id`` goes. Its asset's infos and tags
    come along (content rule 2's merge; its *pristine* infos, the ones assetd made and nobody
    touched, are dropped): merged whole if no other path has that asset, as copies if one does.
    If other paths share the kept row's asset, the kept row first splits off (rule 4), so what
    the moved file brings never reaches them. Returns the asset the kept row ends on.
    """
    now = now or utcnow()
    keep = session.execute(select(cs.c.asset_id).where(cs.c.id == keep_id)).scalar_one()
    mov = session.execute(
        select(cs.c.asset_id, cs.c.size_bytes, cs.c.mtime_ns, cs.c.device, cs.c.inode).where(
            cs.c.id == moving_id
        )
    ).one()
    session.execute(delete(cs).where(cs.c.id == moving_id))
    target = int(keep)
    moved_asset = int(mov.asset_id)
    if moved_asset != target:
        if _has_rows(session, target, but=keep_id):
            target = split_off(session, keep_id, target)
        if _has_rows(session, moved_asset):
            copy = copy_infos(session, moved_asset)
            drop_pristine_infos(session, copy)
            merge_assets(session, target, copy)
        else:
            drop_pristine_infos(session, moved_asset)
            merge_assets(session, target, moved_asset)
    session.execute(
        update(cs)
        .where(cs.c.id == keep_id)
        .values(
            size_bytes=mov.size_bytes,
            mtime_ns=mov.mtime_ns,
            device=mov.device,
            inode=mov.inode,
            needs_verify=True,
            is_missing=False,
            missing_since=None,
            move_candidate_id=None,
            state_changed_at=now,
            state_reason=Reason.REPLACED,
        )
    )
    return target


def _has_rows(session: Session, asset_id: int, but: int | None = None) -> bool:
    query = select(cs.c.id).where(cs.c.asset_id == asset_id)
    if but is not None:
        query = query.where(cs.c.id != but)
    return session.execute(query.limit(1)).first() is not None


def move_directory(
    session: Session,
    src: str,
    dest: str,
    *,
    src_root: int,
    dest_root: int,
    now: dt.datetime | None = None,
    touched_assets: set[int] | None = None,
) -> int:
    """Rewrite every row under directory ``src`` to lie under ``dest``, in one statement (plus
    one per row standing where a moved one lands: :func:`absorb_row`). Returns rows moved.

    Rows with a non-UTF-8 name (``file_path_raw`` set) get their exact bytes rewritten too.
    """
    now = now or utcnow()
    src, dest = normalize_prefix(src), normalize_prefix(dest)
    if src == dest and src_root == dest_root:
        return 0
    cut = len(src) + 1  # 1-based position of the "/" after src
    # rows already under dest that a moved row lands on: each is an edit of its path
    landing = cs.alias("landing")
    pairs = session.execute(
        select(cs.c.id, landing.c.id).where(
            cs.c.root_id == dest_root,
            under_prefix(cs.c.file_path, dest),
            landing.c.root_id == src_root,
            under_prefix(landing.c.file_path, src),
            literal(dest) + func.substr(landing.c.file_path, cut) == cs.c.file_path,
        )
    ).all()
    for keep_id, moving_id in pairs:
        target = absorb_row(session, int(keep_id), int(moving_id), now=now)
        if touched_assets is not None:
            touched_assets.add(target)
    moved = len(pairs) + rewrite_prefix(
        session,
        src_root,
        src,
        dest,
        root_id=dest_root,
        state_changed_at=now,
        state_reason=Reason.MOVED,
    )
    if moved:  # one history row for the directory, however many files lie below it
        record_directory_move(session, dest_root, src, dest, now=now)
    return moved


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


def recompute_tags_after_moves(
    session: Session, asset_ids: Collection[int], auto_tags: AutoTags
) -> int:
    """Automatic tags follow the paths: recompute them for assets whose file moved (to another
    root, or another directory with ``tags_from_dirs``), in chunks, however many there are.
    Returns how many assets were looked at."""
    ids = sorted(set(asset_ids))
    recompute_automatic_tags_many(session, ids, auto_tags)
    return len(ids)


def missing_under(session: Session, root_id: int, directory: str) -> list[str]:
    """The paths (as the OS names them: exact bytes decoded) of the missing rows of root
    ``root_id`` below ``directory``: after a directory move, those whose file stands at the new
    path were marked missing in the race between the rename and its batch (a reconcile that
    re-stat'ed them then); the caller lets the disk decide."""
    rows = session.execute(
        select(cs.c.file_path, cs.c.file_path_raw).where(
            cs.c.root_id == root_id,
            cs.c.is_missing == true(),
            under_prefix(cs.c.file_path, directory),
        )
    ).all()
    return [os.fsdecode(raw) if raw is not None else str(path) for path, raw in rows]
