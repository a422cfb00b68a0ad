"""Soft-delete operations on cache states: mark missing, restore, refresh changed figures.

Every operation is scoped to the roots passed in (``roots=``, the ids this host owns), sorts its
paths, and issues one bulk statement per chunk below the bound-parameter limit.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Boolean, bindparam, false, update

from assetd.catalog.sqltext import utcnow as utcnow  # re-exported: its users import it here
from assetd.catalog.sqlutil import (
    column_in,
    db_value,
    is_postgresql,
    select_in,
    sorted_unique,
    under_prefix,
    update_in,
    updated_in,
)
from assetd.catalog.tables import cache_states as cs
from assetd.catalog.vocab import Reason as Reason  # re-exported: its users import it here

SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
"""Whether the SQLite library has ``UPDATE ... RETURNING`` (3.35, March 2021)."""

if TYPE_CHECKING:  # the ORM only for typing: a Core caller does not load it
    from sqlalchemy.orm import Session


UNPLUGGED = (Reason.ROOT_UNAVAILABLE, Reason.ROOT_COVERED)
"""Reasons a path is missing only because its root is away: ``cleanup`` never counts them
unless asked (``--include-unavailable``)."""


class FileFigures(Protocol):
    """What restore needs to know of a file on disk (``fsutil.FileStat`` fits)."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Figures:
    path: str
    size: int
    mtime_ns: int
    device: int | None = None
    inode: int | None = None
    is_symlink: bool | None = None  # None: unknown (keep the row's)
    birth_ns: int | None = None  # statx birth time; None: unknown (keep the row's, same inode)


def lock_cache_states(session: Session, root_id: int, paths: Iterable[str]) -> None:
    """Open the caller's write transaction and hold the rows at these paths until it ends, so
    facts read from the disk after this call are no older than what gets written.

    SQLite: the transaction's ``BEGIN IMMEDIATE`` holds the write lock (no row locks needed).
    PostgreSQL: ``SELECT ... FOR UPDATE`` in path order (the order every writer takes them);
    a live batch writing one of these rows waits for this commit, or has committed already.
    """
    session.connection()  # the transaction begins here, not at the first write
    if not is_postgresql(session):
        return
    sql = (
        "SELECT id FROM asset_cache_states WHERE root_id = {p} AND file_path {in} "
        "ORDER BY file_path FOR UPDATE"
    )
    select_in(session, sql, sorted(set(paths)), (root_id,))


def bulk_update_is_missing(
    session: Session,
    file_paths: Iterable[str],
    is_missing: bool,
    *,
    roots: Collection[int],
    reason: str = Reason.LIVE,
    now: dt.datetime | None = None,
) -> int:
    """Set (or clear) ``is_missing`` on the cache states at these paths; returns rows changed.

    Rows already in the requested state are not written (their ``missing_since`` stays).
    """
    if not roots:
        return 0
    now = now or utcnow()
    paths = sorted_unique(file_paths)
    roots_sql = ", ".join(str(int(r)) for r in roots)
    sql = (
        "UPDATE asset_cache_states SET is_missing = {p}, missing_since = {p}, "
        "state_changed_at = {p}, state_reason = {p} "
        f"WHERE root_id IN ({roots_sql}) AND is_missing = {{p}} AND file_path {{in}}"
    )
    stamp = db_value(session, now)
    params = (is_missing, stamp if is_missing else None, stamp, reason, not is_missing)
    return update_in(session, sql, paths, params)


def mark_paths_missing(
    session: Session,
    file_paths: Iterable[str],
    *,
    roots: Collection[int],
    reason: str = Reason.LIVE,
    now: dt.datetime | None = None,
) -> list[str]:
    """:func:`bulk_update_is_missing` to missing, returning the paths it marked: those that had
    a live row (the live worker treats the others as possibly directories).

    One ``UPDATE ... RETURNING`` per chunk (PostgreSQL: a SELECT of the live rows first was a
    fifth of a 100,000-deletion burst, another scan of the table; SQLite: a quarter of the
    statements' time). On SQLite, for one root, a chunk whose every path had a live row is not
    read back (:func:`~assetd.catalog.sqlutil.updated_in`). SQLite before 3.35 has no
    RETURNING: the SELECT, then the UPDATE.
    """
    paths = sorted_unique(file_paths)
    if not roots or not paths:
        return []
    roots_sql = ", ".join(str(int(r)) for r in roots)
    # each path is looked up through UNIQUE (root_id, file_path), never by a walk of the
    # root's rows (test_marking_a_few_paths_missing_does_not_visit_every_row_of_the_root)
    where = f"WHERE root_id IN ({roots_sql}) AND is_missing = {{p}} AND file_path {{in}}"
    if not is_postgresql(session) and not SQLITE_RETURNING:
        select = f"SELECT file_path FROM asset_cache_states {where}"
        live = [r[0] for r in select_in(session, select, paths, (False,))]
        bulk_update_is_missing(session, live, True, roots=roots, reason=reason, now=now)
        return live
    stamp = db_value(session, now or utcnow())
    sql = (
        "UPDATE asset_cache_states SET is_missing = true, missing_since = {p}, "
        f"state_changed_at = {{p}}, state_reason = {{p}} {where} RETURNING file_path"
    )
    if len(roots) == 1:  # a path names one row of a root: its chunks count, read nothing back
        return updated_in(session, sql, paths, (stamp, stamp, reason, False))
    return column_in(session, sql, paths, (stamp, stamp, reason, False))


def _fig(f: FileFigures, name: str) -> int | None:
    value = getattr(f, name, None)
    return int(value) if value is not None else None


