"""The pure part of reconcile: merge a sorted disk snapshot with the sorted catalog rows.

Both streams are ascending by catalog path (``walk.list_files_recursively`` yields in that
order; the catalog is read ``ORDER BY file_path`` with byte-wise collation), so the diff needs
memory for one entry of each, not a dict of the whole tree.
"""

from __future__ import annotations

import bisect
import enum
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from assetd.fsutil import FileStat, make_filestat
from assetd.walk import DiskRow, Run, Same


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
Batch = tuple[list[Step], list[DiskRow]]
"""One flush of reconcile's work: the diff's steps, and files listed where the catalog has no
row under their directory (every one new: a first scan), as the walk yields them."""


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


RowTuple = tuple[str, int, int, bool, int | None, int | None, bytes | None, bool]
"""A catalog row as reconcile reads it: ``(file_path, size_bytes, mtime_ns, is_missing, device,
inode, file_path_raw, is_symlink)``, the shape of :data:`assetd.walk.DiskRow`."""


def _disk(d: DiskRow) -> FileStat:
    return make_filestat(d[0], d[1], d[2], d[4], d[5], d[6], d[7])


def _row(r: RowTuple) -> CatalogRow:
    return CatalogRow(0, r[0], r[1], r[2], bool(r[3]), r[6], r[4], r[5])  # id: not read (0)


class Seekable(Protocol):
    """Catalog pages that can jump ahead (:class:`assetd.reconcile.CatalogPages`)."""

    def seek(self, key: str) -> None:
        """The next page starts at the first row at or after ``key``."""

    def until(self, key: str | None) -> None:
        """Pages end before ``key`` (None: no such bound) until told otherwise: when the rows
        before it run out, iteration stops (for now), the next page starting at ``key``."""


class _Rows:
    """The catalog's pages as one sorted sequence: ``buf[i:]`` are the rows not yet merged.
    ``pos``: when set, every row before it is merged or skipped and none after it is read (a
    :class:`Same` was skipped to it); unset once a page is read."""

    __slots__ = ("buf", "i", "pages", "pos", "seek", "until")

    def __init__(self, pages: Iterable[list[RowTuple]]) -> None:
        self.pages = iter(pages)
        self.seek: Callable[[str], None] | None = getattr(pages, "seek", None)
        self.until: Callable[[str | None], None] | None = getattr(pages, "until", None)
        self.buf: list[RowTuple] = []
        self.i = 0
        self.pos: str | None = None

    def ensure(self, n: int) -> bool:
        """At least ``n`` rows not yet merged, if the catalog has them; False if it has none."""
        while len(self.buf) - self.i < n:
            page = next(self.pages, None)
            if page is None:
                break
            self.buf = self.buf[self.i :] + page
            self.i = 0
            self.pos = None
        return len(self.buf) > self.i

    def skip(self, same: Same) -> None:
        """Pass the rows of ``same`` (every row before its start is merged): those buffered
        are dropped; past the buffer, the pages jump to its end without reading them."""
        buf, high = self.buf, same.high
        self.i = bisect.bisect_left(buf, high, lo=self.i, key=_path)
        if self.i == len(buf):
            self.buf, self.i = [], 0
            if self.seek is None:
                raise TypeError("a Same needs catalog pages that seek")
            self.seek(high)
            self.pos = high


_path = operator.itemgetter(0)


def _gone_before(rows: _Rows, path: str | None, need: int, counts: DiffCounts) -> Iterator[Step]:
    """Merge the catalog's rows before ``path`` (all that are left if None): none is on the
    disk. ``need`` rows are kept buffered for the caller's look ahead."""
    while rows.ensure(need):
        row = rows.buf[rows.i]
        if path is not None and row[0] >= path:
            return
        rows.i += 1
        if row[3]:
            counts.already_missing += 1
        else:
            yield Action.MISSING, None, _row(row)


def diff_runs(
    runs: Iterable[Run], pages: Iterable[list[RowTuple]], counts: DiffCounts
) -> Iterator[Step]:
    """:func:`diff_sorted` over the walk's runs and the catalog's pages (both ascending by
    path): a run whose rows are the next catalog rows, field for field, is unchanged as a whole
    (one list comparison); any other run is merged file by file, with objects made only for the
    steps yielded. A :class:`Same` (a stretch a worker found equal to the catalog) is unchanged
    as a whole, and its rows are not read (``pages`` must then be :class:`Seekable`)."""
    rows = _Rows(pages)
    for run in runs:
        if isinstance(run, Same):
            if rows.i < len(rows.buf) or rows.until is None:
                yield from _gone_before(rows, run.low, 1, counts)
            elif rows.pos is None or rows.pos < run.low:  # only rows before it: a short read
                rows.until(run.low)
                try:
                    yield from _gone_before(rows, run.low, 1, counts)
                finally:
                    rows.until(None)
            rows.skip(run)
            counts.unchanged += run.count
            continue
        n = len(run)
        if not n:
            continue
        yield from _gone_before(rows, run[0][0], n, counts)
        if not rows.ensure(1):  # the catalog has no row left: all new (a first scan)
            for d in run:
                yield Action.NEW, _disk(d), None
            continue
        i = rows.i
        if rows.buf[i : i + n] == run:
            counts.unchanged += n
            rows.i = i + n
            continue
        for d in run:
            path = d[0]
            yield from _gone_before(rows, path, 1, counts)
            if not rows.ensure(1) or rows.buf[rows.i][0] != path:
                yield Action.NEW, _disk(d), None
                continue
            row = rows.buf[rows.i]
            rows.i += 1
            cat = _row(row)
            f = _disk(d)
            action = _compare(f, cat)
            if action is None:
                counts.unchanged += 1
            else:
                yield action, f, cat
    yield from _gone_before(rows, None, 1, counts)
