"""The pure part of reconcile: merge a sorted disk snapshot with the sorted catalog rows.

Both streams are ascending by catalog path (``walk.list_files_recursively`` yields in that
order; the catalog is read ``ORDER BY file_path`` with byte-wise collation), so the diff needs
memory for one entry of each, not a dict of the whole tree.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from assetd.fsutil import FileStat


class Action(enum.Enum):
    NEW = "new"  # on disk, no row
    MISSING = "missing"  # live row, not on disk
    RESTORE = "restore"  # missing row, on disk with the same figures
    CHANGED = "changed"  # row (live or missing) whose size or mtime differ
    RELINK = "relink"  # same figures, another device/inode (e.g. replaced by a copy)


@dataclass(frozen=True, slots=True)
class CatalogRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    is_missing: bool
    raw: bytes | None = None
    device: int | None = None
    inode: int | None = None


@dataclass(slots=True)
class DiffCounts:
    unchanged: int = 0
    already_missing: int = 0


Step = tuple[Action, FileStat | None, CatalogRow | None]


def _compare(disk: FileStat, row: CatalogRow) -> Action | None:
    if disk.size != row.size or disk.mtime_ns != row.mtime_ns:
        return Action.CHANGED
    if row.is_missing:
        return Action.RESTORE
    if (row.inode is not None and disk.inode != row.inode) or (
        row.device is not None and disk.device != row.device
    ):
        return Action.RELINK
    return None


def diff_sorted(
    disk: Iterable[FileStat], catalog: Iterable[CatalogRow], counts: DiffCounts | None = None
) -> Iterator[Step]:
    """Yield what must change so the catalog matches the disk; unchanged pairs yield nothing
    (they are counted in ``counts``). Both inputs must be sorted ascending by path."""
    counts = counts if counts is not None else DiffCounts()
    rows = iter(catalog)
    row = next(rows, None)
    for f in disk:
        while row is not None and row.path < f.path:
            if row.is_missing:
                counts.already_missing += 1
            else:
                yield Action.MISSING, None, row
            row = next(rows, None)
        if row is not None and row.path == f.path:
            action = _compare(f, row)
            if action is None:
                counts.unchanged += 1
            else:
                yield action, f, row
            row = next(rows, None)
        else:
            yield Action.NEW, f, None
    while row is not None:
        if row.is_missing:
            counts.already_missing += 1
        else:
            yield Action.MISSING, None, row
        row = next(rows, None)
