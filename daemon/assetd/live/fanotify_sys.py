"""fanotify(7) through ctypes: init, mark, read and parse events, resolve file handles. No threads.

Why ctypes: the one maintained binding on PyPI (pyfanotify 0.3.0) runs its own reader process and
hands out paths matched by patterns; it does not expose the directory-handle-plus-name records
(``FAN_EVENT_INFO_TYPE_DFID_NAME``) nor ``FAN_RENAME``'s old/new records, and resolves every
event's path itself, without the cache the emitter needs. The calls used here are few.

The group reports in the mode ``FAN_REPORT_DFID_NAME_TARGET`` (Linux 5.17+): each directory-entry
event (create, delete, rename) carries the directory's file handle and the entry's name, and the
entry's own handle; ``FAN_RENAME`` reports a move as one event with the old and the new directory
and name. :func:`parse_events` turns a read buffer into :class:`RawEvent` values; a handle is the
bytes ``fsid + struct file_handle`` (``handle_bytes``, ``handle_type``, ``f_handle``: one slice of
the record, and what ``open_by_handle_at`` takes after the fsid); :func:`handle_key` builds the
same key for a path. An :class:`OutsideFilter` drops events in directories known to be outside
every root while the buffer is parsed, before any object is made for them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Container
from dataclasses import dataclass

# fanotify_init flags
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_UNLIMITED_QUEUE = 0x10
FAN_UNLIMITED_MARKS = 0x20
FAN_REPORT_FID = 0x200
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_REPORT_TARGET_FID = 0x1000
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
FAN_REPORT_DFID_NAME_TARGET = FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID

# event mask bits
FAN_MODIFY = 0x2
FAN_ATTRIB = 0x4
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_DELETE_SELF = 0x400
FAN_MOVE_SELF = 0x800
FAN_Q_OVERFLOW = 0x4000
FAN_RENAME = 0x10000000
FAN_ONDIR = 0x40000000

# fanotify_mark flags
FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_MARK_DONT_FOLLOW = 0x4
FAN_MARK_ONLYDIR = 0x8
FAN_MARK_INODE = 0x0
FAN_MARK_FILESYSTEM = 0x100

# info record types
INFO_FID = 1
INFO_DFID_NAME = 2
INFO_DFID = 3
INFO_OLD_DFID_NAME = 10
INFO_NEW_DFID_NAME = 12

METADATA_VERSION = 3
FAN_NOFD = -1
AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
MAX_HANDLE_SZ = 128

INIT_FLAGS = (
    FAN_CLASS_NOTIF
    | FAN_REPORT_DFID_NAME_TARGET
    | FAN_UNLIMITED_QUEUE
    | FAN_UNLIMITED_MARKS
    | FAN_NONBLOCK
    | FAN_CLOEXEC
)
"""The reporting mode of every group: unlimited queue (no FAN_Q_OVERFLOW), non-blocking reads."""

FS_MASK = (
    FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_CLOSE_WRITE | FAN_MODIFY | FAN_ATTRIB | FAN_ONDIR
)
"""The filesystem mark's mask: what the inotify path asks for (create, delete, move, modify,
close-write, attrib), for files and directories."""

ROOT_MASK = FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR
"""An inode mark on each root directory: its own deletion or move (its parent may be elsewhere)."""

_META = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO = struct.Struct("=BBH")  # info_type, pad, len
_FSID = 8
_HANDLE_HEAD = struct.Struct("=Ii")  # handle_bytes, handle_type
_U32 = struct.Struct("=I")
_KEPT_WITHOUT_ENTRY = FAN_Q_OVERFLOW | FAN_DELETE_SELF | FAN_MOVE_SELF
"""The events that mean something without a directory and name: the others are dropped."""
_KEY_HEAD = _FSID + _HANDLE_HEAD.size  # a key's bytes before f_handle


@dataclass(slots=True)  # not frozen: made per event, and frozen fields cost a setattr each
class Entry:
    """A directory handle and a name in it (``name`` is ``b"."`` for the directory itself)."""

    dir_handle: bytes
    name: bytes


@dataclass(slots=True)
class RawEvent:
    """One parsed fanotify event: its mask and the records the reporting mode gives."""

    mask: int
    entry: Entry | None = None
    """DFID_NAME: the directory and name the event is about (the old one for a rename)."""
    new_entry: Entry | None = None
    """NEW_DFID_NAME (FAN_RENAME only): where the entry went."""
    target: bytes | None = None
    """FID: the entry's (or the object's own) handle."""
    dir_handle: bytes | None = None
    """DFID without name: an event on a directory itself."""

    @property
    def is_dir(self) -> bool:
        return bool(self.mask & FAN_ONDIR)


class OutsideFilter:
    """What :func:`parse_events` may drop on the raw record: an event whose directory handle is
    in ``keys`` (directories known outside every root; the reader's tree shares the set) unless
    the event's own object is a root (``roots``: a root's deletion or move is reported in its
    parent). A directory created in such a directory joins ``keys``, one deleted there leaves it.

    A directory renamed with an end inside may bring known-outside directories into a root: from
    it on, nothing more is dropped until :meth:`rearm` (the reader calls it once the events read
    so far are applied, and the tree has forgotten what is no longer outside)."""

    __slots__ = ("active", "dropped", "keys", "roots")

    def __init__(self, keys: set[bytes], roots: Container[bytes]) -> None:
        self.keys = keys
        self.roots = roots
        self.active = True
        self.dropped = 0

    def rearm(self) -> None:
        self.active = True


class FanotifyUnsupported(OSError):
    """The kernel, the filesystem or the process's privileges do not allow the reporting mode."""


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        lib.fanotify_init.restype = ctypes.c_int
        lib.fanotify_mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]
        lib.fanotify_mark.restype = ctypes.c_int
        lib.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.open_by_handle_at.restype = ctypes.c_int
        lib.name_to_handle_at.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        lib.name_to_handle_at.restype = ctypes.c_int
        lib.statfs.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.statfs.restype = ctypes.c_int
        _libc = lib
    return _libc


