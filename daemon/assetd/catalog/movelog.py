"""The move history (``asset_moves``, DESIGN §3): where a file renamed away went.

Every move the catalog applies writes one row here in the same transaction: a rename the kernel
reported (``rename``), a directory renamed or moved (``directory``: one row for the directory,
not one per file, so renaming 100,000 files costs one insert), and a pairing made a move (by
``birth-time``, or confirmed by the ``hash``). ``roots move`` relocates a root, not its files,
and writes none. ``assetd why OLD`` follows the rows from ``OLD`` to where the file is now
(:func:`assetd.catalog.report.trace_moves`, at most
:data:`~assetd.catalog.report.TRACE_HOPS` hops).

Bounded: the periodic reconcile pass (:func:`prune_moves`) drops rows older than
:data:`KEEP_DAYS` days and all but the last :data:`KEEP_PER_ASSET` rows of each asset.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, literal, select, text

from assetd.catalog.states import utcnow
from assetd.catalog.tables import UTCDateTime
from assetd.catalog.tables import asset_moves as am
from assetd.catalog.tables import cache_states as cs
from assetd.catalog.vocab import How as How  # re-exported: the writers import it here

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

KEEP_DAYS = 90
KEEP_PER_ASSET = 10


def record_move(
    session: Session,
    asset_id: int,
    root_id: int,
    src: str,
    dest: str,
    how: str,
    *,
    now: dt.datetime | None = None,
) -> None:
    """One file moved from ``src`` to ``dest`` (catalog paths; ``root_id`` is ``dest``'s)."""
    _insert(session, asset_id, root_id, src, dest, how, now)


def _insert(
    session: Session,
    asset_id: int | None,
    root_id: int,
    src: str,
    dest: str,
    how: str,
    now: dt.datetime | None,
) -> None:
    """One ``asset_moves`` row (``asset_id`` None: a directory)."""
    session.execute(
        insert(am).values(
            asset_id=asset_id,
            root_id=root_id,
            from_path=src,
            to_path=dest,
            is_dir=asset_id is None,
            how=how,
            moved_at=now or utcnow(),
        )
    )


def record_directory_move(
    session: Session, root_id: int, src: str, dest: str, *, now: dt.datetime | None = None
) -> None:
    """A directory moved: one row, whatever number of files lie below it."""
    _insert(session, None, root_id, src, dest, How.DIRECTORY, now)


def record_row_move(
    session: Session, old_row: int, new_row: int, how: str, *, now: dt.datetime | None = None
) -> None:
    """The file of cache state ``old_row`` is the one at ``new_row`` (a pairing): one row, from
    the old path to the new one, on the new row's asset. Call it before ``old_row`` goes."""
    old, new = cs.alias("o"), cs.alias("n")
    session.execute(
        insert(am).from_select(
            ["asset_id", "root_id", "from_path", "to_path", "how", "moved_at"],
            select(
                new.c.asset_id,
                new.c.root_id,
                old.c.file_path,
                new.c.file_path,
                literal(how),
                literal(now or utcnow(), UTCDateTime()),
            )
            .select_from(old.join(new, new.c.id == new_row))
            .where(old.c.id == old_row),
        )
    )


def prune_moves(session: Session, *, now: dt.datetime | None = None) -> int:
    """Drop rows older than :data:`KEEP_DAYS` and all but each asset's last
    :data:`KEEP_PER_ASSET`. Returns rows dropped."""
    cutoff = (now or utcnow()) - dt.timedelta(days=KEEP_DAYS)
    old = session.execute(delete(am).where(am.c.moved_at < cutoff))
    extra = session.execute(
        text(
            "DELETE FROM asset_moves WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY asset_id ORDER BY id DESC) AS rn FROM asset_moves "
            "WHERE asset_id IS NOT NULL) ranked WHERE rn > :keep)"
        ),
        {"keep": KEEP_PER_ASSET},
    )
    return int(old.rowcount) + int(extra.rowcount)  # type: ignore[attr-defined]
