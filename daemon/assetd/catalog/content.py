"""Content identity: the content rules of DESIGN §4 as catalog operations.

Each function runs in the caller's transaction and uses engine-neutral SQL. The hasher reads a
file with no transaction open, then calls :func:`apply_hash` in a short one.

Rules, in the words of :func:`apply_hash`: a cache state's asset ``A`` and the digest just read.

- ``A`` unhashed: ``A`` takes the digest, or merges into the asset ``B`` that has it already.
- ``A`` has this digest: the file is verified.
- ``A`` has another digest (the file was edited): if other live paths share ``A``, this path
  splits off to a new asset carrying copies of ``A``'s infos and manual tags (and that new asset
  merges into ``B`` if ``B`` has the digest); if it is ``A``'s only live path, ``A`` merges into
  ``B``, or else takes the new digest in place, keeping its metadata.

A cache state carried to a new digest without being read (``A``'s other paths, missing ones
included) gets ``needs_verify``, so a path is only ever vouched for by its own read.

Merging and splitting are :mod:`assetd.catalog.metadata`; the automatic tags of the assets a
hash merged or split are recomputed once per transaction (:mod:`assetd.catalog.tagsync`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, update
from sqlalchemy.orm import Session

from assetd.catalog.backlog import NEEDS_HASH, hashing_backlog
from assetd.catalog.metadata import AutoTags, drop_pristine_infos, merge_assets, split_off
from assetd.catalog.models import cache_states as cs
from assetd.catalog.movelog import How, record_row_move
from assetd.catalog.roots import RootSpec, automatic_tags
from assetd.catalog.sqlutil import is_postgresql, placeholder
from assetd.catalog.states import Reason
from assetd.catalog.tagsync import recompute_automatic_tags_many
from assetd.fsutil import os_path_of

__all__ = [
    "HashBatch",
    "HashJob",
    "Outcome",
    "apply_hash",
    "auto_tags_for",
    "hashing_backlog",
    "next_to_hash",
]


class Outcome:
    """What :func:`apply_hash` did (and, for :func:`~assetd.hashing.run.hash_and_record`, why a
    file was not recorded)."""

    HASHED = "hashed"  # an unhashed asset took the digest
    VERIFIED = "verified"  # the asset had this digest already
    MERGED = "merged"  # the path joined the asset that already had this content
    SPLIT = "split"  # the path left its duplicates for a new asset (copies of the metadata)
    UPDATED = "updated"  # the path's only asset took the new digest in place
    MOVED = "moved"  # a guessed move confirmed: the new path joined the vanished one's asset
    STALE = "stale"  # the row changed (or went missing) since the file was read: nothing done
    CHANGED = "changed"  # the file changed while it was read: retry later
    VANISHED = "vanished"  # the file disappeared before or while it was read
    UNREADABLE = "unreadable"  # EACCES, EIO...: retry later
    FAILED = "failed"  # an unexpected error (logged): retry later

    RECORDED = frozenset({HASHED, VERIFIED, MERGED, SPLIT, UPDATED, MOVED})


@dataclass(frozen=True, slots=True)
class HashJob:
    """A cache state to hash, with the figures the hash must be computed for."""

    id: int
    root_id: int
    file_path: str  # catalog form
    path: str  # OS form, to open the file
    size: int
    mtime_ns: int


def auto_tags_for(roots: Iterable[RootSpec]) -> AutoTags:
    """The :data:`AutoTags` of these roots (``None`` for any other root id)."""
    by_id = {r.id: r for r in roots}

    def auto_tags(root_id: int, file_path: str) -> tuple[str, ...] | None:
        root = by_id.get(root_id)
        return None if root is None else automatic_tags(root, file_path)

    return auto_tags


# --------------------------------------------------------------------------- queries


def next_to_hash(
    session: Session,
    *,
    roots: Collection[int],
    limit: int,
    exclude_ids: Collection[int] = frozenset(),
    after_id: int = 0,
) -> list[HashJob]:
    """Up to ``limit`` live cache states to hash, by ascending id above ``after_id``.

    Id order is first come, first hashed: a stream of new small files cannot starve a large one
    (smallest-first would), and it is a keyset walk of the primary key, so a caller pages with
    ``after_id`` instead of sorting the whole backlog each time. ``exclude_ids`` (backing off,
    in flight) are skipped here rather than in SQL, which keeps the statement short however
    many there are.
    """
    if not roots or limit <= 0:
        return []
    jobs: list[HashJob] = []
    page = limit + min(len(exclude_ids), 1000)
    raw = _Raw(session)
    try:
        holes = ", ".join([raw.p] * len(roots))
        sql = _NEXT_SQL.format(roots=holes, p=raw.p)
        while len(jobs) < limit:
            rows = raw.cursor.execute(sql, (*roots, after_id, page)).fetchall()
            for cid, root_id, file_path, raw_path, size, mtime_ns in rows:  # per file
                if cid not in exclude_ids and len(jobs) < limit:
                    path = file_path if raw_path is None else os_path_of(file_path, bytes(raw_path))
                    jobs.append(HashJob(cid, root_id, file_path, path, size, mtime_ns))
            if len(rows) < page:
                break
            after_id = rows[-1][0]
    finally:
        raw.close()
    return jobs


_NEXT_SQL = (
    "SELECT asset_cache_states.id, asset_cache_states.root_id, asset_cache_states.file_path, "
    "asset_cache_states.file_path_raw, asset_cache_states.size_bytes, "
    "asset_cache_states.mtime_ns FROM asset_cache_states "
    "JOIN assets ON assets.id = asset_cache_states.asset_id "
    "WHERE +asset_cache_states.root_id IN ({roots}) AND asset_cache_states.id > {p} "
    f"AND {NEEDS_HASH} ORDER BY asset_cache_states.id LIMIT {{p}}"
)
"""The next page of work, plain SQL on the driver's cursor: built once, nothing compiled per
call (a Core ``select`` cost about a millisecond to compile each time). The unary ``+`` keeps
SQLite off the indexes that lead with ``root_id``: through one, every page read all the
live rows of the root and sorted them by id (8-21 ms a page of a 100,000-file root); without
it, a page is a walk of the primary key from ``after_id`` that stops at ``limit`` rows (0.2 ms
there), so a pass over the backlog reads each row once."""


# --------------------------------------------------------------------------- apply_hash


_ROW_SQL = (
    "SELECT c.asset_id, c.size_bytes, c.mtime_ns, c.is_missing, c.needs_verify, a.hash, "
    "a.size_bytes, "
    "(SELECT count(*) FROM asset_cache_states o WHERE o.asset_id = c.asset_id AND o.id <> c.id), "
    "(SELECT count(*) FROM asset_cache_states o WHERE o.asset_id = c.asset_id AND o.id <> c.id "
    "AND o.is_missing = {p}), "
    "(SELECT b.id FROM assets b WHERE b.hash = {p}), c.move_candidate_id "
    "FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id WHERE c.id = {p}"
)


class _Raw:
    """The driver's own cursor in the caller's transaction: the per-file statements of
    :func:`apply_hash` skip SQLAlchemy's statement overhead (5x the SQLite work here)."""

    def __init__(self, session: Session) -> None:
        dbapi = session.connection().connection.driver_connection
        assert dbapi is not None
        self.cursor = dbapi.cursor()
        self.p = placeholder(session)
        self.pg = is_postgresql(session)

    def run(self, sql: str, params: tuple[object, ...]) -> Any:
        self.cursor.execute(sql.format(p=self.p), params)
        return self.cursor

    def close(self) -> None:
        self.cursor.close()