def _raise(what: str, path: str | None = None) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}", path)


def init_group(flags: int = INIT_FLAGS) -> int:
    """A new fanotify group's fd; :class:`FanotifyUnsupported` when the mode or the privilege is
    missing (EPERM: no CAP_SYS_ADMIN; EINVAL: a kernel older than 5.17)."""
    fd = _lib().fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)
    if fd < 0:
        code = ctypes.get_errno()
        raise FanotifyUnsupported(code, f"fanotify_init: {os.strerror(code)}")
    return int(fd)


def mark(fd: int, flags: int, mask: int, path: str) -> None:
    """``fanotify_mark(fd, flags, mask, AT_FDCWD, path)``; a filesystem that cannot report file
    handles (EXDEV, ENODEV, EOPNOTSUPP) raises :class:`FanotifyUnsupported`."""
    if _lib().fanotify_mark(fd, flags, mask, AT_FDCWD, os.fsencode(path)) < 0:
        code = ctypes.get_errno()
        if code in (errno.EXDEV, errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL):
            raise FanotifyUnsupported(code, f"fanotify_mark: {os.strerror(code)}", path)
        raise OSError(code, f"fanotify_mark: {os.strerror(code)}", path)


def fsid_of(path: str) -> bytes:
    """The filesystem id fanotify reports (``statfs.f_fsid``), 8 bytes."""
    buf = ctypes.create_string_buffer(120)
    if _lib().statfs(os.fsencode(path), buf) < 0:
        _raise("statfs", path)
    # struct statfs on x86_64/aarch64: 7 longs, then f_fsid (two ints) at offset 56
    return bytes(buf.raw[56:64])


def handle_key(path: str, *, follow: bool = True) -> bytes:
    """The key :func:`parse_events` gives the object at ``path``: fsid + handle type + handle."""
    return fsid_of(path) + path_handle(path, follow=follow)


def path_handle(path: str, *, follow: bool = True) -> bytes:
    """``name_to_handle_at``: ``struct file_handle`` (handle_bytes, handle_type, f_handle), as
    fanotify reports it."""
    buf = ctypes.create_string_buffer(_HANDLE_HEAD.size + MAX_HANDLE_SZ)
    _HANDLE_HEAD.pack_into(buf, 0, MAX_HANDLE_SZ, 0)
    mount_id = ctypes.c_int()
    flags = AT_SYMLINK_FOLLOW if follow else 0
    if _lib().name_to_handle_at(AT_FDCWD, os.fsencode(path), buf, ctypes.byref(mount_id), flags):
        _raise("name_to_handle_at", path)
    size = _U32.unpack_from(buf, 0)[0]
    return buf.raw[: _HANDLE_HEAD.size + size]


