"""One file's blake3: :func:`hash_file` (in this process, or a large file in the child of
:mod:`assetd.hashing.child`) and :func:`read_digest` (the file checked unchanged before and after
the read). No database work here.

Files are opened with ``O_NOFOLLOW`` (DESIGN §5): a file swapped for a symlink between the
stat and the read is not followed. A row catalogued at a symlink that takes its target's
content (inside a root, or ``follow_symlinks``) is read at its resolved target, found by the
``readable`` function a caller builds with :func:`reader_for`; a link to outside every root is
never read.

Large files (>= :data:`LARGE_FILE`) go through ``update_mmap`` with blake3's own threads
(``AUTO``), in a child process so a file truncated under the mapping (SIGBUS) cannot end the
daemon; smaller files are one ``read`` each. With a rate limit every file is read in
:data:`CHUNK` pieces instead, single-threaded, so the limit holds within a file.

A small file without a rate limit (most of a catalog) is checked on its open descriptor: opened
with ``O_NOFOLLOW``, ``fstat`` before and after one ``read`` (:func:`read_digest`); the path is
looked at again only to say why a file was not recorded. A large or rate-limited file is checked
by path (``stat`` before and after the read).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable, Sequence
from typing import TypeAlias

import blake3

from assetd import log
from assetd.catalog.content import (
    HashJob,
    Outcome,
)
from assetd.catalog.roots import RootSpec
from assetd.fsutil import verify_file_unchanged
from assetd.hashing.child import (
    DIGEST_PREFIX,
    FileChangedError,
)
from assetd.links import LinkRules

_log = log.get_logger(__name__)

LARGE_FILE = 16 * 1024 * 1024
"""From this size on, a file is hashed with ``update_mmap`` and blake3's threads."""
CHUNK = 1024 * 1024
"""Read size when a rate limit is set."""

ChunkHook: TypeAlias = Callable[[int], None]
"""Called with the bytes read so far: after the read of a small file (the data is in memory,
the file not yet re-checked), once before a large file is mapped, after each chunk when rate
limited. The seam a test uses to change a file while the hasher is "inside" its read."""
LargeHasher: TypeAlias = Callable[[str], str]
"""``path -> "blake3:<hex>"`` for a large file (:class:`~assetd.hashing.child.ChildHasher`)."""
Throttle: TypeAlias = Callable[[int], None]
"""Called with each chunk's size; waits as long as the rate limit asks."""
Readable: TypeAlias = Callable[[HashJob], "str | None"]
"""The path to open for a job's content (its own, or a symlink's resolved target), or None
when it must not be read (a link to outside every root)."""


def open_nofollow(path: str) -> int:
    """A read-only descriptor of ``path``; ``OSError`` (ELOOP) if ``path`` is a symlink."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def fd_path(fd: int) -> str:
    """A path naming the open file itself (for ``update_mmap``, which takes a path)."""
    return f"/proc/self/fd/{fd}"


class LinkReader:
    """The :data:`Readable` of some roots' symlink rules (:func:`reader_for`). A regular file
    reads itself, so :func:`read_digest` opens a small file's own path first and asks this only
    when the open meets a symlink (``ELOOP``)."""

    def __init__(self, roots: Sequence[RootSpec]) -> None:
        self._rules = LinkRules([r.path for r in roots])
        self._follow = {r.id: r.follow_symlinks for r in roots}

    def __call__(self, job: HashJob) -> str | None:
        follow = self._follow.get(job.root_id, False)
        return self._rules.readable_path(job.path, follow=follow)


def reader_for(roots: Sequence[RootSpec]) -> Readable:
    """The :data:`Readable` of these roots' symlink rules (every root of this host)."""
    return LinkReader(roots)


def _not_a_link(job: HashJob) -> str | None:
    try:
        return None if stat_mod.S_ISLNK(os.lstat(job.path).st_mode) else job.path
    except OSError:
        return job.path  # the open says why


def hash_file(
    path: str,
    *,
    size: int | None = None,
    chunk_hook: ChunkHook | None = None,
    large: LargeHasher | None = None,
    throttle: Throttle | None = None,
) -> str:
    """``"blake3:<64 hex>"`` of the file at ``path`` (OS form).

    ``size`` is the size the caller expects (default: stat it); a small file found longer or
    shorter raises :class:`FileChangedError`, so a file that grew meanwhile is never read whole
    into memory. ``large`` hashes files >= :data:`LARGE_FILE` (default: ``update_mmap`` in this
    process, which a concurrent truncation kills with SIGBUS: the daemon passes a
    :class:`~assetd.hashing.child.ChildHasher`). ``throttle``: read in chunks, calling it after
    each.
    """
    if size is None:
        size = os.stat(path).st_size
    if throttle is not None:
        return _hash_chunks(path, size, chunk_hook, throttle)
    if size >= LARGE_FILE:
        if chunk_hook is not None:
            chunk_hook(0)
        if large is not None:
            return large(path)
        fd = open_nofollow(path)
        try:
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            hasher.update_mmap(fd_path(fd))
        finally:
            os.close(fd)
        return DIGEST_PREFIX + str(hasher.hexdigest())
    with open(open_nofollow(path), "rb") as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise FileChangedError(f"{len(data)} bytes read, {size} expected")
    if chunk_hook is not None:
        chunk_hook(len(data))
    return DIGEST_PREFIX + str(blake3.blake3(data).hexdigest())