_BATCH_ROWS_SQL = (
    "SELECT c.id, c.asset_id, c.size_bytes, c.mtime_ns, c.is_missing, c.needs_verify, a.hash, "
    "EXISTS (SELECT 1 FROM asset_cache_states o WHERE o.asset_id = c.asset_id AND o.id <> c.id), "
    "c.move_candidate_id FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
    "WHERE c.id IN ({ids})"
)


class HashBatch:
    """The digests of one transaction, their rows read with one statement: the common case (a
    never-hashed asset with this one path, a digest no other asset has and no other digest of
    the batch repeats, no move guess) is :func:`apply_hash`'s plain "hashed", whose two writes
    are queued and run for the whole batch with one ``executemany`` each (:meth:`flush`); every
    other case takes the full path, after what is queued is written. Those cases cannot touch a
    queued row: it is its asset's only path, and its digest is no other asset's."""

    def __init__(self, session: Session, items: Sequence[tuple[int, str]]) -> None:
        self.session = session
        self.raw = _Raw(session)
        self.rows: dict[int, Any] = {}
        self.hashes: list[tuple[str, int, int]] = []  # (digest, size, asset id)
        self.verified: list[tuple[bool, int]] = []  # cache states whose needs_verify clears
        self.unique: set[str] = set()
        self.taken: set[str] = set()
        self.retag: set[int] = set()
        """Assets a merge or a split changed: their automatic tags are recomputed once, by
        :meth:`finish` (a merge per copy of one content each reading every path was n²)."""
        if not items:
            return
        ids = [cid for cid, _ in items]
        holes = ", ".join([self.raw.p] * len(ids))
        lock = " ORDER BY c.id FOR UPDATE OF c, a" if self.raw.pg else ""
        for row in self.raw.run(_BATCH_ROWS_SQL.replace("{ids}", holes) + lock, tuple(ids)):
            self.rows[row[0]] = row
        seen: set[str] = set()
        for _, digest in items:
            (self.unique.discard if digest in seen else self.unique.add)(digest)
            seen.add(digest)
        holes = ", ".join([self.raw.p] * len(seen))
        sql = "SELECT hash FROM assets WHERE hash IN ({h})".replace("{h}", holes)
        self.taken = {h for (h,) in self.raw.run(sql, tuple(seen))}

    def take(self, cache_state_id: int, digest: str, size: int, mtime_ns: int) -> bool:
        """Queue the common case's writes for this digest; False if it is not that case."""
        row = self.rows.pop(cache_state_id, None)  # popped: the id a second time is not
        if row is None:
            return False
        _, asset_id, row_size, row_mtime, missing, verify, a_hash, others, candidate = row
        if (
            missing
            or row_size != size
            or row_mtime != mtime_ns
            or a_hash is not None
            or others
            or candidate is not None
            or digest not in self.unique
            or digest in self.taken
        ):
            return False
        self.hashes.append((digest, size, asset_id))
        if verify:
            self.verified.append((False, cache_state_id))
        return True

    def flush(self) -> None:
        """Write what is queued."""
        p = self.raw.p
        if self.hashes:
            sql = f"UPDATE assets SET hash = {p}, size_bytes = {p} WHERE id = {p}"
            self.raw.cursor.executemany(sql, self.hashes)
            self.hashes = []
        if self.verified:
            sql = f"UPDATE asset_cache_states SET needs_verify = {p} WHERE id = {p}"
            self.raw.cursor.executemany(sql, self.verified)
            self.verified = []

    def finish(self, auto_tags: AutoTags) -> None:
        """Write what is queued, then recompute the automatic tags of :attr:`retag`."""
        self.flush()
        recompute_automatic_tags_many(self.session, self.retag, auto_tags)
        self.retag = set()

    def close(self) -> None:
        self.raw.close()


