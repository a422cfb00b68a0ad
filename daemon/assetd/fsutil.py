"""File helpers: stat, path encoding, ignore rules, filesystem type.

A path has two forms here (DESIGN §3). The *OS form* is a ``str`` as ``os.scandir`` and
``os.fsdecode`` produce it: bytes that are not valid UTF-8 appear as lone surrogates
(``surrogateescape``). The *catalog form* is what ``asset_cache_states.file_path`` stores: valid
UTF-8 text, each undecodable byte written as ``\\xNN``, with the exact bytes kept apart
(``file_path_raw``). :func:`encode_path` goes from the first to the second, :func:`os_path_of` back.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

S_IFMT = 0o170000
S_IFREG = 0o100000
S_IFDIR = 0o040000

# errno values meaning "this path does not lead to anything" (for a symlink: it is broken).
GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})

StatFn: TypeAlias = Callable[[str], os.stat_result]
"""The shape of ``os.stat``/``os.lstat``: the seam tests replace."""


@dataclass(frozen=True, slots=True)
class FileStat:
    """One regular file as the catalog records it."""

    path: str  # catalog form of the absolute path (valid UTF-8 text)
    size: int
    mtime_ns: int
    device: int
    inode: int
    raw: bytes | None = None  # exact OS bytes of the path, only when the name is not valid UTF-8
    is_link: bool = False  # a symlink catalogued as a link (its own lstat; never read or hashed)


# The frozen dataclass __init__ sets each field through object.__setattr__: 1.6 us a call, a
# quarter of the walk's time per file. The walk fills the slots directly instead (0.6 us).
_FS_SLOTS = FileStat.__dict__
_set_path, _set_size, _set_mtime_ns, _set_device, _set_inode, _set_raw, _set_is_link = (
    _FS_SLOTS[name].__set__
    for name in ("path", "size", "mtime_ns", "device", "inode", "raw", "is_link")
)


def make_filestat(
    path: str,
    size: int,
    mtime_ns: int,
    device: int,
    inode: int,
    raw: bytes | None,
    is_link: bool = False,
) -> FileStat:
    """``FileStat(path, size, mtime_ns, device, inode, raw, is_link)``, faster."""
    fs: FileStat = object.__new__(FileStat)
    _set_path(fs, path)
    _set_size(fs, size)
    _set_mtime_ns(fs, mtime_ns)
    _set_device(fs, device)
    _set_inode(fs, inode)
    _set_raw(fs, raw)
    _set_is_link(fs, is_link)
    return fs


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
    return st.st_mode & S_IFMT == S_IFREG and st.st_size == size and st.st_mtime_ns == mtime_ns


def stat_file(os_path: str) -> FileStat | None:
    """Stat ``os_path`` (following a symlink); ``None`` if nothing is there (a broken symlink
    too) or it is not a regular file. Other errors (EACCES...) propagate: unknown is not gone."""
    try:
        st = os.stat(os_path)
    except OSError as exc:
        if exc.errno in GONE_ERRNOS:
            return None
        raise
    if st.st_mode & S_IFMT != S_IFREG:
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
        # name_ignored's fast paths per component: the live handler and worker call this per
        # changed path (match() tries every pattern's regex on every component)
        name_ignored = self.name_ignored
        return any(name_ignored(n) for n in relative_path.split("/") if n and n != ".")

    def ignored_among(self, names: list[str]) -> set[str]:
        """The names of one directory that :meth:`name_ignored` would skip, found for the whole
        listing at once (the walk's hot path: most directories hold none)."""
        hits = set(self._literals.intersection(names))
        if self._suffixes or self._prefixes:
            joined = "\0" + "\0".join(names) + "\0"  # no name holds NUL
            for suffix in self._suffixes:
                if suffix + "\0" in joined:
                    hits.update(n for n in names if n.endswith(suffix))
            for prefix in self._prefixes:
                if "\0" + prefix in joined:
                    hits.update(n for n in names if n.startswith(prefix))
        if self._regex is not None:
            match = self._regex
            hits.update(n for n in names if match(n) is not None)
        return hits

    def name_ignored(self, name: str) -> bool:
        """Whether one path component matches a pattern (the walker calls this per entry)."""
        return (
            name in self._literals
            or name.endswith(self._suffixes)
            or name.startswith(self._prefixes)
            or (self._regex is not None and self._regex(name) is not None)
        )


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