def open_handle(mount_fd: int, key: bytes) -> int:
    """``open_by_handle_at(mount_fd, handle, O_PATH)`` for a key from :func:`parse_events`
    (its fsid is not used: ``mount_fd`` names the filesystem). OSError ESTALE: the object is
    gone. Needs CAP_DAC_READ_SEARCH."""
    fd = _lib().open_by_handle_at(mount_fd, key[_FSID:], os.O_PATH | os.O_CLOEXEC)
    if fd < 0:
        _raise("open_by_handle_at")
    return int(fd)


def handle_path(mount_fd: int, key: bytes) -> str:
    """The path of a directory handle now, through ``/proc/self/fd`` (OSError ESTALE: gone).

    A directory's path is unique (no hard links); the kernel appends `` (deleted)`` to one that
    was removed after it was opened: that raises ESTALE too."""
    fd = open_handle(mount_fd, key)
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    if path.endswith(" (deleted)") or not path.startswith("/"):
        raise OSError(errno.ESTALE, "directory is gone", path)
    return path


def read_events(fd: int, size: int = 1 << 16) -> bytes:
    """One non-blocking read; b"" when nothing is queued."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return b""


def parse_events(buf: bytes, outside: OutsideFilter | None = None) -> list[RawEvent]:
    """The events in one read buffer, in order, less those ``outside`` drops and those with no
    directory and name that are not a root's own (:data:`_KEPT_WITHOUT_ENTRY`). Records of
    unknown types are skipped. (One pass, one slice per handle: this runs for every event of
    the filesystem, the roots' and every other process's.)"""
    events: list[RawEvent] = []
    append = events.append
    meta_at, info_at, u32_at = _META.unpack_from, _INFO.unpack_from, _U32.unpack_from
    size = len(buf)
    at = 0
    while at + 24 <= size:
        event_len, vers, _, meta_len, mask, fd, _pid = meta_at(buf, at)
        if event_len < 24 or vers != METADATA_VERSION:
            raise OSError(errno.EPROTO, f"fanotify: unexpected metadata version {vers}")
        if fd >= 0:  # not in FID mode, but never leak one
            os.close(fd)
        end = at + event_len
        info = at + meta_len
        at = end
        entry = new_entry = None
        target = dir_handle = None
        while info + 4 <= end:
            kind, _, length = info_at(buf, info)
            if length < 4:
                break
            body, record_end = info + 4, min(info + length, end)
            info += length
            stop = min(body + _KEY_HEAD + u32_at(buf, body + _FSID)[0], record_end)
            handle = buf[body:stop]
            if kind == INFO_FID:
                target = handle
            elif kind == INFO_DFID:
                dir_handle = handle
            elif kind in (INFO_DFID_NAME, INFO_OLD_DFID_NAME, INFO_NEW_DFID_NAME):
                nul = buf.find(b"\0", stop, record_end)
                name = buf[stop : nul if nul >= 0 else record_end]
                if kind == INFO_NEW_DFID_NAME:
                    new_entry = Entry(handle, name)
                else:
                    entry = Entry(handle, name)
        if entry is None and not mask & _KEPT_WITHOUT_ENTRY:
            continue  # e.g. the FAN_ATTRIB of an unlinked file (its link count): no name
        if outside is not None and outside.active and entry is not None:
            keys = outside.keys
            if entry.dir_handle in keys and target not in outside.roots:
                if not mask & FAN_RENAME:
                    if mask & FAN_ONDIR and target is not None:
                        if mask & FAN_CREATE:
                            keys.add(target)
                        elif mask & FAN_DELETE:
                            keys.discard(target)
                    outside.dropped += 1
                    continue
                if new_entry is not None and new_entry.dir_handle in keys:
                    if mask & FAN_ONDIR and target is not None:
                        keys.add(target)
                    outside.dropped += 1  # moved from outside to outside
                    continue
            if mask & FAN_RENAME and mask & FAN_ONDIR:
                outside.active = False  # see OutsideFilter
        append(RawEvent(mask, entry, new_entry, target, dir_handle))
    return events


def probe(path: str) -> None:
    """Raise :class:`FanotifyUnsupported` (or OSError) unless a group in the reporting mode can
    mark ``path``'s filesystem and resolve its handles from here."""
    fd = init_group()
    try:
        mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FS_MASK, path)
        key = handle_key(path)
        mount_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            handle_path(mount_fd, key)
        except OSError as err:
            if err.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EINVAL):
                raise FanotifyUnsupported(err.errno, f"open_by_handle_at: {err.strerror}") from err
            raise
        finally:
            os.close(mount_fd)
    finally:
        os.close(fd)
