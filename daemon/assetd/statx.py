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
from typing import Any

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_SYNC_AS_STAT = 0x0000
STATX_BTIME = 0x0800



class _Timestamp(ctypes.Structure):
    _fields_ = (
        ("tv_sec", ctypes.c_int64),
        ("tv_nsec", ctypes.c_uint32),
        ("_reserved", ctypes.c_int32),
    )


class _Statx(ctypes.Structure):
    """``struct statx`` of <linux/stat.h> (256 bytes, the kernel's ABI)."""

    _fields_ = (
        ("stx_mask", ctypes.c_uint32),
        ("stx_blksize", ctypes.c_uint32),
        ("stx_attributes", ctypes.c_uint64),
        ("stx_nlink", ctypes.c_uint32),
        ("stx_uid", ctypes.c_uint32),
        ("stx_gid", ctypes.c_uint32),
        ("stx_mode", ctypes.c_uint16),
        ("_spare0", ctypes.c_uint16),
        ("stx_ino", ctypes.c_uint64),
        ("stx_size", ctypes.c_uint64),
        ("stx_blocks", ctypes.c_uint64),
        ("stx_attributes_mask", ctypes.c_uint64),
        ("stx_atime", _Timestamp),
        ("stx_btime", _Timestamp),
        ("stx_ctime", _Timestamp),
        ("stx_mtime", _Timestamp),
        ("stx_rdev_major", ctypes.c_uint32),
        ("stx_rdev_minor", ctypes.c_uint32),
        ("stx_dev_major", ctypes.c_uint32),
        ("stx_dev_minor", ctypes.c_uint32),
        ("_spare2", ctypes.c_uint64 * 14),
    )


def _load() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.statx
    except (OSError, AttributeError):  # no libc by that name, or glibc < 2.28
        return None
    fn.argtypes = (
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_Statx),
    )
    fn.restype = ctypes.c_int
    return fn


_statx = _load()


def available() -> bool:
    """Whether this process can call ``statx`` at all (glibc >= 2.28)."""
    return _statx is not None


def birth_or_raise(path: str, *, follow: bool = True) -> int | None:
    """The birth time of ``path`` (of the symlink itself with ``follow=False``) in nanoseconds
    since the epoch, or ``None`` when its filesystem keeps none; a failing call (gone,
    unreadable, no ``statx`` in this C library) raises ``OSError``."""
    if _statx is None:
        raise OSError(errno.ENOSYS, "statx is not available in this C library")
    buf = _Statx()
    flags = AT_STATX_SYNC_AS_STAT if follow else AT_SYMLINK_NOFOLLOW
    if _statx(AT_FDCWD, os.fsencode(path), flags, STATX_BTIME, ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    if not buf.stx_mask & STATX_BTIME:
        return None
    return int(buf.stx_btime.tv_sec) * 1_000_000_000 + int(buf.stx_btime.tv_nsec)


def birth_ns(path: str, *, follow: bool = True) -> int | None:
    """:func:`birth_or_raise`, with ``None`` for any failure too: unknown is never a guess."""
    try:
        return birth_or_raise(path, follow=follow)
    except OSError:
        return None
