"""Reconcile: walk every root, diff the disk with the catalog, apply in short transactions.

Before a row is written it is re-checked against the disk, so a live batch applied during the
walk is never undone. Rows under ignored paths are never touched. Nothing is hard-deleted.
"""

from __future__ import annotations

import datetime as dt
import os
import stat as stat_mod
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.content import auto_tags_for
from assetd.catalog.models import roots as roots_table
from assetd.catalog.moves import recompute_tags_after_moves
from assetd.catalog.pairing import pair_moved_files
from assetd.catalog.prune import mark_cache_states_missing_outside_prefixes
from assetd.catalog.roots import (
    RootSpec,
    RootState,
    automatic_tags,
    mark_root_unavailable,
    record_reconcile,
    root_is_present,
    set_root_state,
)
from assetd.catalog.seed import SeedSpec, batch_insert_seed_assets
from assetd.catalog.sqlutil import normalize_prefix, placeholder
from assetd.catalog.states import (
    Figures,
    Reason,
    bulk_update_is_missing,
    lock_cache_states,
    refresh_cache_states,
    utcnow,
)
from assetd.catalog.tagsync import live_asset_ids, recompute_automatic_tags_many
from assetd.diff import Action, CatalogRow, DiffCounts, Step, diff_sorted
from assetd.fsutil import FileStat, IgnoreRules, StatFn, encode_path, os_path_of
from assetd.walk import WalkProblem, list_files_recursively

_log = log.get_logger(__name__)

Progress = Callable[[int], None]
Cancel = Callable[[], bool]
PAGE = 5000  # catalog rows read per short transaction
FLUSH = 20_000  # diff steps applied per transaction (about 0.4 s of SQLite write lock)
SAMPLE = 20
DEADLOCK_RETRIES = 2
TAG_PAGE = 1000  # assets per transaction when directory tags are recomputed


@dataclass(slots=True)
class ReconcileResult:
    new: int = 0
    missing: int = 0
    moved: int = 0
    restored: int = 0
    changed: int = 0
    unchanged: int = 0
    already_missing: int = 0
    skipped: int = 0
    roots: int = 0
    unavailable: list[str] = field(default_factory=list)
    skipped_by_kind: Counter[str] = field(default_factory=Counter)
    problems: list[WalkProblem] = field(default_factory=list)  # a sample
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "new": self.new,
            "missing": self.missing,
            "moved": self.moved,
            "restored": self.restored,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "roots": self.roots,
            "unavailable": list(self.unavailable),
            "skipped_by_kind": dict(self.skipped_by_kind),
            "duration_s": round(self.duration_s, 3),
        }


_ROWS_SQL = (
    "SELECT id, file_path, size_bytes, mtime_ns, is_missing, file_path_raw, device, inode "
    "FROM asset_cache_states WHERE root_id = {p} AND file_path > {p} AND file_path < {p} "
    "ORDER BY file_path LIMIT {page}"
)


def iter_catalog_rows(
    session: Session, root: RootSpec, top: str | None = None, page: int = PAGE
) -> Iterator[CatalogRow]:
    """The root's rows under ``top`` (default: its path), ascending by path, a page per short
    transaction (keyset pagination; plain driver SQL, this is the re-scan's hot path)."""
    prefix = normalize_prefix(top or root.path)
    low, high = (prefix + "/", prefix + "0") if prefix != "/" else ("/", "0")
    sql = _ROWS_SQL.format(p=placeholder(session), page=int(page))
    last = low  # no path equals "prefix/" itself, so "> low" is every path below the prefix
    while True:
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, (root.id, last, high))  # one lower bound: an index seek
        rows = cursor.fetchall()
        cursor.close()
        session.commit()  # never hold a transaction (SQLite: the write lock) across the walk
        for r in rows:
            yield CatalogRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7])
        if len(rows) < page:
            return
        last = rows[-1][1]


