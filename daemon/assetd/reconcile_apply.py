"""Applying reconcile's diff steps: each row re-checked against the disk, then written in
one transaction per flush; a flush a data error refuses is retried row by row, so one bad row
costs itself only (``reconcile.row_failed``). A root gone meanwhile stops the walk
(:class:`RootVanished`): its rows are not "missing", the root is unavailable."""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.engine import classify_db_error, one_line
from assetd.catalog.roots import RootSpec, automatic_tags, root_is_present
from assetd.catalog.seed import SeedSpec, batch_insert_seed_assets
from assetd.catalog.states import Figures, Reason, bulk_update_is_missing, refresh_cache_states
from assetd.diff import Action, Step
from assetd.fsutil import IgnoreRules, os_path_of

if TYPE_CHECKING:  # reconcile imports this module
    from assetd.reconcile import ReconcileResult

_log = log.get_logger("assetd.reconcile")

StatFn = Callable[[str], os.stat_result]
FLUSH = 20_000  # diff steps applied per transaction (about 0.4 s of SQLite write lock)
SAMPLE = 20


class RootVanished(Exception):
    """The root itself went away during the walk: the caller marks it unavailable."""


class Applier:
    """Buffers diff steps and applies them, re-checked against the disk, in one transaction."""

    def __init__(
        self, session: Session, root: RootSpec, result: ReconcileResult, stat: StatFn
    ) -> None:
        self.session, self.root, self.result, self.stat = session, root, result, stat
        self.ignore = IgnoreRules(root.ignore)
        self.steps: list[Step] = []
        self.unreadable: list[str] = []  # directories the walk could not list
        self.vanished: list[str] = []  # directories gone (or turned into files) mid-walk

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
        if not self.steps:
            return
        steps, self.steps = self.steps, []
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
        if gone and not root_is_present(self.root):
            raise RootVanished  # not "missing": the whole root is unavailable
        try:
            self._write(gone, refresh, seeds, known_new=True)
        except Exception as err:
            if len(gone) + len(refresh) + len(seeds) <= 1 or not _data_error(err):
                raise
            self._write_one_by_one(gone, refresh, seeds)

    def _write(
        self, gone: list[str], refresh: list[Figures], seeds: list[SeedSpec], *, known_new: bool
    ) -> None:
        roots = [self.root.id]
        with self.session.begin():
            if gone:
                self.result.missing += bulk_update_is_missing(
                    self.session, gone, True, roots=roots, reason=Reason.RECONCILE
                )
            if refresh:
                restored, changed = refresh_cache_states(
                    self.session, refresh, roots=roots, reason=Reason.RECONCILE
                )
                self.result.restored += restored
                self.result.changed += changed
            if seeds:
                ins = batch_insert_seed_assets(
                    self.session, seeds, roots=roots, known_new=known_new
                )
                self.result.new += ins.inserted
                self.result.restored += ins.restored

    def _write_one_by_one(
        self, gone: list[str], refresh: list[Figures], seeds: list[SeedSpec]
    ) -> None:
        """A data error refused the flush: each row on its own, so only the bad ones stay out."""
        units: list[tuple[str, list[str], list[Figures], list[SeedSpec]]] = [
            *((p, [p], [], []) for p in gone),
            *((f.path, [], [f], []) for f in refresh),
            *((s.path, [], [], [s]) for s in seeds),
        ]
        failed: list[str] = []
        error = ""
        for path, g, r, sd in units:
            try:
                self._write(g, r, sd, known_new=True)
            except Exception as err:
                if not _data_error(err):
                    raise
                failed.append(path)
                error = error or one_line(err)
        if failed:
            self.result.failed += len(failed)
            _log.error(
                "reconcile.row_failed",
                root=self.root.name,
                count=len(failed),
                paths=failed[:SAMPLE],
                error=error,
                action="left as they were; the other rows were applied",
            )

    def add_found(self) -> None:
        """Directories that vanished mid-walk and are files now: catalogue those files."""
        found: list[Figures] = []
        seeds: list[SeedSpec] = []
        for path in self.vanished:
            if self.ignore.is_ignored(os.path.relpath(path, self.root.path)):
                continue
            st = self._restat(path, None)
            if not isinstance(st, os.stat_result):
                continue
            found.append(Figures(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
            seeds.append(
                SeedSpec(
                    root_id=self.root.id,
                    path=path,
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    device=st.st_dev,
                    inode=st.st_ino,
                    tags=automatic_tags(self.root, path),
                )
            )
        if seeds:  # refresh restores or updates a row already there; seed adds the rest
            self._write([], found, seeds, known_new=False)


def _data_error(err: BaseException) -> bool:
    """A refused row or a bug, as opposed to a database that cannot be written now."""
    return isinstance(err, Exception) and classify_db_error(err) is None
