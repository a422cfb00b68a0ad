"""Applying reconcile's diff steps: each row re-checked against the disk from inside the
transaction that writes it; a flush a data error refuses is retried step by step, so one bad row
costs itself only (``reconcile.row_failed``). A root gone meanwhile stops the walk
(:class:`RootVanished`): its rows are not "missing", the root is unavailable.

On PostgreSQL a full flush is written behind the walk (:mod:`assetd.reconcile_behind`): on
sessions of their own, in writer threads, while the walk and the diff go on; the re-stat stays
inside the transaction that writes."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.engine import classify_db_error, one_line
from assetd.catalog.retry import is_lock_conflict, run_retrying
from assetd.catalog.roots import RootSpec, automatic_tags, root_present
from assetd.catalog.seed import NewFile, SeedSpec, batch_insert_seed_assets, insert_new_files
from assetd.catalog.sqlutil import is_postgresql
from assetd.catalog.states import (
    Figures,
    Reason,
    bulk_update_is_missing,
    lock_cache_states,
    refresh_cache_states,
)
from assetd.diff import Action, Batch, Step
from assetd.fsutil import IgnoreRules, os_path_of
from assetd.links import FILE, LinkRules
from assetd.reconcile_behind import Behind
from assetd.statx import birth_ns, lstat_birth
from assetd.walk import DiskRow, ProblemSink, WalkProblem

if TYPE_CHECKING:  # reconcile imports this module
    from assetd.reconcile import ReconcileResult

_log = log.get_logger("assetd.reconcile")

FLUSH = 20_000  # diff steps applied per transaction (about 0.4 s of SQLite write lock)
DEADLOCK_RETRIES = 4  # runs again after a deadlock or serialization failure (5 runs in all)
SAMPLE = 20
# size, mtime_ns, device, inode, is a link, birth time
_Fresh: TypeAlias = tuple[int, int, int, int, bool, int | None]
# missing, restored, changed, new; new files gone before their figures were read (a walk
# without figures, :data:`assetd.walk_dir.NO_FIGURES`: the walk's own stat would have said so)
_Counts: TypeAlias = tuple[int, int, int, int, list[str]]


def _data_error(err: BaseException) -> bool:
    """A refused row or a bug, as opposed to a database that cannot be written now."""
    return isinstance(err, Exception) and classify_db_error(err) is None


class RootVanished(Exception):
    """The root itself went away during the walk: the caller marks it unavailable."""


class Applier:
    """Buffers diff steps and applies them, re-checked against the disk, in one transaction
    per flush; on PostgreSQL a full flush is written behind the walk (the module's doc). Call
    :meth:`settle` when the walk ends, however it ends."""

    def __init__(
        self, session: Session, root: RootSpec, result: ReconcileResult, rules: LinkRules
    ) -> None:
        self.session, self.root, self.result, self.rules = session, root, result, rules
        self.ignore = IgnoreRules(root.ignore)
        self.steps: list[Step] = []
        self.new: list[DiskRow] = []  # files listed where the catalog has no row (add_new)
        self.unreadable: list[str] = []  # directories the walk could not list
        self.vanished: list[str] = []  # directories gone (or turned into files) mid-walk
        self.report: ProblemSink | None = None  # the walk's: files listed, gone when read
        self._behind = Behind(session, rules, self._flush) if is_postgresql(session) else None
        self._counting = threading.Lock()  # flushes behind the walk count from their threads

    def add(self, step: Step) -> None:
        self.steps.append(step)
        if len(self.steps) + len(self.new) >= FLUSH:
            self._full()

    def add_new(self, run: list[DiskRow]) -> None:
        """A run of files the walk listed under a directory the catalog has no row under: each
        is new, seeded from its figures read at the flush (no diff step, no object per file)."""
        while run:
            room = FLUSH - len(self.steps) - len(self.new)
            self.new += run[:room]
            run = run[room:]
            if len(self.steps) + len(self.new) >= FLUSH:
                self._full()

    def _full(self) -> None:
        if self._behind is not None:
            batch: Batch = (self.steps, self.new)
            self.steps, self.new = [], []
            self._behind.hand_off(batch)
        else:
            self.flush()

    def settle(self) -> None:
        """The walk ended (also by an error): wait for the flushes behind it, raise the first
        one's error (it came first), end their threads and sessions."""
        if self._behind is not None:
            self._behind.settle()

    def _restat(self, path: str, raw: bytes | None, rules: LinkRules) -> _Fresh | bool | None:
        """Fresh figures of a file to catalogue, by the symlink rules (DESIGN §5), whether it
        is a link catalogued as one, and its birth time (read here, for the rows written only:
        :mod:`assetd.statx`); None if nothing is there to catalogue (gone, a directory, a
        directory symlink not followed); False if it can't be told."""
        os_path = os_path_of(path, raw)
        if rules.plain_lstat:  # a regular file (the common case): its lstat and birth in one call
            try:
                mode, size, mtime_ns, device, inode, birth = lstat_birth(os_path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as err:
                if err.errno != errno.ENOSYS:
                    return False
            else:
                if stat_mod.S_ISREG(mode):
                    root = self.root
                    if not root.follow_symlinks and not rules.reached_directly(os_path, root.path):
                        return None
                    return size, mtime_ns, device, inode, False, birth
        try:
            entry = rules.entry(os_path, follow=self.root.follow_symlinks, root=self.root.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return False
        if entry.kind != FILE or (st := entry.st) is None:
            return None
        birth = birth_ns(os_path, follow=not entry.is_link)
        return st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, entry.is_link, birth

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
        PostgreSQL deadlock with a live batch (each holds rows the other wants) is retried. A
        data error (a constraint, a trigger) is retried step by step, so it costs its row only.
        """
        self.settle()
        if not self.steps and not self.new:
            return
        batch: Batch = (self.steps, self.new)
        self.steps, self.new = [], []
        self._flush(self.session, self.rules, batch)

    def _flush(self, session: Session, rules: LinkRules, batch: Batch) -> None:
        rules.clear()
        try:
            self._count(self._retrying(session, rules, batch))
        except Exception as err:
            if len(batch[0]) + len(batch[1]) <= 1 or not _data_error(err):
                raise
            self._one_by_one(session, rules, batch)

    def _retrying(self, session: Session, rules: LinkRules, batch: Batch) -> _Counts:
        return run_retrying(  # bounded, jittered: another host's batch may be the other side
            lambda: self._apply(session, rules, batch),
            attempts=DEADLOCK_RETRIES + 1,
            conflict=is_lock_conflict,
        )

    def _count(self, counts: _Counts, failed: int = 0) -> None:
        with self._counting:
            self.result.missing += counts[0]
            self.result.restored += counts[1]
            self.result.changed += counts[2]
            self.result.new += counts[3]
            self.result.failed += failed
            if self.report is not None:
                for path in counts[4]:
                    self.report(WalkProblem(path, "vanished", "gone before it was read"))

    def _one_by_one(self, session: Session, rules: LinkRules, batch: Batch) -> None:
        failed: list[str] = []
        error = ""
        singles: list[tuple[str, Batch]] = [
            (disk.path if disk is not None else row.path, ([(action, disk, row)], []))  # type: ignore[union-attr]
            for action, disk, row in batch[0]
        ]
        singles += [(d[0], ([], [d])) for d in batch[1]]
        for path, single in singles:
            try:
                self._count(self._retrying(session, rules, single))
            except Exception as err:
                if not _data_error(err):
                    raise
                failed.append(path)
                error = error or one_line(err)
        if failed:
            self._count((0, 0, 0, 0, []), len(failed))
            _log.error(
                "reconcile.row_failed",
                root=self.root.name,
                count=len(failed),
                paths=failed[:SAMPLE],
                error=error,
                action="left as they were; the other rows were applied",
            )

    def add_found(self) -> None:
        """Directories that vanished mid-walk and are files now: catalogue those files (a row
        already there is refreshed or restored, the rest seeded)."""
        found: list[Figures] = []
        seeds: list[SeedSpec] = []
        for path in self.vanished:
            if self.ignore.is_ignored(os.path.relpath(path, self.root.path)):
                continue
            fresh = self._restat(path, None, self.rules)
            if not isinstance(fresh, tuple):
                continue
            found.append(Figures(path, *fresh))
            seeds.append(self._seed(path, fresh, None))
        if not seeds:
            return
        roots = [self.root.id]
        with self.session.begin():
            restored, changed = refresh_cache_states(
                self.session, found, roots=roots, reason=Reason.RECONCILE
            )
            ins = batch_insert_seed_assets(self.session, seeds, roots=roots)
        self._count((0, restored + ins.restored, changed, ins.inserted, []))

    def _apply(self, session: Session, rules: LinkRules, batch: Batch) -> _Counts:
        """One transaction: hold the rows, re-stat, write. Returns (missing, restored,
        changed, new, files listed without figures and gone when read)."""
        roots = [self.root.id]
        steps = batch[0]
        missing = restored = changed = new = 0
        with session.begin():
            lock_cache_states(
                session, self.root.id, [row.path for _, _, row in steps if row is not None]
            )
            gone, refresh, seeds, lost = self._decide(steps, rules)
            files = self._decide_new(batch[1], rules, lost)
            if gone and not root_present(self.root):
                raise RootVanished  # not "missing": the whole root is unavailable
            if gone:
                missing = bulk_update_is_missing(
                    session, gone, True, roots=roots, reason=Reason.RECONCILE
                )
            if refresh:
                restored, changed = refresh_cache_states(
                    session, refresh, roots=roots, reason=Reason.RECONCILE
                )
            if seeds:
                ins = batch_insert_seed_assets(session, seeds, roots=roots, known_new=True)
                new = ins.inserted
                restored += ins.restored
            new += insert_new_files(session, self.root.id, files)
        return missing, restored, changed, new, lost

    def _seed(self, path: str, fresh: _Fresh, raw: bytes | None) -> SeedSpec:
        size, mtime_ns, device, inode, is_link, birth = fresh
        return SeedSpec(
            root_id=self.root.id,
            path=path,
            size=size,
            mtime_ns=mtime_ns,
            device=device,
            inode=inode,
            raw=raw,
            tags=automatic_tags(self.root, path),
            is_symlink=is_link,
            birth_ns=birth,
        )

    def _decide(
        self, steps: list[Step], rules: LinkRules
    ) -> tuple[list[str], list[Figures], list[SeedSpec], list[str]]:
        """Re-stat each step's path: what to mark missing, refresh, and seed; and the new
        files listed without figures that are gone (or no longer files)."""
        gone: list[str] = []
        lost: list[str] = []
        seeds: list[SeedSpec] = []
        refresh: list[Figures] = []
        for action, disk, row in steps:
            path = disk.path if disk is not None else row.path  # type: ignore[union-attr]
            raw = disk.raw if disk is not None else row.raw  # type: ignore[union-attr]
            if action is Action.MISSING and self._untouchable(path):
                continue
            fresh = self._restat(path, raw, rules)
            if fresh is False:
                continue
            if fresh is None:
                if action is not Action.NEW:
                    gone.append(path)
                elif disk is not None and disk.size < 0:  # listed without figures
                    lost.append(path)
                continue
            assert isinstance(fresh, tuple)
            if action is Action.NEW:
                seeds.append(self._seed(path, fresh, raw))
            else:  # back, changed, or relinked: the fresh figures decide
                refresh.append(Figures(path, *fresh))
        return gone, refresh, seeds, lost

    def _decide_new(self, rows: list[DiskRow], rules: LinkRules, lost: list[str]) -> list[NewFile]:
        """:meth:`_decide` for the files of :meth:`add_new`: each re-stat'ed (one ``statx``),
        what to seed; those listed without figures and gone (or no longer files) go to
        ``lost``. Whether a directory is reached directly and its files' automatic tags are
        decided once per directory."""
        files: list[NewFile] = []
        append = files.append
        root = self.root
        fast = rules.plain_lstat
        last_dir: str | None = None
        direct, tags = True, root.tags
        for d in rows:
            path, raw = d[0], d[6]
            os_path = os.fsdecode(raw) if raw else path
            if fast:  # a regular file (the common case): its figures and birth in one call
                try:
                    mode, size, mtime_ns, device, inode, birth = lstat_birth(os_path)
                except (FileNotFoundError, NotADirectoryError):
                    if d[1] < 0:  # listed without figures: the walk's stat would have said so
                        lost.append(path)
                    continue
                except OSError as err:
                    if err.errno != errno.ENOSYS:
                        continue  # can't be told: left as it is
                else:
                    if stat_mod.S_ISREG(mode):
                        directory = os_path.rpartition("/")[0]
                        if directory != last_dir:
                            last_dir = directory
                            direct = root.follow_symlinks or rules.reached_directly(
                                os_path, root.path
                            )
                            tags = automatic_tags(root, path)
                        if direct:
                            append((path, raw, size, mtime_ns, device, inode, False, birth, tags))
                        elif d[1] < 0:
                            lost.append(path)
                        continue
            fresh = self._restat(path, raw, rules)
            if fresh is False:
                continue
            if fresh is None:
                if d[1] < 0:
                    lost.append(path)
                continue
            assert isinstance(fresh, tuple)
            size, mtime_ns, device, inode, is_link, birth = fresh
            append(
                (
                    path,
                    raw,
                    size,
                    mtime_ns,
                    device,
                    inode,
                    is_link,
                    birth,
                    automatic_tags(root, path),
                )
            )
        return files
