"""Reconcile: walk every root, diff the disk with the catalog, apply in short transactions.

Before a row is written it is re-checked against the disk, so a live batch applied during the
walk is never undone. Rows under ignored paths are never touched. Nothing is hard-deleted.

A directory that vanishes, turns into a file or turns unreadable at any moment of the walk is
handled where it happens: its rows follow the disk (a file that took its place is catalogued),
rows under an unreadable one are left alone, and a root that vanishes mid-walk is marked
unavailable. Applying the diff (:mod:`assetd.reconcile_apply`) survives a row a data error
refuses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

import assetd.walk as walk_mod
from assetd import log
from assetd.births import backfill_birth_times
from assetd.catalog.content import auto_tags_for
from assetd.catalog.models import roots as roots_table
from assetd.catalog.movelog import prune_moves
from assetd.catalog.moves import recompute_tags_after_moves
from assetd.catalog.pairing import pair_moved_files
from assetd.catalog.prune import mark_cache_states_missing_outside_prefixes
from assetd.catalog.roots import (
    RootSpec,
    RootState,
    record_reconcile,
    root_present,
    set_root_state,
    settle_presence,
)
from assetd.catalog.states import Reason, utcnow
from assetd.catalog.tagsync import live_asset_ids, recompute_automatic_tags_many
from assetd.diff import DiffCounts, RowTuple, diff_runs
from assetd.fsutil import IgnoreRules, StatFn, encode_path
from assetd.links import LinkRules
from assetd.reconcile_apply import Applier, RootVanished
from assetd.reconcile_pages import CatalogPages, catalog_file
from assetd.walk import Run, Same, ScandirFn, WalkProblem, list_files_recursively

_log = log.get_logger(__name__)

Progress = Callable[[int], None]
Cancel = Callable[[], bool]
PAGE = 5000  # catalog rows read per short transaction
SAMPLE = 20
_COMPARE_IN_WORKERS = True  # a re-scan's walk workers compare with the catalog (SQLite file)
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
    failed: int = 0  # rows a data error refused (logged as reconcile.row_failed)
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
            "failed": self.failed,
            "roots": self.roots,
            "unavailable": list(self.unavailable),
            "skipped_by_kind": dict(self.skipped_by_kind),
            "duration_s": round(self.duration_s, 3),
        }


def _reconcile_root(
    session: Session,
    root: RootSpec,
    result: ReconcileResult,
    rules: LinkRules,
    progress: Progress | None,
    cancel: Cancel | None,
    scandir: ScandirFn = os.scandir,
) -> None:
    started = time.monotonic()
    state = session.execute(
        select(roots_table.c.state).where(roots_table.c.id == root.id)
    ).scalar_one_or_none()
    session.commit()
    if not settle_presence(session, root, state):  # judged as the daemon judges it (§6)
        result.unavailable.append(root.name)
        return
    with session.begin():
        if state is None or state in RootState.AWAY:
            set_root_state(
                session, root.id, RootState.POLLING if root.polling else RootState.WATCHING
            )
            if state in RootState.AWAY:
                _log.info("root.restored", root=root.name, path=root.path, was=state)
        # rows of this root left outside its path (its path changed in the config)
        result.missing += mark_cache_states_missing_outside_prefixes(
            session, [root.path], roots=[root.id], reason=Reason.PRUNE
        )

    with contextlib.suppress(RootVanished):  # handled just below
        _reconcile_tree(session, root, root.path, result, rules, progress, cancel, scandir)
    if not root_present(root):  # it went away during the walk: judged and marked once
        if session.in_transaction():
            session.rollback()
        settle_presence(session, root, None)
        result.unavailable.append(root.name)
        return
    with session.begin():
        record_reconcile(session, root.id, int((time.monotonic() - started) * 1000))


def _reconcile_tree(
    session: Session,
    root: RootSpec,
    top: str,
    result: ReconcileResult,
    rules: LinkRules,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    scandir: ScandirFn = os.scandir,
    pages: Iterator[list[RowTuple]] | None = None,
) -> None:
    """Diff the files below ``top`` (an os path: the root or a directory in it) with the
    catalog (``pages``: its rows to compare, default all under ``top``); apply. Raises
    :class:`RootVanished` when the root went away meanwhile."""
    applier = Applier(session, root, result, rules)

    def on_problem(problem: WalkProblem) -> None:
        if problem.kind == "unreadable":
            applier.unreadable.append(problem.path)
        elif problem.kind == "vanished":
            applier.vanished.append(problem.path)
        result.skipped += 1
        result.skipped_by_kind[problem.kind] += 1
        if len(result.problems) < SAMPLE:
            result.problems.append(problem)
        _log.debug("walk.skipped", path=problem.path, kind=problem.kind, detail=problem.detail)

    applier.report = on_problem
    catalog = None
    if pages is None:
        own = CatalogPages(session, root, encode_path(top)[0], PAGE)
        first = own.first()
        pages = own
        if first is not None and _COMPARE_IN_WORKERS:  # a large re-scan: the workers compare
            catalog = catalog_file(session, root)
            if catalog is not None and not own.at_least(walk_mod.PROCESSES_AFTER):
                catalog = None  # a small one: read in place (a worker's start costs more)
    else:
        first = next(pages, None)
        pages = itertools.chain((first,) if first is not None else (), pages)
    # No row under top: every file found is new, and the applier reads its figures anyway (one
    # statx each, inside the transaction that writes it), so the walk only lists files. Not
    # through a test's scandir or stat seam: those time a race against the walk's own stat.
    listing_only = first is None and scandir is os.scandir and rules.plain_lstat
    try:
        disk = list_files_recursively(
            top,
            root=root.path,
            ignore=IgnoreRules(root.ignore),
            follow_symlinks=root.follow_symlinks,
            on_problem=on_problem,
            scandir=scandir,
            inside=rules.inside,
            runs=True,
            figures=not listing_only,
            catalog=catalog,
        )
    except (FileNotFoundError, NotADirectoryError):
        disk = iter(())  # the directory is gone: every row under it is missing
        applier.vanished.append(encode_path(top)[0])  # a file in its place is catalogued
    disk = _guarded(disk, encode_path(top)[0], on_problem)
    if progress is not None or cancel is not None:
        disk = _counting(disk, progress, cancel)
    counts = DiffCounts()
    try:
        if first is None:  # no row to merge with: every file is new, seeded as listed
            for run in disk:
                if isinstance(run, list):  # (no Same: the walk had no catalog)
                    applier.add_new(run)
        else:
            for step in diff_runs(disk, pages, counts):
                applier.add(step)
    finally:
        disk.close()  # the walk's read-ahead threads end with it, also on Cancelled
        applier.settle()  # the flush written behind the walk, if any: ended, its error raised
    applier.flush()
    applier.add_found()
    result.unchanged += counts.unchanged
    result.already_missing += counts.already_missing


def _guarded(
    stream: Iterator[Run], top: str, on_problem: Callable[[WalkProblem], None]
) -> Generator[Run, None, None]:
    """The walk, ended (not raised) by an OSError it did not report itself: what lies under
    ``top`` is then unknown, and no row under it is marked missing."""
    try:
        yield from stream
    except OSError as err:
        on_problem(WalkProblem(top, "unreadable", err.strerror or str(err)))


def reconcile_subtree(
    session: Session,
    root: RootSpec,
    top: str,
    *,
    stat: StatFn = os.lstat,
    scandir: ScandirFn = os.scandir,
    link_roots: Sequence[str] = (),
) -> ReconcileResult:
    """Reconcile one directory of a root (a directory created or collapsed in a live batch);
    ``top`` is its os path. A root gone meanwhile is left alone (the daemon's root check marks
    it unavailable). ``link_roots``: every root's path, for the symlink rules (default: this
    root's); ``stat`` (an lstat) and ``scandir`` are seams for tests."""
    started = time.monotonic()
    result = ReconcileResult(roots=0)
    rules = LinkRules(link_roots or [root.path], lstat=stat)
    try:
        _reconcile_tree(session, root, top, result, rules, scandir=scandir)
    except RootVanished:
        if session.in_transaction():
            session.rollback()
        result.unavailable.append(root.name)
    result.duration_s = time.monotonic() - started
    return result