def refresh_cache_states(
    session: Session,
    files: Iterable[FileFigures],
    *,
    roots: Collection[int],
    only_missing: bool = False,
    reason: str = Reason.LIVE,
    now: dt.datetime | None = None,
    restored_paths: list[str] | None = None,
) -> tuple[int, int]:
    """Bring the rows at these paths in line with the given figures: restore missing ones, and
    give rows whose size or mtime differ the new figures and ``needs_verify``.

    Returns ``(restored, changed)``; a row both restored and changed counts in both. A sample
    of restored paths (at most 20) is appended to ``restored_paths`` if given.
    """
    if not roots:
        return 0, 0
    now = now or utcnow()
    by_path = {f.path: f for f in files}
    paths = sorted(by_path)
    root_ids = list(roots)
    restored = changed = 0
    roots_sql = ", ".join(str(int(r)) for r in root_ids)
    sql = (
        "SELECT id, file_path, size_bytes, mtime_ns, device, inode, is_missing, is_symlink, "
        "birth_ns "
        f"FROM asset_cache_states WHERE root_id IN ({roots_sql}) "
        + ("AND is_missing = {p} " if only_missing else "")
        + "AND file_path {in}"
        # PostgreSQL: hold the rows, so a reconcile deciding on them waits or went first
        + (" ORDER BY file_path FOR UPDATE" if is_postgresql(session) else "")
    )
    plain_restore: list[int] = []
    rewrites: list[dict[str, object]] = []
    rows = select_in(session, sql, paths, (True,) if only_missing else ())
    for row in rows:
        row_id, row_path, row_size, row_mtime, row_device, row_inode, row_missing = row[:7]
        row_link, row_birth = row[7], row[8]
        f = by_path[row_path]
        link = getattr(f, "is_symlink", None)
        link = bool(row_link) if link is None else link
        differs = row_size != f.size or row_mtime != f.mtime_ns or link != bool(row_link)
        device, inode = _fig(f, "device"), _fig(f, "inode")
        moved_inode = (device is not None and device != row_device) or (
            inode is not None and inode != row_inode
        )
        if row_missing:
            restored += 1
            if restored_paths is not None and len(restored_paths) < 20:
                restored_paths.append(row_path)
        if differs:
            changed += 1
        birth = _fig(f, "birth_ns")
        if birth is None and not moved_inode:
            birth = row_birth  # unknown: the same inode keeps the one it had
        if differs or moved_inode or birth != row_birth:
            rewrites.append(
                {
                    "b_id": row_id,
                    "b_size": f.size,
                    "b_mtime": f.mtime_ns,
                    "b_device": device if device is not None else row_device,
                    "b_inode": inode if inode is not None else row_inode,
                    "b_link": link,
                    "b_birth": birth,
                    "b_verify": differs,
                    "b_reason": reason if (row_missing or differs) else None,
                }
            )
        elif row_missing:
            plain_restore.append(row_id)
    if plain_restore:
        stamp = db_value(session, now)
        update_in(
            session,
            "UPDATE asset_cache_states SET is_missing = {p}, missing_since = NULL, "
            "state_changed_at = {p}, state_reason = {p} WHERE id {in}",
            sorted(plain_restore),
            (False, stamp, reason),
        )
    if rewrites:
        _rewrite_figures(session, rewrites, now)
    return restored, changed


def _rewrite_figures(session: Session, rewrites: list[dict[str, object]], now: dt.datetime) -> None:
    with_reason = [r for r in rewrites if r["b_reason"] is not None]
    quiet = [r for r in rewrites if r["b_reason"] is None]
    base = update(cs).where(cs.c.id == bindparam("b_id"))
    figures: dict[str, Any] = {
        "size_bytes": bindparam("b_size"),
        "mtime_ns": bindparam("b_mtime"),
        "device": bindparam("b_device"),
        "inode": bindparam("b_inode"),
        "is_symlink": bindparam("b_link", type_=Boolean),
        "birth_ns": bindparam("b_birth"),
    }
    conn = session.connection()
    if with_reason:
        stmt = base.values(
            **figures,
            needs_verify=cs.c.needs_verify
            | bindparam("b_verify", type_=Boolean),  # never cleared here
            is_missing=False,
            missing_since=None,
            state_changed_at=now,
            state_reason=bindparam("b_reason"),
        )
        conn.execute(stmt, with_reason)
    if quiet:  # same content figures, another inode (replaced by a copy) or birth: no state change
        conn.execute(base.values(**figures), quiet)


def restore_cache_states_by_paths(
    session: Session,
    files: Iterable[FileFigures],
    *,
    roots: Collection[int],
    reason: str = Reason.LIVE,
    now: dt.datetime | None = None,
) -> int:
    """Restore the missing cache states at these paths; returns how many were restored.

    A restored row whose file differs (size or mtime_ns) gets the new figures and
    ``needs_verify``, so the hasher checks whether its content changed.
    """
    restored, _ = refresh_cache_states(
        session, files, roots=roots, only_missing=True, reason=reason, now=now
    )
    return restored


def mark_missing_under(
    session: Session,
    directories: Iterable[str],
    *,
    roots: Collection[int],
    reason: str = Reason.LIVE,
    now: dt.datetime | None = None,
) -> int:
    """Mark every live cache state below these directories missing (a directory deleted or
    moved out of every root); one range statement per directory."""
    if not roots:
        return 0
    now = now or utcnow()
    changed = 0
    for directory in sorted(set(directories)):
        stmt = (
            update(cs)
            .where(
                cs.c.root_id.in_(list(roots)),
                cs.c.is_missing == false(),
                under_prefix(cs.c.file_path, directory),
            )
            .values(is_missing=True, missing_since=now, state_changed_at=now, state_reason=reason)
            .execution_options(synchronize_session=False)
        )
        changed += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return changed
