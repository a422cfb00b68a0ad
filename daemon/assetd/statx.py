"""A file's birth time, by ``statx(2)`` through ctypes (Python 3.11 has no ``os.statx``).

A file keeps its birth time when it is renamed and a new file gets its own, even on an inode the
filesystem reused at once (ext4 does): so it tells a moved file from a new one
(:mod:`assetd.catalog.pairing`). ext4, xfs and btrfs keep it; tmpfs before Linux 5.18, FAT, NFS
and most FUSE filesystems do not: :func:`birth_ns` then says ``None``, as it does where glibc
has no ``statx`` (before 2.28) or the kernel refuses the call (seccomp, before 4.11).

One ``statx`` costs about what an ``os.stat`` costs (``bench/scan_bench.py --birth``); the
daemon reads it only where a row is written (seeded, changed, restored), never for the
unchanged files of a walk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import threading
from typing import Any

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_SYNC_AS_STAT = 0x0000
STATX_BTIME = 0x0800
STATX_BASIC_STATS = 0x07FF


# struct statx of <linux/stat.h> (256 bytes, the kernel's ABI): stx_mask is the u32 at 0,
# stx_btime the statx_timestamp (s64 tv_sec, u32 tv_nsec) at 80. Read with struct from a
# per-thread buffer: a ctypes.Structure built per call costs three times the syscall.
_SIZE = 256
_MASK = struct.Struct("=I").unpack_from
_BTIME = struct.Struct("=qI").unpack_from
_BTIME_OFFSET = 80
_INO = struct.Struct("=Q").unpack_from  # stx_ino, u64 at 32
_INO_OFFSET = 32
_DEV = struct.Struct("=II").unpack_from  # stx_dev_major, stx_dev_minor, u32 at 136 and 140
_DEV_OFFSET = 136
# stx_mask (u32 at 0), stx_mode (u16 at 28), stx_ino and stx_size (u64 at 32, 40), stx_btime
# and stx_mtime (s64, u32 at 80 and 112), stx_dev_major and stx_dev_minor (u32 at 136, 140):
# the figures a catalog row records, in one unpack.
_FIGURES = struct.Struct("=I24xH2xQQ32xqI20xqI12xII").unpack_from
_local = threading.local()
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _load() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.statx
    except (OSError, AttributeError):  # no libc by that name, or glibc < 2.28
        return None
    fn.restype = ctypes.c_int  # no argtypes: plain ints and bytes convert faster unchecked
    return fn


_statx = _load()


def _buffer() -> Any:
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = ctypes.create_string_buffer(_SIZE)
    return buf


def available() -> bool:
    """Whether this process can call ``statx`` at all (glibc >= 2.28)."""
    return _statx is not None


def _call(path: str, follow: bool) -> Any:
    """The filled per-thread buffer; raises ``OSError``."""
    if _statx is None:
        raise OSError(errno.ENOSYS, "statx is not available in this C library")
    buf = _buffer()
    flags = AT_STATX_SYNC_AS_STAT if follow else AT_SYMLINK_NOFOLLOW
    if _statx(AT_FDCWD, os.fsencode(path), flags, STATX_BTIME, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return buf


def _birth(buf: Any) -> int | None:
    if not _MASK(buf, 0)[0] & STATX_BTIME:
        return None
    seconds, nanoseconds = _BTIME(buf, _BTIME_OFFSET)
    return int(seconds) * 1_000_000_000 + int(nanoseconds)


def birth_or_raise(path: str, *, follow: bool = True) -> int | None:
    """The birth time of ``path`` (of the symlink itself with ``follow=False``) in nanoseconds
    since the epoch, or ``None`` when its filesystem keeps none; a failing call (gone,
    unreadable, no ``statx`` in this C library) raises ``OSError``."""
    return _birth(_call(path, follow))


def birth_ns(path: str, *, follow: bool = True) -> int | None:
    """:func:`birth_or_raise`, with ``None`` for any failure too: unknown is never a guess."""
    try:
        return _birth(_call(path, follow))
    except OSError:
        return None


Figures = tuple[int, int, int, int, int, int | None]
"""``(st_mode, st_size, st_mtime_ns, st_dev, st_ino, birth_ns)`` of one path (its own, as
``lstat`` gives them), from :func:`lstat_birth`."""


def lstat_birth(path: str) -> Figures:
    """The figures ``os.lstat(path)`` gives that a catalog row records, and the birth time
    (``None`` where the filesystem keeps none), from one ``statx`` call: what a first scan reads
    of each file it seeds. Raises ``OSError`` as ``os.lstat`` does (``ENOSYS`` where this C
    library has no ``statx``)."""
    if _statx is None:
        raise OSError(errno.ENOSYS, "statx is not available in this C library")
    buf = _buffer()
    name = path.encode(_FS_ENCODING, _FS_ERRORS)  # os.fsencode, without its checks (hot path)
    if _statx(AT_FDCWD, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, buf):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    mask, mode, ino, size, b_sec, b_nsec, m_sec, m_nsec, major, minor = _FIGURES(buf, 0)
    birth = b_sec * 1_000_000_000 + b_nsec if mask & STATX_BTIME else None
    return mode, size, m_sec * 1_000_000_000 + m_nsec, os.makedev(major, minor), ino, birth


def identity(path: str, *, follow: bool = True) -> tuple[int, int, int | None] | None:
    """``(st_dev, st_ino, birth_ns)`` of ``path`` from one call (the birth time ``None`` where
    the filesystem keeps none); ``None`` if the call fails. The device and inode tell whether
    the file is still the one a row describes."""
    try:
        buf = _call(path, follow)
    except OSError:
        return None
    (ino,) = _INO(buf, _INO_OFFSET)
    major, minor = _DEV(buf, _DEV_OFFSET)
    return os.makedev(major, minor), int(ino), _birth(buf)
