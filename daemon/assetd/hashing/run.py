"""blake3 content hashing: one file (:func:`hash_file`), one cache state
(:func:`hash_and_record`) and the one-shot pass of ``assetd hash`` (:func:`hash_pending`); the
daemon's background threads are :class:`assetd.hashing.background.Hasher`.

A file is read with no transaction open and checked unchanged (size and mtime_ns, with
``verify_file_unchanged``) before and after the read; only then is its digest applied by
:func:`assetd.catalog.content.apply_hash`, in a short transaction shared with the digests read
just before it (:class:`DigestBatch`: up to 64 files or 0.25 s). A file that changed or vanished
is never recorded; the Hasher retries it later with backoff (5 s doubling to 1 h).

Large files (>= :data:`LARGE_FILE`) go through ``update_mmap`` with blake3's own threads
(``AUTO``), in a child process (:mod:`assetd.hashing.child`) so a file truncated under the mapping
(SIGBUS) cannot end the daemon; smaller files are one ``read`` each. With a rate limit every
file is read in :data:`CHUNK` pieces instead, single-threaded, so the limit holds within a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import blake3
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from assetd import log
from assetd.catalog.content import (
    AutoTags,
    HashJob,
    Outcome,
    apply_hash,
    auto_tags_for,
    hashing_backlog,
    next_to_hash,
)
from assetd.catalog.engine import SessionFactory, classify_db_error, one_line
from assetd.catalog.roots import RootSpec
from assetd.fsutil import verify_file_unchanged
from assetd.hashing.child import (
    DIGEST_PREFIX,
    ChildHasher,
    FileChangedError,
    HashChildError,
    HashInterrupted,
)

__all__ = [
    "DIGEST_PREFIX",
    "ChildHasher",
    "FileChangedError",
    "HashChildError",
    "HashInterrupted",
    "HashRunResult",
    "hash_and_record",
    "hash_file",
    "hash_pending",
    "read_digest",
    "record_digests",
    "record_digests_safely",
]

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


def _retryable(err: SQLAlchemyError) -> bool:
    """A unique-key race (two writers gave one digest to two assets) or a PostgreSQL deadlock
    or serialization failure: the transaction can simply be run again."""
    if isinstance(err, IntegrityError):
        return True
    code = getattr(getattr(err, "orig", None), "sqlstate", None)
    return isinstance(err, OperationalError) and code in ("40P01", "40001")


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


def record_digests(
    sessions: SessionFactory, items: Sequence[tuple[HashJob, str]], *, auto_tags: AutoTags
) -> list[str]:
    """Apply ``(job, digest)`` pairs in one short transaction (retried on a unique-key race or
    a deadlock); returns each one's :class:`Outcome` value. Database errors propagate."""
    for attempt in range(3):
        try:
            with sessions() as s, s.begin():
                return [
                    apply_hash(s, job.id, digest, job.size, job.mtime_ns, auto_tags=auto_tags)
                    for job, digest in items
                ]
        except SQLAlchemyError as err:
            if attempt == 2 or not _retryable(err):
                raise
    raise AssertionError("unreachable")


def record_digests_safely(
    sessions: SessionFactory, items: Sequence[tuple[HashJob, str]], *, auto_tags: AutoTags
) -> list[str]:
    """:func:`record_digests`, but a batch that fails for a reason in its data (not the
    database being away or locked, which propagates) is applied one item at a time, and an item
    that still fails is logged and reported ``"failed"``: one bad row never blocks the rest."""
    try:
        return record_digests(sessions, items, auto_tags=auto_tags)
    except SQLAlchemyError as err:
        if classify_db_error(err) is not None:
            raise
        if len(items) > 1:
            return [
                record_digests_safely(sessions, [item], auto_tags=auto_tags)[0] for item in items
            ]
        _log.error("hash.record_failed", paths=[items[0][0].file_path], error=one_line(err))
        return [Outcome.FAILED]


def hash_and_record(
    sessions: SessionFactory,
    job: HashJob,
    *,
    auto_tags: AutoTags,
    hook: ChunkHook | None = None,
    large: LargeHasher | None = None,
    throttle: Throttle | None = None,
) -> str:
    """Hash ``job``'s file and apply the content rules; returns an :class:`Outcome` value.

    ``changed``, ``vanished`` and ``unreadable`` mean nothing was recorded (the caller backs
    off); ``stale`` means the row changed meanwhile. No transaction is open while the file is
    read. Database errors propagate.
    """
    digest, why = read_digest(job, hook=hook, large=large, throttle=throttle)
    if digest is None:
        return why
    [outcome] = record_digests(sessions, [(job, digest)], auto_tags=auto_tags)
    return outcome


