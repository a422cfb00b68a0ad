"""A share is hashed once (DESIGN §7): the catalog side.

Roots with the same ``shared`` label on several hosts are one share. A hash one host computed for
a path relative to its root is trusted by the others for exactly the size and mtime_ns it was
computed for (``asset_cache_states.hashed_size_bytes`` / ``hashed_mtime_ns``, written by
:func:`note_hashed_for` when a digest is recorded). :func:`trusted_digests` finds such hashes for
a host's jobs, so the file is never read again.

Two hosts meeting a fresh share at once would both read it; a *claim* stops that:
``share_hash_claims`` holds one row per (label, relative path) a host is reading now. The claim
is an upsert on that key (:func:`claim`): it is taken when there is none, when it is the host's
own, when it was taken for other figures (the file changed since), or when its lease expired
(a host that died, or a read slower than the lease). The database's unique key decides a race:
the second host's insert waits for the first's commit, then finds it and gets nothing. A host
that finds a file claimed by another waits and looks for the hash again later; one that holds
claims renews them while it reads (:func:`renew_claims`) and drops them when it has nothing
left to hash (:func:`drop_claims`).

Engine-neutral SQL (``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE ... RETURNING`` is the same
on SQLite >= 3.35 and PostgreSQL); runs in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from assetd.catalog.content import HashJob
from assetd.catalog.roots import RootSpec
from assetd.catalog.sqlutil import chunked, db_value, placeholder, select_in

CLAIM_LEASE = dt.timedelta(minutes=10)
"""How long a claim holds without renewal; renewed each time the claiming host records a batch,
so it has to cover one file's read (10 min: 60 GB at 100 MB/s)."""


@dataclass(frozen=True, slots=True)
class ShareOf:
    """A root of this host that belongs to a share: its label and its path."""

    label: str
    path: str


def shares_of(roots: Iterable[RootSpec]) -> dict[int, ShareOf]:
    """``root id -> ShareOf`` for the roots with a ``shared`` label."""
    return {r.id: ShareOf(r.shared, r.path) for r in roots if r.shared}


def relative(root_path: str, file_path: str) -> str:
    """``file_path`` relative to the root's path (catalog form, ``/``-separated)."""
    top = root_path.rstrip("/") + "/"
    return file_path[len(top) :] if file_path.startswith(top) else file_path


def note_hashed_for(session: Session, recorded: Sequence[tuple[int, int, int]]) -> None:
    """``(cache_state_id, size, mtime_ns)``: a digest was recorded for these figures. A row
    whose figures changed meanwhile is left alone (its hash was not computed for them)."""
    if not recorded:
        return
    p = placeholder(session)
    session.connection().exec_driver_sql(
        f"UPDATE asset_cache_states SET hashed_size_bytes = {p}, hashed_mtime_ns = {p} "
        f"WHERE id = {p} AND size_bytes = {p} AND mtime_ns = {p}",
        [(size, mtime, cid, size, mtime) for cid, size, mtime in recorded],
    )


_PEERS_SQL = "SELECT id, path FROM roots WHERE shared = {p} AND id <> {p}"
_ROWS_SQL = (
    "SELECT c.file_path, c.size_bytes, c.mtime_ns, a.hash FROM asset_cache_states c "
    "JOIN assets a ON a.id = c.asset_id WHERE c.root_id = {p} "
    "AND c.is_missing = {p} AND c.needs_verify = {p} AND c.is_symlink = {p} "
    "AND a.hash IS NOT NULL AND c.hashed_size_bytes = c.size_bytes "
    "AND c.hashed_mtime_ns = c.mtime_ns AND c.file_path {in}"
)


