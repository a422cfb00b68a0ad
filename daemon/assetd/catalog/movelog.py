"""The move history (``asset_moves``, DESIGN §3): where a file renamed away went.

Every move the catalog applies writes one row here in the same transaction: a rename the kernel
reported (``rename``), a directory renamed or moved (``directory``: one row for the directory,
not one per file, so renaming 100,000 files costs one insert), and a pairing made a move (by
``birth-time``, or confirmed by the ``hash``). ``roots move`` relocates a root, not its files,
and writes none. ``assetd why OLD`` follows the rows from ``OLD`` to where the file is now
(:func:`trace_moves`, at most :data:`TRACE_HOPS` hops).

Bounded: the periodic reconcile pass (:func:`prune_moves`) drops rows older than
:data:`KEEP_DAYS` days and all but the last :data:`KEEP_PER_ASSET` rows of each asset.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, literal, or_, select, text

from assetd.catalog.sqlutil import Reader
from assetd.catalog.states import utcnow
from assetd.catalog.tables import UTCDateTime
from assetd.catalog.tables import asset_moves as am
from assetd.catalog.tables import cache_states as cs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

KEEP_DAYS = 90
KEEP_PER_ASSET = 10
TRACE_HOPS = 16


class How:
    """Values of ``asset_moves.how`` (a contract: ``why`` shows them)."""

    RENAME = "rename"  # a rename the kernel reported (inotify's paired MOVED_FROM/MOVED_TO)
    DIRECTORY = "directory"  # a directory renamed or moved: every file below it moved along
    BIRTH = "birth-time"  # a vanished path and a new one with the same inode and birth time
    HASH = "hash"  # a guessed move the hasher confirmed (the same content)


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


@dataclass(frozen=True, slots=True)
class Hop:
    """One move on the way from an old path to the current one."""

    from_path: str  # the path the file had (below a moved directory: the file's own path)
    to_path: str
    moved_at: dt.datetime
    how: str
    directory: str | None = None  # the directory that moved, for a ``directory`` hop

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.from_path,
            "to": self.to_path,
            "moved_at": self.moved_at.isoformat(),
            "how": self.how,
            "directory": self.directory,
        }


def _ancestors(path: str) -> list[str]:
    out = [path]
    while (parent := posixpath.dirname(out[-1])) != out[-1]:
        out.append(parent)
    return out


def trace_moves(session: Reader, path: str, *, roots: Collection[int] | None = None) -> list[Hop]:
    """The moves from ``path`` to where its file is now: the last move out of ``path`` (or out
    of a directory above it), then each later move of where that led; at most
    :data:`TRACE_HOPS`. Empty when the history knows no move of ``path``."""
    hops: list[Hop] = []
    current, after = path, None
    while len(hops) < TRACE_HOPS:
        query = select(am.c.id, am.c.from_path, am.c.to_path, am.c.is_dir, am.c.moved_at, am.c.how)
        query = query.where(
            am.c.from_path.in_(_ancestors(current)),
            or_(am.c.is_dir, am.c.from_path == current),
        )
        if roots is not None:
            query = query.where(am.c.root_id.in_(list(roots)))
        if after is None:  # the last move out of the asked path
            query = query.order_by(am.c.id.desc())
        else:  # then the first move of where it led, after that one
            query = query.where(am.c.id > after).order_by(am.c.id)
        row = session.execute(query.limit(1)).first()
        if row is None:
            break
        to = row.to_path + current[len(row.from_path) :] if row.is_dir else row.to_path
        directory = row.from_path if row.is_dir else None
        hops.append(Hop(current, to, row.moved_at, row.how, directory))
        current, after = to, row.id
    return hops