def apply_hash(
    session: Session,
    cache_state_id: int,
    digest: str,
    size: int,
    mtime_ns: int,
    *,
    auto_tags: AutoTags,
    batch: HashBatch | None = None,
    moved: list[tuple[str, str]] | None = None,
) -> str:
    """Record that the file of this cache state, with these figures, has content ``digest``,
    applying the content rules (module docstring). Returns an :class:`Outcome` value.

    Nothing is done (``"stale"``) if the row is gone, missing, or no longer has the size and
    mtime the digest was computed for: the file changed after it was read.

    A row that may continue a vanished one (``move_candidate_id``, a guessed move:
    :mod:`assetd.catalog.pairing`) is confirmed here when ``digest`` is the vanished row's
    content: the usual merge makes them one asset (the fresh asset's untouched info dropped),
    and the vanished row goes (``"moved"``). Any other digest refutes the guess: the pointer is
    cleared, and nothing of the vanished row's metadata ever reached this path. A confirmed
    move is recorded in the move history, and its two ends (old path, new path) are appended
    to ``moved``, for the caller to log once the transaction commits.

    The common cases (a new content, a verified one) cost two or three short statements: this
    runs once per file. With ``batch`` (the transaction's :class:`HashBatch`), the commonest
    costs none here: its writes are queued for the batch's ``executemany``, and the automatic
    tags of what merged or split are recomputed by :meth:`HashBatch.finish`; without, here.
    """
    if batch is None:
        retag: set[int] = set()
        outcome = _apply(session, cache_state_id, digest, size, mtime_ns, retag, moved)
        recompute_automatic_tags_many(session, retag, auto_tags)
        return outcome
    if batch.take(cache_state_id, digest, size, mtime_ns):
        return Outcome.HASHED
    batch.flush()  # the full path runs on everything written so far
    return _apply(session, cache_state_id, digest, size, mtime_ns, batch.retag, moved)


