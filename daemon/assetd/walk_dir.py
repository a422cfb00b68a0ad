"""Reading one directory for the walk (:mod:`assetd.walk`): list it, sort its entries in catalog
path order, apply the ignore and symlink rules, stat each entry, and hand it over as segments
(runs of files, directories to descend into, what was skipped). Thread-safe: the walk reads
directories ahead on worker threads (:mod:`assetd.walk_ahead`); problems travel as segments and
are reported by the walk, in order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeAlias

from assetd.fsutil import GONE_ERRNOS, S_IFDIR, S_IFMT, S_IFREG


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """Something the walk skipped, for the log and the scan summary (DESIGN §6).

    ``kind`` is one of:

    - ``"unreadable"``: a directory that cannot be listed, or an entry that cannot be stat'ed
      (EACCES, EIO...). What lies there is *unknown*: a caller must not take the files it knows
      under ``path`` for missing.
    - ``"vanished"``: gone (or replaced by another type) between listing and stat.
    - ``"loop"``: a directory that is one of its own ancestors (symlink or bind-mount loop).
    - ``"duplicate-dir"``: a followed directory symlink to a directory already walked.
    - ``"symlink-dir-skipped"``: a directory symlink, not followed (``follow_symlinks=False``).
    - ``"special"``: a FIFO, socket or device (or a symlink to one); never opened.
    - ``"broken-symlink"``: a symlink whose target does not exist (or is a symlink loop).
    - ``"ambiguous-name"``: a non-UTF-8 name whose catalog form equals a sibling's (for example
      ``b"\\xff"`` next to a file literally named ``\\xff``); the valid UTF-8 name is kept.
    """

    path: str  # catalog form
    kind: str
    detail: str


ProblemSink: TypeAlias = Callable[[WalkProblem], None]
"""Receives each :class:`WalkProblem`; called from inside the walk, so keep it cheap."""

ScandirFn: TypeAlias = Callable[[str], AbstractContextManager[Iterator["os.DirEntry[str]"]]]
"""The shape of ``os.scandir`` on a ``str`` path: the seam tests replace."""


def kind_of(exc: OSError, gone: str) -> str:
    return gone if exc.errno in GONE_ERRNOS else "unreadable"


def detail_of(exc: OSError) -> str:
    return exc.strerror or str(exc)


# An entry of one listed directory: (sort key, entry, kind, name is not valid UTF-8).
# The sort key is the catalog-form name, plus "/" for a directory: then the order of keys is the
# order of the full paths, since every path below directory d starts with "d/".
_Item: TypeAlias = tuple[str, "os.DirEntry[str]", int, bool]
_FILE, _DIR, _LINKDIR, _LINKFILE = 0, 1, 2, 3
Inside: TypeAlias = Callable[[str], bool]
"""``inside(os_path)``: whether a symlink's target lies in a root (DESIGN §5)."""
_key = itemgetter(0)

DiskRow: TypeAlias = tuple[str, int, int, bool, int, int, bytes | None, bool]
DISK_ROW_COLUMNS = (
    "file_path, size_bytes, mtime_ns, is_missing, device, inode, file_path_raw, is_symlink"
)
"""The ``asset_cache_states`` columns a catalog row is read in to compare with a
:data:`DiskRow` (reconcile's pages, the walk workers' stretches): the same shape."""
"""One file as the walk yields it in runs: ``(path, size, mtime_ns, False, device, inode, raw,
is_link)`` (the fields of :class:`FileStat`; the ``False`` is "not missing"). Shaped like the
catalog row reconcile reads, so a run of unchanged files equals its catalog rows in one list
comparison, without an object per file."""


NO_FIGURES = (-1, -1, 0, 0)
"""``(size, mtime_ns, device, inode)`` of a file listed without its figures (a walk with
``figures=False``, for a caller that reads each file's figures itself later)."""


@dataclass(frozen=True, slots=True)
class Sub:
    """A directory to descend into, as its parent's listing found it."""

    prefix: str  # catalog path + "/"
    os_path: str
    raw: bool  # the prefix holds non-UTF-8 bytes
    id: tuple[int, int]  # (st_dev, st_ino)
    link: bool  # a followed directory symlink

    def __reduce__(self) -> tuple[type[Sub], tuple[str, str, bool, tuple[int, int], bool]]:
        # pickled as a call (a worker's answer): a dataclass's default state costs 10x more
        return Sub, (self.prefix, self.os_path, self.raw, self.id, self.link)


