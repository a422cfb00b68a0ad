"""File helpers: stat, path encoding, ignore rules and the sorted recursive walk.

A path has two forms here (DESIGN §3). The *OS form* is a ``str`` as ``os.scandir`` and
``os.fsdecode`` produce it: bytes that are not valid UTF-8 appear as lone surrogates
(``surrogateescape``). The *catalog form* is what ``asset_cache_states.file_path`` stores: valid
UTF-8 text, each undecodable byte written as ``\\xNN``, with the exact bytes kept apart
(``file_path_raw``). :func:`encode_path` goes from the first to the second, :func:`os_path_of` back.

:func:`list_files_recursively` yields files in ascending catalog-path order (Python ``str``
order, i.e. code point order), so a caller can merge it with a sorted database stream.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeAlias

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_S_IFDIR = 0o040000

# errno values meaning "this path does not lead to anything" (for a symlink: it is broken).
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


@dataclass(frozen=True, slots=True)
class FileStat:
    """One regular file as the catalog records it."""

    path: str  # catalog form of the absolute path (valid UTF-8 text)
    size: int
    mtime_ns: int
    device: int
    inode: int
    raw: bytes | None = None  # exact OS bytes of the path, only when the name is not valid UTF-8


# The frozen dataclass __init__ sets each field through object.__setattr__: 1.6 us a call, a
# quarter of the walk's time per file. The walk fills the slots directly instead (0.6 us).
_FS_SLOTS = FileStat.__dict__
_set_path, _set_size, _set_mtime_ns, _set_device, _set_inode, _set_raw = (
    _FS_SLOTS[name].__set__ for name in ("path", "size", "mtime_ns", "device", "inode", "raw")
)


def _make_filestat(
    path: str, size: int, mtime_ns: int, device: int, inode: int, raw: bytes | None
) -> FileStat:
    """``FileStat(path, size, mtime_ns, device, inode, raw)``, faster."""
    fs: FileStat = object.__new__(FileStat)
    _set_path(fs, path)
    _set_size(fs, size)
    _set_mtime_ns(fs, mtime_ns)
    _set_device(fs, device)
    _set_inode(fs, inode)
    _set_raw(fs, raw)
    return fs


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


def encode_path(os_path: str) -> tuple[str, bytes | None]:
    """Return ``(catalog_path, raw)``; ``raw`` is ``None`` unless the path is not valid UTF-8."""
    if os_path.isascii():
        return os_path, None
    try:
        os_path.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(os_path)
        return raw.decode("utf-8", "backslashreplace"), raw
    return os_path, None


def os_path_of(file_path: str, file_path_raw: bytes | None) -> str:
    """Return the OS form of a catalog path, to touch the file (inverse of :func:`encode_path`)."""
    return os.fsdecode(file_path_raw) if file_path_raw else file_path


def get_mtime_ns(path: str) -> int:
    """``st_mtime_ns`` of ``path``, following symlinks; raises ``OSError``."""
    return os.stat(path).st_mtime_ns


def get_size_and_mtime_ns(path: str, follow_symlinks: bool = True) -> tuple[int, int]:
    """``(st_size, st_mtime_ns)`` of ``path``; raises ``OSError``."""
    st = os.stat(path, follow_symlinks=follow_symlinks)
    return st.st_size, st.st_mtime_ns


def verify_file_unchanged(path: str, size: int, mtime_ns: int) -> bool:
    """True iff ``path`` is still a regular file with exactly this size and mtime; never raises
    ``OSError`` (a vanished or unreadable path is "changed")."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_mode & _S_IFMT == _S_IFREG and st.st_size == size and st.st_mtime_ns == mtime_ns


def stat_file(os_path: str) -> FileStat | None:
    """Stat ``os_path`` (following a symlink); ``None`` if nothing is there (a broken symlink
    too) or it is not a regular file. Other errors (EACCES...) propagate: unknown is not gone."""
    try:
        st = os.stat(os_path)
    except OSError as exc:
        if exc.errno in _GONE:
            return None
        raise
    if st.st_mode & _S_IFMT != _S_IFREG:
        return None
    path, raw = encode_path(os_path)
    return FileStat(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, raw)