def _apply(
    session: Session,
    cache_state_id: int,
    digest: str,
    size: int,
    mtime_ns: int,
    retag: set[int],
    moved: list[tuple[str, str]] | None,
) -> str:
    raw = _Raw(session)
    try:
        row = raw.run(
            _ROW_SQL + (" FOR UPDATE OF c, a" if raw.pg else ""), (False, digest, cache_state_id)
        ).fetchone()
        if row is None:
            return Outcome.STALE
        missing, row_size, row_mtime, candidate = row[3], row[1], row[2], row[10]
        if missing or row_size != size or row_mtime != mtime_ns:
            return Outcome.STALE
        continues, old_path = None, ""
        if candidate is not None:
            found = _confirm_candidate(session, raw, cache_state_id, row, candidate, digest)
            if found is not None:
                continues, old_path = found
        outcome = _apply_rules(session, raw, cache_state_id, row, digest, size, retag)
        if continues is not None:
            if moved is not None:
                (new_path,) = raw.run(
                    "SELECT file_path FROM asset_cache_states WHERE id = {p}", (cache_state_id,)
                ).fetchone()
                moved.append((old_path, str(new_path)))
            # a fresh seed is the file moved here; a path that had its own content before
            # was replaced by it (mv y x while the daemon was down)
            reason = Reason.MOVED if row[5] is None and not row[7] else Reason.REPLACED
            record_row_move(session, continues, cache_state_id, How.HASH)  # why OLD finds it
            raw.run("DELETE FROM asset_cache_states WHERE id = {p}", (continues,))
            raw.run(
                "UPDATE asset_cache_states SET state_reason = {p}, move_candidate_id = NULL "
                "WHERE id = {p}",
                (reason, cache_state_id),
            )
            return Outcome.MOVED
        return outcome
    finally:
        raw.close()


def _confirm_candidate(
    session: Session, raw: _Raw, cache_state_id: int, row: Any, candidate: int, digest: str
) -> tuple[int, str] | None:
    """The vanished row this one continues and its path, if ``digest`` is its content (it is
    then the asset the rules merge into), else None (the guess is refuted and forgotten)."""
    found = raw.run(  # held: a live batch restoring it meanwhile waits, then finds it gone
        "SELECT c.is_missing, c.needs_verify, a.hash, c.file_path FROM asset_cache_states c "
        "JOIN assets a ON a.id = c.asset_id WHERE c.id = {p}"
        + (" FOR UPDATE OF c" if raw.pg else ""),
        (candidate,),
    ).fetchone()
    if found is None or not found[0] or found[1] or found[2] != digest:
        raw.run(
            "UPDATE asset_cache_states SET move_candidate_id = NULL WHERE id = {p}",
            (cache_state_id,),
        )
        return None
    a_id, a_hash, others = row[0], row[5], row[7]
    if a_hash is None and not others:  # the fresh asset seeded for the new path
        drop_pristine_infos(session, a_id)
    return int(candidate), str(found[3])


def _apply_rules(
    session: Session,
    raw: _Raw,
    cache_state_id: int,
    row: Any,
    digest: str,
    size: int,
    retag: set[int],
) -> str:
    a_id, _, _, _, verify, a_hash, a_size, others, live_others, b_id, _ = row
    if a_hash == digest:
        _finish(raw, cache_state_id, verify, a_id if a_size != size else None, size)
        return Outcome.VERIFIED
    if a_hash is not None and live_others:
        # an edited duplicate: it leaves its siblings, with copies of what they carry
        final = split_off(session, cache_state_id, a_id)
        retag.add(a_id)
        outcome = Outcome.SPLIT
    else:
        # this path is the asset's only live one (or the asset was never hashed): the
        # asset follows it; its other paths were not read, so they are checked again
        if others:
            _flag_others(session, a_id, cache_state_id)
        final = a_id
        outcome = Outcome.HASHED if a_hash is None else Outcome.UPDATED
    if b_id is not None:
        merge_assets(session, b_id, final)
        retag.add(b_id)
        _finish(raw, cache_state_id, verify, b_id, size)
        return Outcome.MERGED
    if outcome == Outcome.SPLIT:
        retag.add(final)
    raw.run("UPDATE assets SET hash = {p}, size_bytes = {p} WHERE id = {p}", (digest, size, final))
    _finish(raw, cache_state_id, verify)
    return outcome


def _flag_others(session: Session, asset_id: int, cache_state_id: int) -> None:
    session.execute(
        update(cs)
        .where(cs.c.asset_id == asset_id, cs.c.id != cache_state_id, cs.c.needs_verify == false())
        .values(needs_verify=True)
    )


def _finish(
    raw: _Raw, cache_state_id: int, needs_verify: bool, asset_id: int | None = None, size: int = 0
) -> None:
    """Clear the path's ``needs_verify``; give ``asset_id`` (if any) the size ``size``."""
    if needs_verify:
        raw.run(
            "UPDATE asset_cache_states SET needs_verify = {p} WHERE id = {p}",
            (False, cache_state_id),
        )
    if asset_id is not None:
        raw.run("UPDATE assets SET size_bytes = {p} WHERE id = {p}", (size, asset_id))