@dataclass(frozen=True, slots=True)
class Same:
    """The catalog's rows in ``[low, high)`` of the root ``How.catalog`` names are the files
    of a directory listed there, field for field, ``count`` of them, as a worker process
    found (:func:`assetd.walk_procs.vouch`): a stretch of the directory between two of its
    subdirectories (or its start or end), in place of its runs. Only a walk given a catalog
    yields these (reconcile's re-scan, :func:`assetd.diff.diff_runs`)."""

    low: str  # catalog form
    high: str
    count: int

    def __reduce__(self) -> tuple[type[Same], tuple[str, str, int]]:
        return Same, (self.low, self.high, self.count)  # as Sub's


Run: TypeAlias = "list[DiskRow] | Same"
"""What a walk with ``runs`` yields: a run of files, or a stretch the catalog equals."""

Segment: TypeAlias = "list[DiskRow] | Sub | WalkProblem | Same"
"""A listed directory's entries in path order: runs of files, directories, what was skipped
(and stretches of files found equal to the catalog's rows, :class:`Same`)."""


@dataclass(frozen=True, slots=True)
class How:
    """The walk's rules, the same for every directory of one walk."""

    name_ignored: Callable[[str], bool] | None
    ignored_among: Callable[[list[str]], set[str]] | None
    follow: bool
    scandir: ScandirFn
    inside: Inside
    by_fd: bool  # list by file descriptor: the default scandir only (a seam takes a path)
    figures: bool = True  # stat each file; False: listed only (see NO_FIGURES)
    catalog: tuple[str, int] | None = None  # (SQLite file, root id): workers compare (Same)

    def read(self, sub: Sub) -> list[Segment]:
        return read_dir(sub.os_path, sub.prefix, sub.raw, self, by_fd=self.by_fd)

    def read_small(self, sub: Sub) -> list[Segment]:
        """:meth:`read` by path: for a directory of a few entries, opening it by descriptor
        costs more than the short lookups of its stats save."""
        return read_dir(sub.os_path, sub.prefix, sub.raw, self, by_fd=False)


def read_dir(os_dir: str, prefix: str, raw: bool, how: How, *, by_fd: bool) -> list[Segment]:
    """One directory, ready to walk: its entries in path order as segments (runs of files,
    each stat'ed; directories to descend into, each stat'ed; what was skipped). Thread-safe:
    it only reads the disk and reports nothing (its problems are segments)."""
    segs: list[Segment] = []
    read_into(os_dir, prefix, raw, how, segs.append, segs, by_fd=by_fd)
    return segs