def _hash_chunks(path: str, size: int, chunk_hook: ChunkHook | None, throttle: Throttle) -> str:
    hasher = blake3.blake3()
    total = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(open_nofollow(path), "rb", buffering=0) as f:
        while total <= size:
            n = f.readinto(buf)
            if not n:
                break
            hasher.update(view[:n])
            total += n
            if chunk_hook is not None:
                chunk_hook(total)
            throttle(n)
    if total != size:
        raise FileChangedError(f"{total} bytes read, {size} expected")
    return DIGEST_PREFIX + str(hasher.hexdigest())


def _why_not(path: str) -> str:
    try:
        os.stat(path)
    except FileNotFoundError:
        return Outcome.VANISHED
    except OSError:
        return Outcome.CHANGED  # not a regular file any more, or unreachable: recheck later
    return Outcome.CHANGED


def read_digest(
    job: HashJob,
    *,
    hook: ChunkHook | None = None,
    large: LargeHasher | None = None,
    throttle: Throttle | None = None,
    readable: Readable | None = None,
) -> tuple[str | None, str]:
    """Hash ``job``'s file if it is unchanged before and after the read (no database work).

    Returns ``(digest, "")``, or ``(None, outcome)`` with ``changed``, ``vanished`` or
    ``unreadable``: nothing to record, back off. ``readable`` (see :func:`reader_for`; default:
    never through a symlink) names the file to open."""
    if throttle is None and job.size < LARGE_FILE:
        return _read_small(job, hook, readable)
    return _read_by_path(job, hook, large, throttle, readable)


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
"""A small file's open: never through a symlink; a FIFO swapped in does not block the open
(its ``fstat`` then says it is no regular file)."""


def _read_small(
    job: HashJob, hook: ChunkHook | None, readable: Readable | None
) -> tuple[str | None, str]:
    """A small file checked on its descriptor: ``fstat`` before the read (a regular file of the
    job's size and mtime), one ``read`` of ``job.size`` bytes, ``fstat`` after (the same size
    and mtime, still linked: an unlink or a rename over the path mid-read is "not recorded").
    The same checks as by path, with no window between the check and the open."""
    seam = readable is not None and not isinstance(readable, LinkReader)
    path = readable(job) if seam and readable is not None else job.path
    if path is None:  # (a seam's answer) a link to outside every root: never read
        return None, Outcome.CHANGED
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        if err.errno != errno.ELOOP or seam or readable is None:
            return None, _open_failed(job, err)
        target = readable(job)  # a symlink: read at its target if the rules say so
        if target is None:  # a link to outside every root: re-catalogued by the live path
            return None, Outcome.CHANGED
        try:
            fd = os.open(target, _OPEN_FLAGS)
        except OSError as err2:
            return None, _open_failed(job, err2)
    try:
        if not _same_file(os.fstat(fd), job):
            return None, _why_not(job.path)
        try:
            data = _read_exactly(fd, job.size)
        except OSError as err:
            return None, _open_failed(job, err)
        if data is None:
            return None, _why_not(job.path)
        if hook is not None:
            hook(len(data))
        digest = DIGEST_PREFIX + str(blake3.blake3(data).hexdigest())
        after = os.fstat(fd)
        if after.st_nlink == 0 or not _same_file(after, job):
            return None, _why_not(job.path)
        return digest, ""
    finally:
        os.close(fd)


def _same_file(st: os.stat_result, job: HashJob) -> bool:
    return (
        stat_mod.S_ISREG(st.st_mode) and st.st_size == job.size and st.st_mtime_ns == job.mtime_ns
    )


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd`` (one ``read`` for a regular file), or None if it ends
    sooner. Growth is not looked for here: the ``fstat`` after the read sees it."""
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.read(fd, size - got)
        if not more:
            return None
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _open_failed(job: HashJob, err: OSError) -> str:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return Outcome.VANISHED
    if err.errno == errno.ELOOP:  # swapped for a symlink: not followed
        return Outcome.CHANGED
    _log.debug("hash.unreadable", path=job.file_path, error=str(err))
    return Outcome.UNREADABLE


def _read_by_path(
    job: HashJob,
    hook: ChunkHook | None,
    large: LargeHasher | None,
    throttle: Throttle | None,
    readable: Readable | None,
) -> tuple[str | None, str]:
    """A large or rate-limited file: checked by path before and after the read."""
    if not verify_file_unchanged(job.path, job.size, job.mtime_ns):
        return None, _why_not(job.path)
    path = (readable or _not_a_link)(job)
    if path is None:  # now a link to outside every root: re-catalogued by the live path
        return None, Outcome.CHANGED
    try:
        digest = hash_file(path, size=job.size, chunk_hook=hook, large=large, throttle=throttle)
    except FileChangedError:
        return None, _why_not(job.path)
    except OSError as err:
        return None, _open_failed(job, err)
    if not verify_file_unchanged(job.path, job.size, job.mtime_ns):
        return None, _why_not(job.path)
    return digest, ""