class _Applier:
    """Buffers diff steps and applies them, re-checked against the disk, in one transaction."""

    def __init__(
        self, session: Session, root: RootSpec, result: ReconcileResult, stat: StatFn
    ) -> None:
        self.session, self.root, self.result, self.stat = session, root, result, stat
        self.ignore = IgnoreRules(root.ignore)
        self.steps: list[Step] = []
        self.unreadable: list[str] = []  # directories the walk could not list

    def add(self, step: Step) -> None:
        self.steps.append(step)
        if len(self.steps) >= FLUSH:
            self.flush()

    def _restat(self, path: str, raw: bytes | None) -> os.stat_result | bool | None:
        """Fresh stat of a regular file; None if it is gone; False if it can't be told."""
        try:
            st = self.stat(os_path_of(path, raw))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return False
        return st if stat_mod.S_ISREG(st.st_mode) else None

    def _untouchable(self, path: str) -> bool:
        """Rows under ignored paths or unreadable directories are never marked missing: the
        walk did not see them, which says nothing about whether they are there."""
        if any(path.startswith(u + "/") for u in self.unreadable):
            return True
        return self.ignore.is_ignored(os.path.relpath(path, self.root.path))

    def flush(self) -> None:
        """Apply the buffered steps in one transaction, each re-checked against the disk from
        inside it: the rows are held first (:func:`lock_cache_states`), so a live batch either
        committed before the re-stat (which then sees its file) or waits for this commit; a
        write is never decided on a fact older than the transaction it is written in. A
        PostgreSQL deadlock with a live batch (each holds rows the other wants) is retried."""
        if not self.steps:
            return
        steps, self.steps = self.steps, []
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                counts = self._apply(steps)
            except OperationalError as err:
                code = getattr(getattr(err, "orig", None), "sqlstate", None)
                if attempt == DEADLOCK_RETRIES or code not in ("40P01", "40001"):
                    raise
                continue
            self.result.missing += counts[0]
            self.result.restored += counts[1]
            self.result.changed += counts[2]
            self.result.new += counts[3]
            return

    def _apply(self, steps: list[Step]) -> tuple[int, int, int, int]:
        """One transaction: hold the rows, re-stat, write. Returns (missing, restored,
        changed, new)."""
        roots = [self.root.id]
        missing = restored = changed = new = 0
        with self.session.begin():
            lock_cache_states(
                self.session, self.root.id, [row.path for _, _, row in steps if row is not None]
            )
            gone, refresh, seeds = self._decide(steps)
            if gone:
                missing = bulk_update_is_missing(
                    self.session, gone, True, roots=roots, reason=Reason.RECONCILE
                )
            if refresh:
                restored, changed = refresh_cache_states(
                    self.session, refresh, roots=roots, reason=Reason.RECONCILE
                )
            if seeds:
                ins = batch_insert_seed_assets(self.session, seeds, roots=roots, known_new=True)
                new = ins.inserted
                restored += ins.restored
        return missing, restored, changed, new

    def _decide(self, steps: list[Step]) -> tuple[list[str], list[Figures], list[SeedSpec]]:
        """Re-stat each step's path: what to mark missing, refresh, and seed."""
        gone: list[str] = []
        seeds: list[SeedSpec] = []
        refresh: list[Figures] = []
        for action, disk, row in steps:
            path = disk.path if disk is not None else row.path  # type: ignore[union-attr]
            raw = disk.raw if disk is not None else row.raw  # type: ignore[union-attr]
            if action is Action.MISSING and self._untouchable(path):
                continue
            st = self._restat(path, raw)
            if st is False:
                continue
            if st is None:
                if action is not Action.NEW:
                    gone.append(path)
                continue
            assert isinstance(st, os.stat_result)
            if action is Action.NEW:
                seeds.append(
                    SeedSpec(
                        root_id=self.root.id,
                        path=path,
                        size=st.st_size,
                        mtime_ns=st.st_mtime_ns,
                        device=st.st_dev,
                        inode=st.st_ino,
                        raw=raw,
                        tags=automatic_tags(self.root, path),
                    )
                )
            else:  # back, changed, or relinked: the fresh figures decide
                refresh.append(Figures(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
        return gone, refresh, seeds


def _reconcile_root(
    session: Session,
    root: RootSpec,
    result: ReconcileResult,
    stat: StatFn,
    progress: Progress | None,
    cancel: Cancel | None,
) -> None:
    started = time.monotonic()
    state = session.execute(
        select(roots_table.c.state).where(roots_table.c.id == root.id)
    ).scalar_one_or_none()
    session.commit()
    if not root_is_present(root):
        with session.begin():
            count = mark_root_unavailable(session, root, "directory gone or unmounted")
        result.unavailable.append(root.name)
        if state != RootState.UNAVAILABLE:
            _log.warning("root.unavailable", root=root.name, path=root.path, missing=count)
        return
    with session.begin():
        if state in (None, RootState.UNAVAILABLE):
            set_root_state(
                session, root.id, RootState.POLLING if root.polling else RootState.WATCHING
            )
            if state == RootState.UNAVAILABLE:
                _log.info("root.restored", root=root.name, path=root.path)
        # rows of this root left outside its path (its path changed in the config)
        result.missing += mark_cache_states_missing_outside_prefixes(
            session, [root.path], roots=[root.id], reason=Reason.PRUNE
        )

    _reconcile_tree(session, root, root.path, result, stat, progress, cancel)
    with session.begin():
        record_reconcile(session, root.id, int((time.monotonic() - started) * 1000))


def _reconcile_tree(
    session: Session,
    root: RootSpec,
    top: str,
    result: ReconcileResult,
    stat: StatFn,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> None:
    """Diff the files below ``top`` (an os path: the root or a directory in it) with the
    catalog; apply."""
    applier = _Applier(session, root, result, stat)

    def on_problem(problem: WalkProblem) -> None:
        if problem.kind == "unreadable":
            applier.unreadable.append(problem.path)
        result.skipped += 1
        result.skipped_by_kind[problem.kind] += 1
        if len(result.problems) < SAMPLE:
            result.problems.append(problem)
        _log.debug("walk.skipped", path=problem.path, kind=problem.kind, detail=problem.detail)

    try:
        disk = list_files_recursively(
            top,
            root=root.path,
            ignore=IgnoreRules(root.ignore),
            follow_symlinks=root.follow_symlinks,
            on_problem=on_problem,
        )
    except (FileNotFoundError, NotADirectoryError):
        disk = iter(())  # the directory is gone: every row under it is missing
    if progress is not None or cancel is not None:
        disk = _counting(disk, progress, cancel)
    counts = DiffCounts()
    for step in diff_sorted(disk, iter_catalog_rows(session, root, encode_path(top)[0]), counts):
        applier.add(step)
    applier.flush()
    result.unchanged += counts.unchanged
    result.already_missing += counts.already_missing


def reconcile_subtree(
    session: Session, root: RootSpec, top: str, *, stat: StatFn = os.stat
) -> ReconcileResult:
    """Reconcile one directory of a root (a directory created or collapsed in a live batch);
    ``top`` is its os path."""
    started = time.monotonic()
    result = ReconcileResult(roots=0)
    _reconcile_tree(session, root, top, result, stat)
    result.duration_s = time.monotonic() - started
    return result


class Cancelled(Exception):
    """The daemon is stopping: a reconcile ends between two batches of files."""


def _counting(
    stream: Iterator[FileStat], progress: Progress | None, cancel: Cancel | None
) -> Iterator[FileStat]:
    for n, item in enumerate(stream, 1):
        if n % 1000 == 0:
            if progress is not None:
                progress(n)
            if cancel is not None and cancel():
                raise Cancelled
        yield item


def _pair_moves(
    session: Session, roots: Sequence[RootSpec], since: dt.datetime, result: ReconcileResult
) -> None:
    """A file gone from one path and new (or changed) at another with the same (device, inode,
    size, mtime_ns) may have moved, also while the daemon was down: a guess the hasher confirms
    or refutes by the content (:mod:`assetd.catalog.pairing`) before any metadata follows."""
    if not (result.missing and (result.new or result.changed)):
        return
    with session.begin():
        found = pair_moved_files(session, roots=[r.id for r in roots], since=since)
        recompute_tags_after_moves(session, [m[2] for m in found.moved], auto_tags_for(roots))
    if found.moved:
        n = len(found.moved)
        result.moved += n
        result.missing = max(result.missing - n, 0)
        result.new = max(result.new - n, 0)
        _log.info("cache_state.moved", count=n, paths=[m[1] for m in found.moved[:SAMPLE]])
    if found.candidates:
        _log.info(
            "cache_state.move_candidates",
            count=len(found.candidates),
            paths=[c[1] for c in found.candidates[:SAMPLE]],
        )


def _retag_directories(session: Session, roots: Sequence[RootSpec], cancel: Cancel | None) -> None:
    """Roots with ``tags_from_dirs``: make every live file's automatic tags match its path
    (content rule 5), a short transaction per 1,000 assets, so whatever left them stale (a
    directory renamed before this was kept live, a changed config) is fixed by the pass."""
    ids = [r.id for r in roots if r.tags_from_dirs]
    if not ids:
        return
    auto_tags = auto_tags_for(roots)
    last = changed = 0
    while True:
        if cancel is not None and cancel():
            raise Cancelled
        with session.begin():
            page = live_asset_ids(session, ids, after=last)
            changed += recompute_automatic_tags_many(session, page, auto_tags)
        if len(page) < TAG_PAGE:
            break
        last = page[-1]
    if changed:
        _log.info(
            "tags.recomputed", count=changed, roots=[r.name for r in roots if r.tags_from_dirs]
        )


def sync_cache_states_with_filesystem(
    session: Session,
    roots: Sequence[RootSpec],
    *,
    stat: StatFn = os.stat,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> ReconcileResult:
    """Walk each root and make its cache states match the disk: mark missing files missing,
    restore reappeared ones, record changed ones (new figures, ``needs_verify``), seed new ones.

    Commits as it goes (a transaction per page of rows); the session must not be in a
    transaction on entry. ``stat`` is a seam for tests. ``cancel`` is polled every 1,000 files;
    when it returns True the pass ends early (what was applied stays applied).
    """
    started = time.monotonic()
    since = utcnow()
    result = ReconcileResult(roots=len(roots))
    try:
        for root in roots:
            _reconcile_root(session, root, result, stat, progress, cancel)
        _pair_moves(session, roots, since, result)
        _retag_directories(session, roots, cancel)
    except Cancelled:
        if session.in_transaction():
            session.rollback()
        result.duration_s = time.monotonic() - started
        _log.info("reconcile.cancelled", **result.as_dict())
        return result
    result.duration_s = time.monotonic() - started
    _log.info("reconcile.finished", **result.as_dict())
    return result
