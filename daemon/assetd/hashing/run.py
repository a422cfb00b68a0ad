"""Recording digests: one cache state (:func:`hash_and_record`, the file read by
:mod:`assetd.hashing.digest`) and the one-shot pass of ``assetd hash`` (:func:`hash_pending`); the
daemon's background threads are :class:`assetd.hashing.background.Hasher`.

A file is read with no transaction open and checked unchanged (a regular file of the row's size
and mtime_ns: on its open descriptor for a small file, by path for a large one; see
:func:`~assetd.hashing.digest.read_digest`) before and after the read; only then is its digest
applied by :func:`assetd.catalog.content.apply_hash`, in a short transaction shared with the
digests read just before it (:class:`DigestBatch`: up to 1,024 files or 0.25 s, and one page of
work: the daemon's pages are 256 files, ``assetd hash``'s 1,024; a transaction stops taking
them after 50 ms, :data:`TX_SECONDS`, and the rest go in the next: the live worker waits on the
same write lock). The commonest case of a batch is written with one statement for the whole
batch (:class:`~assetd.catalog.content.HashBatch`). A file that changed or vanished
is never recorded; the Hasher retries it later with backoff (5 s doubling to 1 h).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.content import (
    HashBatch,
    HashJob,
    Outcome,
    apply_hash,
    auto_tags_for,
    hashing_backlog,
    next_to_hash,
)
from assetd.catalog.engine import SessionFactory, classify_db_error, one_line
from assetd.catalog.metadata import AutoTags
from assetd.catalog.retry import run_retrying
from assetd.catalog.roots import RootSpec
from assetd.catalog.share import note_hashed_for
from assetd.hashing.child import (
    ChildHasher,
)
from assetd.hashing.digest import (
    ChunkHook,
    LargeHasher,
    Readable,
    Throttle,
    read_digest,
    reader_for,
)
from assetd.hashing.share import ShareGate

_log = log.get_logger(__name__)


def record_digests(
    sessions: SessionFactory, items: Sequence[tuple[HashJob, str]], *, auto_tags: AutoTags
) -> list[str]:
    """Apply ``(job, digest)`` pairs in one short transaction, run again on a unique-key race
    (two hosts gave one digest to two assets: the next run merges into the winner's), a
    deadlock or a serialization failure (:func:`~assetd.catalog.retry.run_retrying`); returns
    each one's :class:`Outcome` value. Database errors propagate."""

    def once(chunk: Sequence[tuple[HashJob, str]]) -> list[str]:
        """A transaction: the chunk's digests while it lasts under TX_SECONDS (at least one)."""
        started = time.monotonic()
        outcomes: list[str] = []
        moved: list[tuple[str, str]] = []  # guessed moves the content confirmed: (old, new)
        with sessions() as s, s.begin():
            batch = HashBatch(s, [(job.id, digest) for job, digest in chunk])
            try:
                for job, digest in chunk:
                    outcomes.append(
                        apply_hash(
                            s,
                            job.id,
                            digest,
                            job.size,
                            job.mtime_ns,
                            auto_tags=auto_tags,
                            batch=batch,
                            moved=moved,
                        )
                    )
                    if time.monotonic() - started >= TX_SECONDS:
                        break  # the rest in the next transaction: the live batches wait on this
                batch.finish(auto_tags)
            finally:
                batch.close()
            note_hashed_for(  # what each hash was computed for (DESIGN §7)
                s,
                [
                    (job.id, job.size, job.mtime_ns)
                    for (job, _), outcome in zip(chunk, outcomes, strict=False)
                    if outcome in Outcome.RECORDED
                ],
            )
        if moved:  # committed: logged as the live moves are, so `logs --path OLD` finds them
            _log.info(
                "cache_state.moved",
                count=len(moved),
                paths=[new for _, new in moved[: log.PATH_SAMPLE]],
                sources=[old for old, _ in moved[: log.PATH_SAMPLE]],
            )
        return outcomes

    done: list[str] = []
    while len(done) < len(items):
        rest = items[len(done) :]
        done += run_retrying(functools.partial(once, rest))
    return done


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
    readable: Readable | None = None,
) -> str:
    """Hash ``job``'s file and apply the content rules; returns an :class:`Outcome` value.

    ``changed``, ``vanished`` and ``unreadable`` mean nothing was recorded (the caller backs
    off); ``stale`` means the row changed meanwhile. No transaction is open while the file is
    read. Database errors propagate.
    """
    digest, why = read_digest(job, hook=hook, large=large, throttle=throttle, readable=readable)
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


BATCH_FILES = 1024  # per transaction: 5 ms of SQLite work for small files; TX_SECONDS bounds it
BATCH_BYTES = 256 * 1024 * 1024
BATCH_SECONDS = 0.25
TX_SECONDS = 0.05  # a transaction of digests ends after the first digest applied past this


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
    batch_size: int = 1024,
) -> HashRunResult:
    """Hash every live cache state of these roots that needs it, once each, in id order (the
    one-shot ``assetd hash``). A file that changes while it is read is counted, not retried."""
    ids = [r.id for r in roots]
    auto_tags = auto_tags_for(roots)
    readable = reader_for(roots)
    gate = ShareGate(sessions, "", roots, claims=False)
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
            sifted = gate.sift(jobs)  # a share's files another host hashed: not read (§7)
            if sifted.trusted:
                outcomes = record_digests_safely(sessions, sifted.trusted, auto_tags=auto_tags)
                for (job, _), outcome in zip(sifted.trusted, outcomes, strict=True):
                    tally(job, outcome)
            for job in sifted.read:
                digest, why = read_digest(job, hook=hook, large=large, readable=readable)
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