def trusted_digests(
    session: Session, jobs: Sequence[HashJob], shares: Mapping[int, ShareOf]
) -> dict[int, str]:
    """``job id -> digest`` for the jobs whose file another root of the same share holds at the
    same relative path, with the same size and mtime_ns, hashed for exactly those and not
    flagged ``needs_verify`` since. One query per other root of the share, by the
    (root_id, file_path) key."""
    found: dict[int, str] = {}
    p = placeholder(session)
    by_label: dict[str, list[tuple[HashJob, str]]] = {}
    for job in jobs:
        share = shares.get(job.root_id)
        if share is not None:
            by_label.setdefault(share.label, []).append((job, relative(share.path, job.file_path)))
    conn = session.connection()
    for label, items in by_label.items():
        mine = {job.root_id for job, _ in items}
        peers = [
            (rid, path)
            for rid, path in conn.exec_driver_sql(_PEERS_SQL.format(p=p), (label, -1)).all()
            if rid not in mine
        ]
        for peer_id, peer_path in peers:
            wanted = {
                peer_path.rstrip("/") + "/" + rel: job for job, rel in items if job.id not in found
            }
            if not wanted:
                break
            params = (peer_id, False, False, False)
            rows = select_in(session, _ROWS_SQL, sorted(wanted), params=params)
            for path, size, mtime, digest in rows:
                job = wanted[path]
                if size == job.size and mtime == job.mtime_ns:
                    found[job.id] = str(digest)
    return found


# --------------------------------------------------------------------------- claims

_CLAIM_SQL = (
    "INSERT INTO share_hash_claims (shared, rel_path, host, size_bytes, mtime_ns, claimed_at) "
    "VALUES {values} ON CONFLICT (shared, rel_path) DO UPDATE SET host = excluded.host, "
    "size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns, "
    "claimed_at = excluded.claimed_at WHERE share_hash_claims.host = excluded.host "
    "OR share_hash_claims.claimed_at < {p} OR share_hash_claims.size_bytes <> excluded.size_bytes "
    "OR share_hash_claims.mtime_ns <> excluded.mtime_ns RETURNING shared, rel_path"
)
_CLAIM_ROWS = 500  # 6 parameters a row: well below either engine's limit


def claim(
    session: Session,
    host: str,
    jobs: Sequence[HashJob],
    shares: Mapping[int, ShareOf],
    *,
    now: dt.datetime,
    lease: dt.timedelta = CLAIM_LEASE,
) -> set[int]:
    """Claim the shared jobs' files for ``host``; returns the ids of the jobs it may read: not
    shared, or claimed now. The others are being read by another host (wait for its hash)."""
    keyed: dict[tuple[str, str], list[HashJob]] = {}
    free = set()
    for job in jobs:
        share = shares.get(job.root_id)
        if share is None:
            free.add(job.id)
        else:
            keyed.setdefault((share.label, relative(share.path, job.file_path)), []).append(job)
    if not keyed:
        return free
    p = placeholder(session)
    stamp, cutoff = db_value(session, now), db_value(session, now - lease)
    conn = session.connection()
    won: set[tuple[str, str]] = set()
    for chunk in chunked(sorted(keyed), _CLAIM_ROWS):  # sorted: two hosts lock in one order
        values = ", ".join([f"({p}, {p}, {p}, {p}, {p}, {p})"] * len(chunk))
        params: list[object] = []
        for key in chunk:
            first = keyed[key][0]
            params += [key[0], key[1], host, first.size, first.mtime_ns, stamp]
        sql = _CLAIM_SQL.format(values=values, p=p)
        won.update((str(a), str(b)) for a, b in conn.exec_driver_sql(sql, (*params, cutoff)))
    return free | {job.id for key in won for job in keyed[key]}


def renew_claims(session: Session, host: str, now: dt.datetime) -> None:
    """The host is still reading: its claims' leases start again."""
    p = placeholder(session)
    session.connection().exec_driver_sql(
        f"UPDATE share_hash_claims SET claimed_at = {p} WHERE host = {p}",
        (db_value(session, now), host),
    )


def drop_claims(session: Session, host: str) -> int:
    """The host has nothing left to read (or starts afresh): its claims go."""
    p = placeholder(session)
    result = session.connection().exec_driver_sql(
        f"DELETE FROM share_hash_claims WHERE host = {p}", (host,)
    )
    return max(int(result.rowcount), 0)