class DigestBatch:
    """Digests read but not yet recorded: many small files share one transaction (per-file
    transactions cost more than reading a 4 KiB file). Full at :data:`BATCH_FILES` digests,
    :data:`BATCH_BYTES` read or :data:`BATCH_SECONDS` since the first, so a digest waits
    briefly; no transaction is open while any of them is read."""

    def __init__(self) -> None:
        self.items: list[tuple[HashJob, str]] = []
        self.bytes = 0
        self.started = 0.0

    def add(self, job: HashJob, digest: str) -> None:
        if not self.items:
            self.started = time.monotonic()
        self.items.append((job, digest))
        self.bytes += job.size

    @property
    def full(self) -> bool:
        return bool(self.items) and (
            len(self.items) >= BATCH_FILES
            or self.bytes >= BATCH_BYTES
            or time.monotonic() - self.started >= BATCH_SECONDS
        )

    def take(self) -> list[tuple[HashJob, str]]:
        items, self.items, self.bytes = self.items, [], 0
        return items


BATCH_FILES = 64
BATCH_BYTES = 256 * 1024 * 1024
BATCH_SECONDS = 0.25


# --------------------------------------------------------------------------- one-shot pass


@dataclass
class HashRunResult:
    """What ``assetd hash`` did: files and bytes recorded, outcomes, the backlog it started
    with and the one it left."""

    files: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    backlog_before: tuple[int, int] = (0, 0)
    backlog_after: tuple[int, int] = (0, 0)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "duration_s": round(self.duration_s, 3),
            "outcomes": dict(sorted(self.outcomes.items())),
            "backlog_before": {"files": self.backlog_before[0], "bytes": self.backlog_before[1]},
            "backlog_after": {"files": self.backlog_after[0], "bytes": self.backlog_after[1]},
        }


Progress: TypeAlias = Callable[[int, int, int, int], None]
"""``(files_done, bytes_done, files_total, bytes_total)``."""


def hash_pending(
    sessions: SessionFactory,
    roots: Sequence[RootSpec],
    *,
    progress: Progress | None = None,
    hook: ChunkHook | None = None,
    isolate: bool = True,
    batch_size: int = 256,
) -> HashRunResult:
    """Hash every live cache state of these roots that needs it, once each, in id order (the
    one-shot ``assetd hash``). A file that changes while it is read is counted, not retried."""
    ids = [r.id for r in roots]
    auto_tags = auto_tags_for(roots)
    result = HashRunResult()
    started = time.monotonic()
    with sessions() as s:
        result.backlog_before = hashing_backlog(s, roots=ids)
    total_files, total_bytes = result.backlog_before
    done_files = done_bytes = 0
    cursor = 0
    batch = DigestBatch()

    def tally(job: HashJob, outcome: str) -> None:
        nonlocal done_files, done_bytes
        result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
        if outcome in Outcome.RECORDED:
            result.files += 1
            result.bytes += job.size
        done_files += 1
        done_bytes += job.size
        if progress is not None:
            progress(
                done_files, done_bytes, max(total_files, done_files), max(total_bytes, done_bytes)
            )

    def flush() -> None:
        items = batch.take()
        if items:
            outcomes = record_digests_safely(sessions, items, auto_tags=auto_tags)
            for (job, _), outcome in zip(items, outcomes, strict=True):
                tally(job, outcome)

    with contextlib.ExitStack() as stack:
        large = stack.enter_context(ChildHasher()) if isolate else None
        while True:
            with sessions() as s:
                jobs = next_to_hash(s, roots=ids, limit=batch_size, after_id=cursor)
            if not jobs:
                break
            cursor = jobs[-1].id
            for job in jobs:
                digest, why = read_digest(job, hook=hook, large=large)
                if digest is None:
                    tally(job, why)
                    continue
                batch.add(job, digest)
                if batch.full:
                    flush()
            flush()
    with sessions() as s:
        result.backlog_after = hashing_backlog(s, roots=ids)
    result.duration_s = time.monotonic() - started
    return result
