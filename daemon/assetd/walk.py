"""The sorted recursive walk: :func:`list_files_recursively` and what it reports.

It yields files in ascending catalog-path order (Python ``str`` order, i.e. code point order), so
a caller can merge it with a sorted database stream; what it skips is a :class:`WalkProblem`.
Each directory is read by :mod:`assetd.walk_dir`, ahead of the walk with the default scandir
(:mod:`assetd.walk_ahead`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, overload

from assetd.fsutil import S_IFDIR, S_IFMT, FileStat, IgnoreRules, encode_path, make_filestat
from assetd.paths import is_under
from assetd.walk_ahead import ReadAhead, Reader, ReadNow
from assetd.walk_dir import (
    DiskRow,
    How,
    Inside,
    ProblemSink,
    Run,
    Same,
    ScandirFn,
    Segment,
    Sub,
    WalkProblem,
    detail_of,
    read_into,
)
from assetd.walk_procs import Processes, idle_cores, picklable

__all__ = [
    "DiskRow",
    "Inside",
    "ProblemSink",
    "Run",
    "Same",
    "ScandirFn",
    "WalkProblem",
    "list_files_recursively",
]

PROCESSES = 2  # worker processes reading ahead (0: threads); the goals' machine has 2 cores
PROCESSES_AFTER = 20_000  # entries the walk reads itself first: a worker takes ~40 ms to start
PROCESS_WINDOW = 8  # directories read ahead at most by the workers


def _drop(problem: WalkProblem) -> None:
    pass


@overload
def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
    inside: Inside | None = None,
    runs: Literal[False] = False,
    figures: bool = True,
    catalog: None = None,
) -> Iterator[FileStat]: ...


@overload
def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
    inside: Inside | None = None,
    runs: Literal[True],
    figures: bool = True,
    catalog: None = None,
) -> Iterator[list[DiskRow]]: ...


@overload
def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
    inside: Inside | None = None,
    runs: Literal[True],
    figures: bool = True,
    catalog: tuple[str, int],
) -> Iterator[Run]: ...


def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
    inside: Inside | None = None,
    runs: bool = False,
    figures: bool = True,
    catalog: tuple[str, int] | None = None,
) -> Iterator[FileStat] | Iterator[list[DiskRow]] | Iterator[Run]:
    """Yield a :class:`FileStat` for each regular file below ``top``, in ascending ``path`` order.

    A file symlink is yielded at its own path: with its target's figures when ``inside(path)``
    says its target lies in a root (default: in ``root``) or with ``follow_symlinks``, else as
    a link (its own lstat figures, ``is_link``). Directory symlinks are followed only with
    ``follow_symlinks`` (``top`` itself too: without it, a ``top`` reached through a symlink is
    not a directory to walk); loops are always detected. Ignore rules apply to the
    components below ``root`` (default ``top``; ``top`` must be ``root`` or inside it). Odd
    entries are skipped and reported to ``on_problem`` (see :class:`WalkProblem`); the walk goes
    on. Raises ``FileNotFoundError`` when ``top`` does not exist and ``NotADirectoryError`` when
    it is not a directory, always at the call: ``top`` is listed before the iterator is returned,
    so a caller's ``try`` around the call covers it (a directory below ``top`` that vanishes
    later is reported as ``vanished``, never raised). Memory is one directory listing per level
    of the current descent, and a few read ahead.

    With ``runs``, yield lists of :data:`DiskRow` instead: the files in the same order, in runs
    of consecutive files of one directory (reconcile's fast path). With the default ``scandir``
    the next directories are listed and stat'ed ahead (:mod:`assetd.walk_ahead`): once the walk
    has read ``PROCESSES_AFTER`` entries, by worker processes (:mod:`assetd.walk_procs`) when
    the rules can be handed to them (``inside`` and the ignore rules pickle) and a core is idle
    then (else the walk reads each directory itself), on threads when the rules cannot;
    with another (a test's seam, which orders a race) each is read when the walk reaches it.

    ``figures=False`` lists the files without a ``stat`` each (directories and symlinks are
    still stat'ed): a file's size and mtime are then -1, its device and inode 0
    (:data:`~assetd.walk_dir.NO_FIGURES`), and a file gone or replaced by another type since
    the listing is yielded all the same. For a caller that reads the figures of every file it
    keeps itself (reconcile's first scan of a tree the catalog has no row under).

    ``catalog`` (with ``runs``: a SQLite catalog file and a root's id) lets the worker
    processes compare what they read with that root's rows: a stretch of a directory equal to
    them comes as one :class:`~assetd.walk_dir.Same` instead of its runs (reconcile's re-scan:
    the walk's thread then neither builds nor merges those files). Directories read in place
    come as runs, as without it.
    """
    top_os = os.path.abspath(top)
    root_os = top_os if root is None else os.path.abspath(root)
    rel = os.path.relpath(top_os, root_os)
    if rel == ".." or rel.startswith("../"):
        raise ValueError(f"top {top_os!r} is not inside root {root_os!r}")
    report = on_problem if on_problem is not None else _drop
    try:
        top_st = os.stat(top_os)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise FileNotFoundError(errno.ENOENT, "No such directory", top_os) from exc
    except OSError as exc:
        report(WalkProblem(encode_path(top_os)[0], "unreadable", detail_of(exc)))
        return iter(())
    if top_st.st_mode & S_IFMT != S_IFDIR:
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", top_os)
    if (
        not follow_symlinks
        and rel != "."
        and not is_under(os.path.realpath(top_os), os.path.realpath(root_os))
    ):
        raise NotADirectoryError(errno.ENOTDIR, "A directory symlink, not followed", top_os)
    if ignore is not None and rel != "." and ignore.is_ignored(encode_path(rel)[0]):
        return iter(())
    real_root = os.path.realpath(root_os)

    def in_root(path: str) -> bool:
        return is_under(os.path.realpath(path), real_root)

    inside = inside or in_root
    top_path, top_raw = encode_path(top_os)
    prefix = top_path if top_path.endswith("/") else top_path + "/"
    rules = ignore if ignore is not None and ignore.patterns else None
    how = How(
        rules.name_ignored if rules else None,
        rules.ignored_among if rules else None,
        follow_symlinks,
        scandir,
        inside,
        scandir is os.scandir,
        figures,
        catalog if runs else None,
    )
    # Listed now, not at the first next(): a top gone or replaced since the stat raises here.
    first: list[Segment] = []
    read_into(top_os, prefix, top_raw is not None, how, report, first, by_fd=how.by_fd, is_top=True)
    if not first:
        return iter(())
    start = _Top(prefix, top_raw is not None, (top_st.st_dev, top_st.st_ino))
    reader: Reader[Sub, list[Segment]]
    if scandir is not os.scandir:
        reader = ReadNow(how.read)
    elif PROCESSES and picklable(how):
        reader = ReadAhead(
            how.read,
            small=how.read_small,
            size=_entries,
            pool=lambda: Processes(how, PROCESSES if idle_cores() > 0 else 0),
            window=PROCESS_WINDOW,
            after=PROCESSES_AFTER if catalog is None else 0,  # a re-scan of a large tree
        )
    else:
        reader = ReadAhead(how.read, small=how.read_small, size=_entries)
    stream = _walk(first, start, how, report, reader)
    return stream if runs else _files(stream)


def _entries(segs: list[Segment]) -> int:
    """How many entries a directory's segments hold (a run counts its files)."""
    return sum(
        len(seg) if isinstance(seg, list) else seg.count if isinstance(seg, Same) else 1
        for seg in segs
    )


def _files(runs: Iterator[Run]) -> Iterator[FileStat]:
    new_filestat = make_filestat  # a local name: the hot loop
    for run in runs:
        if isinstance(run, Same):  # not without a catalog
            raise TypeError("a walk without runs yields no Same")
        for path, size, mtime_ns, _, device, inode, raw, is_link in run:
            yield new_filestat(path, size, mtime_ns, device, inode, raw, is_link)


@dataclass(frozen=True, slots=True)
class _Top:
    prefix: str  # catalog form, ending in "/"
    raw: bool  # the prefix holds non-UTF-8 bytes
    id: tuple[int, int]  # (st_dev, st_ino)


def _walk(
    first: list[Segment],
    top: _Top,
    how: How,
    report: ProblemSink,
    reader: Reader[Sub, list[Segment]],
) -> Iterator[Run]:
    """The runs of files below ``top`` in path order (and :class:`Same` stretches); each
    directory's segments are read by ``reader`` (now, or ahead on its threads), and their
    problems reported here, in order."""
    top_id = top.id
    top_path = top.prefix[:-1] if top.prefix != "/" else top.prefix
    follow = how.follow
    # The current descent: per directory, the rest of its segments and its (st_dev, st_ino).
    stack = [(iter(first), top_id)]
    ancestors = {top_id}
    visited = {top_id: top_path}  # only kept up to date (and needed) with follow
    reader.enter([s for s in first if isinstance(s, Sub)])
    try:
        while stack:
            for seg in stack[-1][0]:
                if isinstance(seg, list | Same):
                    yield seg
                    continue
                if isinstance(seg, WalkProblem):
                    report(seg)
                    continue
                if seg.id in ancestors:
                    reader.drop(seg)
                    report(WalkProblem(seg.prefix[:-1], "loop", "directory is its own ancestor"))
                    continue
                if follow:
                    seen = visited.get(seg.id)
                    if seen is not None and seg.link:
                        reader.drop(seg)
                        report(WalkProblem(seg.prefix[:-1], "duplicate-dir", f"walked at {seen}"))
                        continue
                    visited[seg.id] = seg.prefix[:-1]
                segs = reader.read(seg)
                if segs:
                    stack.append((iter(segs), seg.id))
                    ancestors.add(seg.id)
                    reader.enter([s for s in segs if isinstance(s, Sub)])
                    break  # descend; this directory's remaining segments wait on the stack
            else:
                ancestors.discard(stack.pop()[1])
                reader.leave()
    finally:
        reader.close()