class Cancelled(Exception):
    """The daemon is stopping: a reconcile ends between two batches of files."""


def _counting(
    stream: Generator[Run, None, None], progress: Progress | None, cancel: Cancel | None
) -> Generator[Run, None, None]:
    n = 0
    try:
        for run in stream:
            before, n = n, n + (run.count if isinstance(run, Same) else len(run))
            if n // 1000 != before // 1000:  # every 1,000 files
                if progress is not None:
                    progress(n - n % 1000)
                if cancel is not None and cancel():
                    raise Cancelled
            yield run
    finally:
        stream.close()


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
        sample = found.moved[:SAMPLE]
        _log.info(
            "cache_state.moved",
            count=n,
            paths=[m[1] for m in sample],
            sources=[m[0] for m in sample],
        )
    if found.candidates:
        _log.info(
            "cache_state.move_candidates",
            count=len(found.candidates),
            paths=[c[1] for c in found.candidates[:SAMPLE]],
            sources=[c[0] for c in found.candidates[:SAMPLE]],
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
    stat: StatFn = os.lstat,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    scandir: ScandirFn = os.scandir,
    link_roots: Sequence[str] = (),
) -> ReconcileResult:
    """Walk each root and make its cache states match the disk: mark missing files missing,
    restore reappeared ones, record changed ones (new figures, ``needs_verify``), seed new ones.

    Commits as it goes (a transaction per page of rows); the session must not be in a
    transaction on entry. ``stat`` (an lstat: the symlink rules of DESIGN §5 decide what a
    link is) and ``scandir`` are seams for tests; ``link_roots`` are every root's path, for
    those rules (default: ``roots``'). ``cancel`` is polled every 1,000 files; when it returns
    True the pass ends early (what was applied stays).
    """
    started = time.monotonic()
    since = utcnow()
    result = ReconcileResult(roots=len(roots))
    rules = LinkRules(link_roots or [r.path for r in roots], lstat=stat)
    try:
        for root in roots:
            _reconcile_root(session, root, result, rules, progress, cancel, scandir)
        _pair_moves(session, roots, since, result)
        _retag_directories(session, roots, cancel)
        backfill_birth_times(session, roots, cancel=cancel)
        with session.begin():  # the move history stays bounded (docs/schema.md)
            prune_moves(session)
    except Cancelled:
        if session.in_transaction():
            session.rollback()
        result.duration_s = time.monotonic() - started
        _log.info("reconcile.cancelled", **result.as_dict())
        return result
    result.duration_s = time.monotonic() - started
    _log.info("reconcile.finished", **result.as_dict())
    return result
