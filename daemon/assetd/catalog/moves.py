"""Moves keep the cache state (and so the asset, its infos and tags): metadata follows a file
or a whole directory at once, within a root or across roots of this host."""

from __future__ import annotations

import datetime as dt
import os

from sqlalchemy import and_, delete, func, literal, select, update
from sqlalchemy.orm import Session

from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import normalize_prefix, under_prefix
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
    moved_path = literal(dest) + func.substr(cs.c.file_path, cut)
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
    raw_rows = session.execute(
        select(cs.c.id, cs.c.file_path_raw).where(
            cs.c.root_id == src_root,
            under_prefix(cs.c.file_path, src),
            cs.c.file_path_raw.is_not(None),
        )
    ).all()
    result = session.execute(
        update(cs)
        .where(and_(cs.c.root_id == src_root, under_prefix(cs.c.file_path, src)))
        .values(
            root_id=dest_root,
            file_path=moved_path,
            state_changed_at=now,
            state_reason=Reason.MOVED,
        )
        .execution_options(synchronize_session=False)
    )
    if raw_rows:
        src_b, dest_b = os.fsencode(src), os.fsencode(dest)
        for row_id, raw in raw_rows:
            new_raw = dest_b + bytes(raw)[len(src_b) :] if bytes(raw).startswith(src_b) else raw
            session.execute(update(cs).where(cs.c.id == row_id).values(file_path_raw=new_raw))
    return int(result.rowcount)  # type: ignore[attr-defined]
