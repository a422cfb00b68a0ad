"""The batch worker: one coalesced Batch -> bulk catalog calls in one transaction (DESIGN §2).

It trusts the disk at flush time, not the events: moves are applied first (so metadata follows
the file), then every touched or gone path is stat'ed and the stat decides: a regular file is
seeded, restored or refreshed; an absent path is marked missing with everything under it; a
directory is reconciled (files written into it before its watch existed are not missed).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.content import auto_tags_for
from assetd.catalog.engine import SessionFactory, one_line
from assetd.catalog.models import cache_states as cs
from assetd.catalog.moves import (
    missing_under,
    move_cache_state,
    move_directory,
    recompute_tags_after_moves,
)
from assetd.catalog.pairing import pair_moved_files
from assetd.catalog.retry import is_lock_conflict, run_retrying
from assetd.catalog.roots import RootSpec, automatic_tags, mark_root_away, touch_roots
from assetd.catalog.seed import SeedSpec, batch_insert_seed_assets
from assetd.catalog.sqlutil import select_in, under_prefix
from assetd.catalog.states import (
    Reason,
    bulk_update_is_missing,
    mark_missing_under,
    mark_paths_missing,
    refresh_cache_states,
    utcnow,
)
from assetd.fsutil import StatFn, encode_path
from assetd.links import DIR, FILE, LinkRules
from assetd.live.changes import Batch, Change
from assetd.live.plan import Plan, plan_paths
from assetd.live.rootindex import RootIndex
from assetd.log import sample_paths
from assetd.paths import is_under
from assetd.reconcile import reconcile_subtree
from assetd.rootfacts import Recorded, Verdict, look
from assetd.walk import ScandirFn

_log = log.get_logger(__name__)

_EXISTING_SQL = (
    "SELECT file_path, is_missing FROM asset_cache_states WHERE root_id = {p} AND file_path {in}"
)


@dataclass(slots=True)
class BatchResult:
    moved: int = 0
    missing: int = 0
    restored: int = 0
    changed: int = 0
    new: int = 0
    rescanned: int = 0
    skipped: int = 0
    root_away: int = 0  # rows of a root found away at flush time, marked root-unavailable
    candidates: int = 0  # guessed moves waiting for the hasher's verdict
    duration_s: float = 0.0
    latency_s: float | None = None  # the oldest change seen -> committed (set by the pipeline)
    moved_paths: list[str] = field(default_factory=list)
    moved_from: list[str] = field(default_factory=list)  # the other end of each moved_paths
    missing_paths: list[str] = field(default_factory=list)
    restored_paths: list[str] = field(default_factory=list)
    new_paths: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int | float]:
        return {
            "moved": self.moved,
            "missing": self.missing,
            "restored": self.restored,
            "changed": self.changed,
            "new": self.new,
            "rescanned": self.rescanned,
            "skipped": self.skipped,
            "root_away": self.root_away,
            "candidates": self.candidates,
            "duration_s": round(self.duration_s, 4),
        }


def _has_rows_under(session: Session, root_id: int, directory: str) -> bool:
    query = (
        select(cs.c.id)
        .where(cs.c.root_id == root_id, under_prefix(cs.c.file_path, directory))
        .limit(1)
    )
    return session.execute(query).first() is not None


def _assets_under(session: Session, root_id: int, directory: str) -> list[int]:
    query = select(cs.c.asset_id).where(
        cs.c.root_id == root_id, under_prefix(cs.c.file_path, directory)
    )
    return [int(a) for a in session.execute(query).scalars()]


class Worker:
    """Applies batches to the catalog. One worker thread calls :meth:`apply`."""

    def __init__(
        self,
        sessions: SessionFactory,
        roots: Sequence[RootSpec],
        *,
        stat: StatFn = os.lstat,
        scandir: ScandirFn = os.scandir,
        fault: Callable[[Batch], None] | None = None,
        on_root_away: Callable[[str], object] | None = None,
    ) -> None:
        self.sessions = sessions
        self.on_root_away = on_root_away  # roots found away at flush time (by name)
        self.stat = stat  # an lstat: the symlink rules (DESIGN §5) decide what a link is
        self.scandir = scandir  # the subtree walks' (a seam for tests)
        self._use(RootIndex(roots))
        self.fault = fault  # a test-only hook (assetd.faults); None in production
        self._next_index: RootIndex | None = None
        self._swap = threading.Lock()

    def _use(self, index: RootIndex) -> None:
        self.index = index
        self.rules = LinkRules([r.path for r in index.roots], lstat=self.stat)

    def set_roots(self, roots: Sequence[RootSpec]) -> None:
        """New roots (a reload, on another thread): the next batch uses them; a batch being
        applied keeps the roots it started with."""
        index = RootIndex(roots)
        with self._swap:
            self._next_index = index

    def apply(self, batch: Batch) -> BatchResult:
        with self._swap:  # between batches: swap in the roots of a reload
            if self._next_index is not None:
                self._use(self._next_index)
                self._next_index = None
        if self.fault is not None:
            self.fault(batch)
        started = time.monotonic()
        since = utcnow()
        # another host's transaction may deadlock with this one (PostgreSQL): the whole batch
        # runs again, planned afresh from the disk, a bounded number of times (retry.py)
        result, plan = run_retrying(
            lambda: self._transaction(batch, since),
            conflict=is_lock_conflict,
            on_retry=lambda err, n: _log.info("batch.retried", attempt=n, error=one_line(err)),
        )
        rescans = [(r, d) for r, d in plan.directories] + self._rescans(batch.rescan)
        for root, directory in rescans:
            with self.sessions() as session:
                sub = reconcile_subtree(
                    session,
                    root,
                    directory,
                    stat=self.stat,
                    scandir=self.scandir,
                    link_roots=[r.path for r in self.index.roots],
                )
            result.rescanned += 1
            result.new += sub.new
            result.missing += sub.missing
            result.restored += sub.restored
            result.changed += sub.changed
        result.duration_s = time.monotonic() - started
        self._log(batch, result)
        return result

    def _transaction(self, batch: Batch, since: dt.datetime) -> tuple[BatchResult, Plan]:
        result = BatchResult()
        self.rules.clear()
        plan = self._plan(sorted(batch.touched | batch.gone), result)
        away = self._roots_away(plan)
        with self.sessions() as session, session.begin():
            for root, verdict in away:
                result.root_away += mark_root_away(session, root, verdict.presence, verdict.reason)
            self._apply_moves(session, batch.moves, plan, result)
            self._apply_gone(session, plan, result)
            self._apply_present(session, plan, result)
            touch_roots(session, self._roots_of(batch, plan))  # last_event_at, for status
            if result.missing and (result.new or result.changed):
                self._pair(session, plan, since, result)
            if plan.moved_assets:  # automatic tags follow the paths
                recompute_tags_after_moves(
                    session, plan.moved_assets, auto_tags_for(self.index.roots)
                )
        if self.on_root_away is not None:
            for root, _ in away:
                self.on_root_away(root.name)
        return result, plan

    def _roots_away(self, plan: Plan) -> list[tuple[RootSpec, Verdict]]:
        """The roots with gone paths that are not there now (looked at after the paths' own
        stats): moved away, unmounted, unreadable. What the plan has for them is dropped: their
        paths are absent because the root is, not deleted (DESIGN §6: ``root-unavailable``,
        never counted by ``cleanup``); the root keeper judges the root afresh and reconciles it
        when it is back."""
        out = []
        for root in (r for r in self.index.roots if plan.gone.get(r.id)):
            verdict, _ = look(root.path, Recorded(root.device, root.is_mount))
            if verdict.present:
                continue
            out.append((root, verdict))
            plan.gone.pop(root.id, None)
            plan.present.pop(root.id, None)
            plan.directories = [(r, d) for r, d in plan.directories if r.id != root.id]
        return out

    def _pair(self, session: Session, plan: Plan, since: dt.datetime, result: BatchResult) -> None:
        """A delete and a create of the same (device, inode, size, mtime_ns) in one batch (a
        move from an unwatched directory, or copy-then-delete keeping the inode) may be a move:
        a guess, confirmed or refuted by the hasher (:mod:`assetd.catalog.pairing`)."""
        gone = [p for paths in plan.gone.values() for p in paths]
        new = [f.path for figures in plan.present.values() for f in figures]
        found = pair_moved_files(
            session, roots=self.index.ids, since=since, old_paths=gone, new_paths=new
        )
        n = len(found.moved)
        result.moved += n
        result.missing = max(result.missing - n, 0)
        result.new = max(result.new - n, 0)
        room = 20 - len(result.moved_paths)
        result.moved_paths.extend(p[1] for p in found.moved[:room])
        result.moved_from.extend(p[0] for p in found.moved[:room])
        plan.moved_assets.update(p[2] for p in found.moved)
        result.candidates += len(found.candidates)

    def _roots_of(self, batch: Batch, plan: Plan) -> set[int]:
        """The roots this batch changed something in (the plan has the touched and gone
        paths' roots already; moves and rescans are few)."""
        ids = {*plan.present, *plan.gone, *(r.id for r, _ in plan.directories)}
        others = itertools.chain(batch.rescan, (p for m in batch.moves for p in (m.path, m.dest)))
        ids.update(r.id for p in others if p and (r := self.index.root_of(p)) is not None)
        return ids

    def _rescans(self, directories: Iterable[str]) -> list[tuple[RootSpec, str]]:
        out = []
        for d in sorted(directories):
            root = next((r for r in self.index.roots if is_under(d, r.path)), None)
            if root is not None:
                out.append((root, d))
        return out

    def _plan(self, paths: Sequence[str], result: BatchResult) -> Plan:
        # one listing of a crowded directory stands for its paths' lstat calls (live/plan.py);
        # with a test's stat seam every path is looked at through the seam
        listdir = os.listdir if self.stat is os.lstat else None
        plan = plan_paths(paths, self.index, self.rules, listdir=listdir, lstat=self.stat)
        result.skipped += plan.skipped
        return plan

    def _apply_moves(
        self, session: Session, moves: Sequence[Change], plan: Plan, result: BatchResult
    ) -> None:
        # Which move ends have rows, in one query per root: watchdog follows a directory move
        # with one synthetic move per entry below it, and when those land in a later batch
        # than the directory move they have nothing left to carry (their rows moved already).
        known = self._known_rows(session, moves)
        exact = True  # `known` is exact until a directory move rewrites paths in this batch
        for move in moves:
            assert move.dest is not None
            src_root = self.index.root_of(move.path)
            dest_root = self.index.root_of(move.dest)
            src, _ = encode_path(move.path)
            dest, dest_raw = encode_path(move.dest)
            if src_root is None:
                if dest_root is not None:  # from outside every root: a create
                    self._arrive(move.dest, dest_root, plan)
                continue
            if dest_root is None:  # out of every root, or into an ignored path: a delete
                if move.is_dir:
                    result.missing += mark_missing_under(session, [src], roots=[src_root.id])
                result.missing += bulk_update_is_missing(
                    session, [src], True, roots=[src_root.id], reason=Reason.LIVE
                )
                continue
            if move.is_dir:
                n = move_directory(
                    session,
                    src,
                    dest,
                    src_root=src_root.id,
                    dest_root=dest_root.id,
                    touched_assets=plan.moved_assets,
                )
                exact = False
                for os_path in missing_under(session, dest_root.id, dest) if n else ():
                    self._arrive(os_path, dest_root, plan)  # missing since the rename? see it
                if n and (src_root.id != dest_root.id or dest_root.tags_from_dirs):
                    plan.moved_assets.update(_assets_under(session, dest_root.id, dest))
                if not n and not _has_rows_under(session, dest_root.id, dest):
                    self._arrive(move.dest, dest_root, plan)  # nothing catalogued: list it
            elif exact and (src_root.id, src) not in known:
                n = 0
                if (dest_root.id, dest) not in known:
                    self._arrive(move.dest, dest_root, plan)  # no row to carry: a new file
            else:
                n = int(
                    move_cache_state(
                        session,
                        src,
                        dest,
                        src_root=src_root.id,
                        dest_root=dest_root.id,
                        dest_raw=dest_raw,
                        touched_assets=plan.moved_assets,
                    )
                )
                if n:
                    was_missing = known.pop((src_root.id, src), False)
                    known[dest_root.id, dest] = was_missing
                    if was_missing:  # marked missing since the rename (a reconcile)? the disk
                        self._arrive(move.dest, dest_root, plan)  # decides
                    if src_root.id != dest_root.id or dest_root.tags_from_dirs:
                        plan.moved_assets.update(
                            session.execute(
                                select(cs.c.asset_id).where(
                                    cs.c.root_id == dest_root.id, cs.c.file_path == dest
                                )
                            ).scalars()
                        )
                elif not exact or (dest_root.id, dest) not in known:
                    self._arrive(move.dest, dest_root, plan)
            result.moved += n
            if n and len(result.moved_paths) < 20:
                result.moved_paths.append(dest)
                result.moved_from.append(src)

    def _known_rows(self, session: Session, moves: Sequence[Change]) -> dict[tuple[int, str], bool]:
        """The move ends that have a row, and whether it is missing."""
        wanted: dict[int, set[str]] = {}
        for move in moves:
            if move.is_dir:
                continue
            for os_path in (move.path, move.dest):
                root = self.index.root_of(os_path) if os_path else None
                if root is not None and os_path is not None:
                    wanted.setdefault(root.id, set()).add(encode_path(os_path)[0])
        known: dict[tuple[int, str], bool] = {}
        for root_id, paths in wanted.items():
            for path, missing in select_in(session, _EXISTING_SQL, sorted(paths), (root_id,)):
                known[root_id, path] = bool(missing)
        return known

    def _arrive(self, os_path: str, root: RootSpec, plan: Plan) -> None:
        """A path that came into a root with no row to carry: seed it (a file) or list it."""
        path, raw = encode_path(os_path)
        try:
            entry = self.rules.entry(os_path, follow=root.follow_symlinks, root=root.path)
        except OSError:
            return
        if entry.kind == DIR:
            plan.directories.append((root, os_path))
            return
        if entry.kind == FILE and entry.st is not None and path not in plan.arrived:
            plan.arrived.add(path)
            plan.add(root.id, path, raw, entry, os_path)

    def _apply_gone(self, session: Session, plan: Plan, result: BatchResult) -> None:
        for root_id, paths in plan.gone.items():
            with_row = set(mark_paths_missing(session, paths, roots=[root_id]))
            n = len(with_row)
            # a gone path with no live row of its own may have been a directory (also one
            # that stands where a file, already missing, once was)
            dirs = [p for p in paths if p not in with_row]
            n += mark_missing_under(session, dirs, roots=[root_id])
            result.missing += n
            result.missing_paths.extend(sample_paths(paths, 20 - len(result.missing_paths)))

    def _apply_present(self, session: Session, plan: Plan, result: BatchResult) -> None:
        for root_id, figures in plan.present.items():
            restored, changed = refresh_cache_states(
                session, figures, roots=[root_id], restored_paths=result.restored_paths
            )
            result.restored += restored
            result.changed += changed
            root = next(r for r in self.index.roots if r.id == root_id)
            specs = [
                SeedSpec(
                    root_id=root_id,
                    path=f.path,
                    size=f.size,
                    mtime_ns=f.mtime_ns,
                    device=f.device,
                    inode=f.inode,
                    raw=plan.raw.get(f.path),
                    tags=automatic_tags(root, f.path),
                    is_symlink=bool(f.is_symlink),
                    birth_ns=f.birth_ns,
                )
                for f in figures
            ]
            inserted = batch_insert_seed_assets(session, specs, roots=[root_id])
            result.new += inserted.inserted
            result.new_paths.extend(
                sample_paths((f.path for f in figures), 20 - len(result.new_paths))
            )

    def _log(self, batch: Batch, result: BatchResult) -> None:
        if result.missing:
            _log.info("cache_state.missing", count=result.missing, paths=result.missing_paths)
        if result.moved:
            _log.info(
                "cache_state.moved",
                count=result.moved,
                paths=result.moved_paths,
                sources=result.moved_from,
            )
        if result.restored:
            _log.info(
                "cache_state.restored", count=result.restored, paths=result.restored_paths[:20]
            )
        if result.new:  # so `assetd logs --path P` finds when P was first catalogued
            _log.info("cache_state.created", count=result.new, paths=result.new_paths)
        _log.info("batch.applied", changes=batch.size, **result.counts())
