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


def reader_for(roots: Sequence[RootSpec]) -> Readable:
    """The :data:`Readable` of these roots' symlink rules (every root of this host)."""
    rules = LinkRules([r.path for r in roots])
    follow = {r.id: r.follow_symlinks for r in roots}
    return lambda job: rules.readable_path(job.path, follow=follow.get(job.root_id, False))


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
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, Outcome.VANISHED
        if err.errno == errno.ELOOP:  # swapped for a symlink since the check: not followed
            return None, Outcome.CHANGED
        _log.debug("hash.unreadable", path=job.file_path, error=str(err))
        return None, Outcome.UNREADABLE
    if not verify_file_unchanged(job.path, job.size, job.mtime_ns):
        return None, _why_not(job.path)
    return digest, ""