def read_into(
    os_dir: str,
    prefix: str,
    raw: bool,
    how: How,
    report: ProblemSink,
    segs: list[Segment],
    *,
    by_fd: bool,
    is_top: bool = False,
) -> None:
    """List and stat ``os_dir`` into ``segs``; a listing problem goes to ``report``. By its
    file descriptor with the default scandir (each stat is an ``fstatat`` of one name, not a
    lookup of the whole path); through ``how.scandir`` by path otherwise."""
    fd = None
    listing: AbstractContextManager[Iterator[os.DirEntry[str]]]
    try:
        if by_fd:  # the default scandir only (a seam takes a path)
            fd = os.open(os_dir, _DIR_FLAGS)
            listing = os.scandir(fd)
        else:
            listing = how.scandir(os_dir)
        with listing as it:
            entries = list(it)
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        if is_top and isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise
        report(WalkProblem(prefix[:-1], kind_of(exc, "vanished"), detail_of(exc)))
        return
    base = os_dir if os_dir.endswith("/") else os_dir + "/"
    try:
        items = _list_dir(entries, base, prefix, how, report)
        _segments(items, base, prefix, raw, how, segs)
    finally:
        if fd is not None:
            os.close(fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _segments(
    items: list[_Item], base: str, prefix: str, raw: bool, how: How, segs: list[Segment]
) -> None:
    """Stat each listed entry (``base``: the directory's os path + "/"); append the
    directory's segments to ``segs``."""
    fsencode = os.fsencode
    run: list[DiskRow] = []
    append = run.append
    figures = how.figures
    for key, entry, kind, bad in items:
        if kind in (_FILE, _LINKFILE) and not figures:  # listed only: size, mtime -1
            raw_name = fsencode(base + entry.name) if bad or raw else None
            append((prefix + key, -1, -1, False, 0, 0, raw_name, kind == _LINKFILE))
            continue
        if kind in (_FILE, _LINKFILE):
            try:
                st = entry.stat(follow_symlinks=kind == _FILE)
            except OSError as exc:
                problem = WalkProblem(prefix + key, kind_of(exc, "vanished"), detail_of(exc))
            else:
                if kind == _LINKFILE or st.st_mode & 0o170000 == 0o100000:  # S_ISREG
                    append(
                        (
                            prefix + key,
                            st.st_size,
                            st.st_mtime_ns,
                            False,
                            st.st_dev,
                            st.st_ino,
                            fsencode(base + entry.name) if bad or raw else None,
                            kind == _LINKFILE,
                        )
                    )
                    continue
                problem = WalkProblem(prefix + key, "vanished", "no longer a regular file")
        else:  # a directory (kind _DIR) or a followed directory symlink (_LINKDIR)
            try:
                st = entry.stat(follow_symlinks=kind == _LINKDIR)
            except OSError as exc:
                problem = WalkProblem(prefix + key[:-1], kind_of(exc, "vanished"), detail_of(exc))
            else:
                problem = None
        if run:
            segs.append(run)
            run = []
            append = run.append
        if problem is not None:
            segs.append(problem)
        else:
            dir_id = (st.st_dev, st.st_ino)
            segs.append(Sub(prefix + key, base + entry.name, raw or bad, dir_id, kind == _LINKDIR))
    if run:
        segs.append(run)


def _list_dir(
    entries: list[os.DirEntry[str]], base: str, prefix: str, how: How, report: ProblemSink
) -> list[_Item]:
    """One directory's entries to walk, sorted; odd ones reported."""
    follow, inside = how.follow, how.inside
    skip = how.ignored_among([e.name for e in entries]) if how.ignored_among else None
    items: list[_Item] = []
    append = items.append
    any_bad = False
    for entry in entries:
        name = entry.name
        bad = False
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                name = os.fsencode(name).decode("utf-8", "backslashreplace")
                bad = any_bad = True
                if how.name_ignored is not None and how.name_ignored(name):
                    continue
        if skip and name in skip:
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                append((name, entry, _FILE, bad))
            elif entry.is_dir(follow_symlinks=False):
                append((name + "/", entry, _DIR, bad))
            elif entry.is_symlink():
                kind = _symlink_kind(
                    entry, base + entry.name, prefix + name, follow, report, inside
                )
                if kind in (_FILE, _LINKFILE):
                    append((name, entry, kind, bad))
                elif kind == _LINKDIR:
                    append((name + "/", entry, _LINKDIR, bad))
            else:
                report(WalkProblem(prefix + name, "special", "FIFO, socket or device"))
        except OSError as exc:  # d_type unknown and lstat failed
            report(WalkProblem(prefix + name, kind_of(exc, "vanished"), detail_of(exc)))
    items.sort(key=_key)
    return _drop_ambiguous(items, prefix, report) if any_bad else items


def _symlink_kind(
    entry: os.DirEntry[str],
    os_path: str,
    path: str,
    follow: bool,
    report: ProblemSink,
    inside: Inside,
) -> int:
    """_FILE (its target's facts), _LINKFILE (a link to a file outside every root, catalogued
    as a link) or _LINKDIR for a symlink to walk; otherwise report it and return -1."""
    try:
        st = entry.stat()
    except OSError as exc:
        report(WalkProblem(path, kind_of(exc, "broken-symlink"), detail_of(exc)))
        return -1
    fmt = st.st_mode & S_IFMT
    if fmt == S_IFREG:
        return _FILE if follow or inside(os_path) else _LINKFILE
    if fmt != S_IFDIR:
        report(WalkProblem(path, "special", "symlink to a FIFO, socket or device"))
    elif follow:
        return _LINKDIR
    else:
        report(WalkProblem(path, "symlink-dir-skipped", "directory symlink not followed"))
    return -1


def _drop_ambiguous(items: list[_Item], prefix: str, report: ProblemSink) -> list[_Item]:
    """Keep one entry per sort key: a valid UTF-8 name wins, else the smallest raw name."""
    kept: list[_Item] = []
    for item in items:
        if kept and kept[-1][0] == item[0]:
            prev = kept[-1]
            if (item[3], os.fsencode(item[1].name)) < (prev[3], os.fsencode(prev[1].name)):
                kept[-1], item = item, prev
            raw = os.fsencode(item[1].name)
            report(WalkProblem(prefix + item[0].rstrip("/"), "ambiguous-name", f"raw name {raw!r}"))
        else:
            kept.append(item)
    return kept
