"""One file's blake3: :func:`hash_file` (in this process, or a large file in the child of
:mod:`assetd.hashing.child`) and :func:`read_digest` (the file checked unchanged before and after
the read). No database work here.

Large files (>= :data:`LARGE_FILE`) go through ``update_mmap`` with blake3's own threads
(``AUTO``), in a child process so a file truncated under the mapping (SIGBUS) cannot end the
daemon; smaller files are one ``read`` each. With a rate limit every file is read in
:data:`CHUNK` pieces instead, single-threaded, so the limit holds within a file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeAlias

import blake3

from assetd import log
from assetd.catalog.content import (
    HashJob,
    Outcome,
)
from assetd.fsutil import verify_file_unchanged
from assetd.hashing.child import (
    DIGEST_PREFIX,
    FileChangedError,
)

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
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return DIGEST_PREFIX + str(hasher.hexdigest())
    with open(path, "rb") as f:
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
    with open(path, "rb", buffering=0) as f:
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
) -> tuple[str | None, str]:
    """Hash ``job``'s file if it is unchanged before and after the read (no database work).

    Returns ``(digest, "")``, or ``(None, outcome)`` with ``changed``, ``vanished`` or
    ``unreadable``: nothing to record, back off."""
    if not verify_file_unchanged(job.path, job.size, job.mtime_ns):
        return None, _why_not(job.path)
    try:
        digest = hash_file(job.path, size=job.size, chunk_hook=hook, large=large, throttle=throttle)
    except FileChangedError:
        return None, _why_not(job.path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, Outcome.VANISHED
        _log.debug("hash.unreadable", path=job.file_path, error=str(err))
        return None, Outcome.UNREADABLE
    if not verify_file_unchanged(job.path, job.size, job.mtime_ns):
        return None, _why_not(job.path)
    return digest, ""
