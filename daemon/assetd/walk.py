"""The sorted recursive walk: :func:`list_files_recursively` and what it reports.

It yields files in ascending catalog-path order (Python ``str`` order, i.e. code point order), so
a caller can merge it with a sorted database stream; what it skips is a :class:`WalkProblem`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeAlias

from assetd.fsutil import (
    GONE_ERRNOS,
    S_IFDIR,
    S_IFMT,
    S_IFREG,
    FileStat,
    IgnoreRules,
    encode_path,
    make_filestat,
)
from assetd.paths import is_under


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


def _drop(problem: WalkProblem) -> None:
    pass


def _kind_of(exc: OSError, gone: str) -> str:
    return gone if exc.errno in GONE_ERRNOS else "unreadable"


def _detail(exc: OSError) -> str:
    return exc.strerror or str(exc)


# An entry of one listed directory: (sort key, entry, kind, name is not valid UTF-8).
# The sort key is the catalog-form name, plus "/" for a directory: then the order of keys is the
# order of the full paths, since every path below directory d starts with "d/".
_Item: TypeAlias = tuple[str, "os.DirEntry[str]", int, bool]
_FILE, _DIR, _LINKDIR, _LINKFILE = 0, 1, 2, 3
Inside: TypeAlias = Callable[[str], bool]
"""``inside(os_path)``: whether a symlink's target lies in a root (DESIGN §5)."""
_key = itemgetter(0)


def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
    inside: Inside | None = None,
) -> Iterator[FileStat]:
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
    of the current descent.
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
        report(WalkProblem(encode_path(top_os)[0], "unreadable", _detail(exc)))
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
    name_ignored = ignore.name_ignored if ignore is not None else None
    # Listed now, not at the first next(): a top gone or replaced since the stat raises here.
    items = _list_dir(
        top_os, prefix, name_ignored, follow_symlinks, report, scandir, inside, is_top=True
    )
    if not items:
        return iter(())
    start = _Top(prefix, top_raw is not None, (top_st.st_dev, top_st.st_ino))
    return _walk(items, start, name_ignored, follow_symlinks, report, scandir, inside)


@dataclass(frozen=True, slots=True)
class _Top:
    prefix: str  # catalog form, ending in "/"
    raw: bool  # the prefix holds non-UTF-8 bytes
    id: tuple[int, int]  # (st_dev, st_ino)


def _walk(
    first: list[_Item],
    top: _Top,
    name_ignored: Callable[[str], bool] | None,
    follow: bool,
    report: ProblemSink,
    scandir: ScandirFn,
    inside: Inside,
) -> Iterator[FileStat]:
    prefix, top_id = top.prefix, top.id
    top_path = prefix[:-1] if prefix != "/" else prefix
    # The current descent: per directory, the rest of its sorted entries, its catalog path
    # prefix (ending in "/"), whether that prefix holds non-UTF-8 bytes, and its (st_dev, st_ino).
    stack = [(iter(first), prefix, top.raw, top_id)]
    ancestors = {top_id}
    visited = {top_id: top_path}  # only kept up to date (and needed) with follow
    fsencode = os.fsencode
    new_filestat = make_filestat  # a local name: the hot loop
    while stack:
        entries, prefix, prefix_raw, _ = stack[-1]
        for key, entry, kind, bad in entries:
            if not kind:  # _FILE
                try:
                    st = entry.stat()
                except OSError as exc:
                    report(WalkProblem(prefix + key, _kind_of(exc, "vanished"), _detail(exc)))
                    continue
                if st.st_mode & 0o170000 != 0o100000:  # not S_ISREG (literals: no global lookup)
                    report(WalkProblem(prefix + key, "vanished", "no longer a regular file"))
                    continue
                yield new_filestat(
                    prefix + key,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_dev,
                    st.st_ino,
                    fsencode(entry.path) if bad or prefix_raw else None,
                )
                continue
            if kind == _LINKFILE:  # a link to a file outside every root: its own figures
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    report(WalkProblem(prefix + key, _kind_of(exc, "vanished"), _detail(exc)))
                    continue
                yield new_filestat(
                    prefix + key,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_dev,
                    st.st_ino,
                    fsencode(entry.path) if bad or prefix_raw else None,
                    True,
                )
                continue
            # A directory (kind _DIR) or a followed directory symlink (_LINKDIR).
            dir_prefix = prefix + key
            try:
                st = entry.stat(follow_symlinks=kind == _LINKDIR)
            except OSError as exc:
                report(WalkProblem(dir_prefix[:-1], _kind_of(exc, "vanished"), _detail(exc)))
                continue
            dir_id = (st.st_dev, st.st_ino)
            if dir_id in ancestors:
                report(WalkProblem(dir_prefix[:-1], "loop", "directory is its own ancestor"))
                continue
            if follow:
                seen = visited.get(dir_id)
                if seen is not None and kind == _LINKDIR:
                    report(WalkProblem(dir_prefix[:-1], "duplicate-dir", f"walked at {seen}"))
                    continue
                visited[dir_id] = dir_prefix[:-1]
            items = _list_dir(entry.path, dir_prefix, name_ignored, follow, report, scandir, inside)
            if items:
                stack.append((iter(items), dir_prefix, prefix_raw or bad, dir_id))
                ancestors.add(dir_id)
                break  # descend; this directory's remaining entries wait on the stack
        else:
            ancestors.discard(stack.pop()[3])


def _list_dir(
    os_dir: str,
    prefix: str,
    name_ignored: Callable[[str], bool] | None,
    follow: bool,
    report: ProblemSink,
    scandir: ScandirFn,
    inside: Inside,
    *,
    is_top: bool = False,
) -> list[_Item] | None:
    """One directory's entries to walk, sorted; odd ones reported. ``None`` if unlistable."""
    try:
        with scandir(os_dir) as it:
            entries = list(it)
    except OSError as exc:
        if is_top and isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise
        report(WalkProblem(prefix[:-1], _kind_of(exc, "vanished"), _detail(exc)))
        return None
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
        if name_ignored is not None and name_ignored(name):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                append((name, entry, _FILE, bad))
            elif entry.is_dir(follow_symlinks=False):
                append((name + "/", entry, _DIR, bad))
            elif entry.is_symlink():
                kind = _symlink_kind(entry, prefix + name, follow, report, inside)
                if kind in (_FILE, _LINKFILE):
                    append((name, entry, kind, bad))
                elif kind == _LINKDIR:
                    append((name + "/", entry, _LINKDIR, bad))
            else:
                report(WalkProblem(prefix + name, "special", "FIFO, socket or device"))
        except OSError as exc:  # d_type unknown and lstat failed
            report(WalkProblem(prefix + name, _kind_of(exc, "vanished"), _detail(exc)))
    items.sort(key=_key)
    return _drop_ambiguous(items, prefix, report) if any_bad else items


def _symlink_kind(
    entry: os.DirEntry[str], path: str, follow: bool, report: ProblemSink, inside: Inside
) -> int:
    """_FILE (its target's facts), _LINKFILE (a link to a file outside every root, catalogued
    as a link) or _LINKDIR for a symlink to walk; otherwise report it and return -1."""
    try:
        st = entry.stat()
    except OSError as exc:
        report(WalkProblem(path, _kind_of(exc, "broken-symlink"), _detail(exc)))
        return -1
    fmt = st.st_mode & S_IFMT
    if fmt == S_IFREG:
        return _FILE if follow or inside(entry.path) else _LINKFILE
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