_MAGIC = re.compile(r"[*?\[]")


class IgnoreRules:
    """fnmatch patterns (case-sensitive) matched against each component of a path below a root.

    Patterns match the catalog form of a name (what the walker passes); for valid UTF-8 names
    that is the name itself. A pattern containing ``/`` could never match a component, so it is
    refused with ``ValueError``.
    """

    __slots__ = ("_literals", "_matchers", "_patterns", "_prefixes", "_regex", "_suffixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = tuple(patterns)
        literals: set[str] = set()
        suffixes: list[str] = []
        prefixes: list[str] = []
        others: list[str] = []
        for pattern in self._patterns:
            if "/" in pattern:
                raise ValueError(
                    f"ignore pattern {pattern!r} contains '/': patterns match one name"
                )
            if not _MAGIC.search(pattern):
                literals.add(pattern)
            elif pattern[0] == "*" and not _MAGIC.search(pattern, 1):
                suffixes.append(pattern[1:])
            elif pattern[-1] == "*" and not _MAGIC.search(pattern[:-1]):
                prefixes.append(pattern[:-1])
            else:
                others.append(pattern)
        self._matchers = tuple(re.compile(fnmatch.translate(p)).match for p in self._patterns)
        # name_ignored's fast paths: set lookup, str.endswith/startswith on tuples, one regex.
        self._literals = frozenset(literals)
        self._suffixes = tuple(suffixes)
        self._prefixes = tuple(prefixes)
        joined = "|".join(fnmatch.translate(p) for p in others)
        self._regex = re.compile(joined).match if others else None

    @property
    def patterns(self) -> tuple[str, ...]:
        return self._patterns

    def __repr__(self) -> str:
        return f"IgnoreRules({list(self._patterns)!r})"

    def match(self, relative_path: str) -> str | None:
        """The first pattern (in the given order) matching any component of ``relative_path``
        (``"a/b/c.tmp"``; empty and ``.`` components are skipped), or ``None``."""
        names = [n for n in relative_path.split("/") if n and n != "."]
        for pattern, matcher in zip(self._patterns, self._matchers, strict=True):
            for name in names:
                if matcher(name) is not None:
                    return pattern
        return None

    def is_ignored(self, relative_path: str) -> bool:
        return self.match(relative_path) is not None

    def name_ignored(self, name: str) -> bool:
        """Whether one path component matches a pattern (the walker calls this per entry)."""
        return (
            name in self._literals
            or name.endswith(self._suffixes)
            or name.startswith(self._prefixes)
            or (self._regex is not None and self._regex(name) is not None)
        )


def _drop(problem: WalkProblem) -> None:
    pass


def _kind_of(exc: OSError, gone: str) -> str:
    return gone if exc.errno in _GONE else "unreadable"


def _detail(exc: OSError) -> str:
    return exc.strerror or str(exc)


# An entry of one listed directory: (sort key, entry, kind, name is not valid UTF-8).
# The sort key is the catalog-form name, plus "/" for a directory: then the order of keys is the
# order of the full paths, since every path below directory d starts with "d/".
_Item: TypeAlias = tuple[str, "os.DirEntry[str]", int, bool]
_FILE, _DIR, _LINKDIR = 0, 1, 2
_key = itemgetter(0)


def list_files_recursively(
    top: str,
    *,
    root: str | None = None,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    on_problem: ProblemSink | None = None,
    scandir: ScandirFn = os.scandir,
) -> Iterator[FileStat]:
    """Yield a :class:`FileStat` for each regular file below ``top``, in ascending ``path`` order.

    A file symlink is yielded at its own path with its target's figures. Directory symlinks are
    followed only with ``follow_symlinks``; loops are always detected. Ignore rules apply to the
    components below ``root`` (default ``top``; ``top`` must be ``root`` or inside it). Odd
    entries are skipped and reported to ``on_problem`` (see :class:`WalkProblem`); the walk goes
    on. Raises ``FileNotFoundError`` (at the call or, if it goes in between, at the first item)
    when ``top`` does not exist and ``NotADirectoryError`` when it is not a directory. Memory is
    one directory listing per level of the current descent.
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
    if top_st.st_mode & _S_IFMT != _S_IFDIR:
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", top_os)
    if ignore is not None and rel != "." and ignore.is_ignored(encode_path(rel)[0]):
        return iter(())
    return _walk(top_os, (top_st.st_dev, top_st.st_ino), ignore, follow_symlinks, report, scandir)


def _walk(
    top_os: str,
    top_id: tuple[int, int],
    ignore: IgnoreRules | None,
    follow: bool,
    report: ProblemSink,
    scandir: ScandirFn,
) -> Iterator[FileStat]:
    top_path, top_raw = encode_path(top_os)
    prefix = top_path if top_path.endswith("/") else top_path + "/"
    name_ignored = ignore.name_ignored if ignore is not None else None
    items = _list_dir(top_os, prefix, name_ignored, follow, report, scandir, is_top=True)
    if not items:
        return
    # The current descent: per directory, the rest of its sorted entries, its catalog path
    # prefix (ending in "/"), whether that prefix holds non-UTF-8 bytes, and its (st_dev, st_ino).
    stack = [(iter(items), prefix, top_raw is not None, top_id)]
    ancestors = {top_id}
    visited = {top_id: top_path}  # only kept up to date (and needed) with follow
    fsencode = os.fsencode
    make_filestat = _make_filestat
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
                yield make_filestat(
                    prefix + key,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_dev,
                    st.st_ino,
                    fsencode(entry.path) if bad or prefix_raw else None,
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
            items = _list_dir(entry.path, dir_prefix, name_ignored, follow, report, scandir)
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
    *,
    is_top: bool = False,
) -> list[_Item] | None:
    """One directory's entries to walk, sorted; odd ones reported. ``None`` if unlistable."""
    try:
        with scandir(os_dir) as it:
            entries = list(it)
    except OSError as exc:
        if is_top and isinstance(exc, FileNotFoundError):
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
                kind = _symlink_kind(entry, prefix + name, follow, report)
                if kind == _FILE:
                    append((name, entry, _FILE, bad))
                elif kind == _LINKDIR:
                    append((name + "/", entry, _LINKDIR, bad))
            else:
                report(WalkProblem(prefix + name, "special", "FIFO, socket or device"))
        except OSError as exc:  # d_type unknown and lstat failed
            report(WalkProblem(prefix + name, _kind_of(exc, "vanished"), _detail(exc)))
    items.sort(key=_key)
    return _drop_ambiguous(items, prefix, report) if any_bad else items


def _symlink_kind(entry: os.DirEntry[str], path: str, follow: bool, report: ProblemSink) -> int:
    """_FILE or _LINKDIR for a symlink to walk; otherwise report it and return -1."""
    try:
        st = entry.stat()
    except OSError as exc:
        report(WalkProblem(path, _kind_of(exc, "broken-symlink"), _detail(exc)))
        return -1
    fmt = st.st_mode & _S_IFMT
    if fmt == _S_IFREG:
        return _FILE
    if fmt != _S_IFDIR:
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


_OCTAL = re.compile(r"\\([0-7]{3})")
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs", "ncpfs"}
)


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the filesystem ``path`` lies on (``ext4``, ``nfs4``, ``fuse.sshfs``), from
    the longest mount point that contains it; None if it cannot be told."""
    try:
        real = os.path.realpath(path)
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        mount_point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # "\040": " "
        fs_type = fields[sep + 1]
        if (real == mount_point or real.startswith(mount_point.rstrip("/") + "/")) and len(
            mount_point
        ) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def is_network_filesystem(fs_type: str | None) -> bool:
    """NFS, SMB/CIFS and FUSE (sshfs, rclone, ...): inotify does not see other hosts' changes."""
    if fs_type is None:
        return False
    return fs_type in NETWORK_FILESYSTEMS or fs_type == "fuse" or fs_type.startswith("fuse.")
