"""The rescan after lost events: the directories :func:`assetd.touched.touched_dirs` named,
each reconciled *shallowly*, then the move guesses a full pass makes.

A shallow reconcile of directory ``D`` compares the files directly in ``D`` with the catalog's
rows directly in ``D`` (read with a skip over each subdirectory's rows: one indexed query per
subdirectory, :func:`direct_rows`), under the reconcile's usual rules (the re-check before a
write, the symlink and ignore rules, a directory that vanishes or is unreadable). A subdirectory
the catalog has rows under and the disk has not is gone (its rows are marked missing, however
deep); one the disk has and the catalog has no rows under is new or moved in (walked whole: a
directory moved in keeps the ctimes of everything below it). A subdirectory both know is left
to its own ctime: the probe named it if anything in it changed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence

from sqlalchemy.orm import Session

from assetd.catalog.roots import RootSpec, root_present
from assetd.catalog.sqlutil import normalize_prefix, placeholder
from assetd.catalog.states import utcnow
from assetd.diff import RowTuple
from assetd.fsutil import encode_path
from assetd.links import LinkRules
from assetd.paths import is_under
from assetd.reconcile import (
    PAGE,
    Cancel,
    Cancelled,
    ReconcileResult,
    _pair_moves,
    _reconcile_tree,
)
from assetd.reconcile_apply import RootVanished
from assetd.reconcile_pages import _ROWS_SQL
from assetd.walk import ScandirFn

__all__ = ["direct_rows", "reconcile_directories"]

_PAST_SUBTREE = "/\U0010ffff"  # after every path below a directory (in code point order)


def direct_rows(
    session: Session, root: RootSpec, top: str, subdirs: set[str], page: int = PAGE
) -> Iterator[list[RowTuple]]:
    """The root's rows of files directly in ``top`` (catalog form), ascending by path, a page
    per short transaction; the name of each subdirectory with rows is added to ``subdirs``."""
    prefix = normalize_prefix(top)
    base, high = (prefix + "/", prefix + "0") if prefix != "/" else ("/", "0")
    sql = _ROWS_SQL.format(p=placeholder(session), page=int(page))
    last = base
    while True:
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, (root.id, last, high))
        rows: list[RowTuple] = cursor.fetchall()
        cursor.close()
        session.commit()  # never hold a transaction (SQLite: the write lock) across the walk
        out: list[RowTuple] = []
        jumped = False
        for row in rows:
            cut = row[0].find("/", len(base))
            if cut < 0:
                out.append(row)
                continue
            name = row[0][len(base) : cut]
            subdirs.add(name)
            last = base + name + _PAST_SUBTREE  # on past the subdirectory's rows
            jumped = True
            break
        if out:
            yield out
        if not jumped:
            if len(rows) < page:
                return
            last = rows[-1][0]


def _only(top: str) -> ScandirFn:
    """``os.scandir`` for ``top``; every other directory reads as empty (not descended)."""
    top_abs = os.path.abspath(top)

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[os.DirEntry[str]]]:
        if os.path.abspath(path) == top_abs:
            return os.scandir(path)
        return contextlib.nullcontext(iter(()))

    return scandir


def _shallow(
    session: Session,
    root: RootSpec,
    top: str,
    result: ReconcileResult,
    rules: LinkRules,
    cancel: Cancel | None,
) -> list[str]:
    """Reconcile ``top`` shallowly (module docstring); the subdirectories walked whole."""
    try:
        with os.scandir(top) as listing:
            on_disk = {
                encode_path(e.name)[0]: e.path for e in listing if e.is_dir(follow_symlinks=False)
            }
    except OSError:  # gone or unreadable: the full walk's rules decide, for all below it
        _reconcile_tree(session, root, top, result, rules, cancel=cancel)
        return [top]
    known: set[str] = set()
    pages = direct_rows(session, root, encode_path(top)[0], known)
    _reconcile_tree(
        session, root, top, result, rules, cancel=cancel, scandir=_only(top), pages=pages
    )
    walked = []
    base = top if top.endswith("/") else top + "/"
    for name in sorted(known.symmetric_difference(on_disk)):  # gone, or new / moved in
        sub = on_disk.get(name, base + name)
        _reconcile_tree(session, root, sub, result, rules, cancel=cancel)
        walked.append(sub)
    return walked


def reconcile_directories(
    session: Session,
    root: RootSpec,
    tops: Sequence[str],
    *,
    cancel: Cancel | None = None,
    link_roots: Sequence[str] = (),
) -> ReconcileResult:
    """Reconcile each of ``tops`` (os paths of directories in ``root``) shallowly, then guess
    moves among what was found. A root gone meanwhile is left to the daemon's root check
    (``unavailable``); ``cancel`` is polled between directories and every 1,000 files."""
    started = time.monotonic()
    since = utcnow()
    result = ReconcileResult(roots=1)
    rules = LinkRules(link_roots or [root.path])
    walked: list[str] = []
    try:
        for top in sorted(tops, key=os.fsencode):
            if cancel is not None and cancel():
                raise Cancelled
            if any(top == w or is_under(top, w) for w in walked):
                continue  # already walked whole as a new subdirectory of one before it
            walked += _shallow(session, root, top, result, rules, cancel)
        _pair_moves(session, [root], since, result)
    except (RootVanished, Cancelled):
        if session.in_transaction():
            session.rollback()
        if not root_present(root):
            result.unavailable.append(root.name)
    result.duration_s = time.monotonic() - started
    return result
