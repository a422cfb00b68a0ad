"""A move is a fact, a pairing is a guess (DESIGN §2, §4).

A rename the kernel reports as one (inotify's paired MOVED_FROM/MOVED_TO) is a move, applied by
:mod:`assetd.catalog.moves`. A path that vanished and a path that appeared with the same
(device, inode, size, mtime_ns) -- a move while the daemon was down, from an unwatched place, by
copy and delete -- may be the same file, or a new file on a reused inode (ext4 reuses them at
once; tar, rsync and reproducible builds leave one fixed mtime). So a pairing only *proposes*:
the new path keeps its own fresh asset, its row points at the vanished one
(``move_candidate_id``), and metadata follows only when the hasher finds the content the
vanished path had (:func:`assetd.catalog.content.apply_hash` merges them in the transaction
that learns the hash). Content that differs leaves both as they are: the old path missing with
its metadata, the new file a new asset.

A vanished path whose content was never hashed (hashing off, or not done yet) has no content
to check the new one against: there the birth time decides (``birth_ns``, read by ``statx``
where a row is written: :mod:`assetd.statx`). A moved file keeps its birth time, a new file on a
reused inode gets its own; so when both rows have one and they are equal, the pairing is a move
at once (the fresh asset seeded for the new path merges into the vanished one, as a confirmed
candidate does). With no birth time on either side (tmpfs before Linux 5.18, FAT, NFS, a row
seeded before birth times were read), a never-hashed vanished path is not paired. A hashed one
goes through the hasher as above, whatever the birth times say.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from assetd.catalog.metadata import drop_pristine_infos, merge_assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.movelog import How, record_row_move
from assetd.catalog.sqlutil import db_value, placeholder, select_in
from assetd.catalog.states import Reason, utcnow

_COLUMNS = (
    "SELECT c.id, c.root_id, c.file_path, c.asset_id, c.device, c.inode, c.size_bytes, "
    "c.mtime_ns, a.hash, c.needs_verify, c.birth_ns FROM asset_cache_states c "
    "JOIN assets a ON a.id = c.asset_id "
    "WHERE c.root_id IN ({roots}) AND c.is_missing = {{p}} AND c.state_changed_at >= {{p}} "
    "AND c.device IS NOT NULL AND c.inode IS NOT NULL"
)
_NEW_REASONS = (Reason.SEED, Reason.LIVE, Reason.RECONCILE)  # seeded, or changed in place


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    root_id: int
    path: str
    asset_id: int
    key: tuple[Any, ...]  # device, inode, size, mtime_ns
    hash: str | None
    needs_verify: bool
    birth_ns: int | None


@dataclass(slots=True)
class Pairing:
    """What :func:`pair_moved_files` found: ``moved`` are confirmed already (the two paths were
    one asset: the hasher had read the new one), as (old path, new path, asset id);
    ``candidates`` wait for the hash, as (old path, new path)."""

    moved: list[tuple[str, str, int]] = field(default_factory=list)
    candidates: list[tuple[str, str]] = field(default_factory=list)


def _rows(
    session: Session,
    roots: Collection[int],
    missing: bool,
    since: dt.datetime,
    paths: Sequence[str] | None,
) -> list[_Row]:
    sql = _COLUMNS.format(roots=", ".join(str(int(r)) for r in roots))
    params: tuple[Any, ...] = (missing, db_value(session, since))
    if not missing:
        sql += " AND c.state_reason IN ({p}, {p}, {p})"
        params += _NEW_REASONS
    if paths is None:
        p = placeholder(session)
        raw = [tuple(r) for r in session.connection().exec_driver_sql(sql.format(p=p), params)]
    else:
        raw = select_in(session, sql + " AND c.file_path {in}", sorted(paths), params)
    return [
        _Row(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            int(r[3]),
            (r[4], r[5], r[6], r[7]),
            r[8],
            bool(r[9]),
            None if r[10] is None else int(r[10]),
        )
        for r in raw
    ]


def pair_moved_files(
    session: Session,
    *,
    roots: Collection[int],
    since: dt.datetime,
    old_paths: Sequence[str] | None = None,
    new_paths: Sequence[str] | None = None,
) -> Pairing:
    """Pair rows marked missing since ``since`` with rows seeded or changed since then that
    have the same (device, inode, size, mtime_ns), each the only match of the other.

    - Both rows on one asset already (the hasher read the new file and found the old content):
      a move, now: the old row goes, the new one is ``moved``.
    - The old content is known (hashed, not ``needs_verify``) and the new row is not yet read:
      a candidate (``move_candidate_id``); the hasher decides.
    - The old content was never hashed (or changed since), and both rows have the same birth
      time: a move, now (:func:`_adopt`; the new row is ``moved``).
    - Otherwise (no birth time to tell, or the new content is known to differ): not a move.
      Nothing else is written; no info or tag is ever deleted here (a fresh seed's own
      untouched info goes when it merges into the asset it continues).

    ``old_paths``/``new_paths`` narrow the look (a live batch).
    """
    found = Pairing()
    if not roots:
        return found
    since = since - dt.timedelta(seconds=1)  # SQLite's CURRENT_TIMESTAMP has whole seconds
    olds = _rows(session, roots, True, since, old_paths)
    if not olds:
        return found
    news = _rows(session, roots, False, since, new_paths)
    old_count = Counter(r.key for r in olds)
    new_count = Counter(r.key for r in news)
    new_by = {r.key: r for r in news if new_count[r.key] == 1}
    now = utcnow()
    for old in olds:
        new = new_by.get(old.key)
        if new is None or old_count[old.key] != 1 or new.id == old.id:
            continue
        if new.asset_id == old.asset_id:
            record_row_move(session, old.id, new.id, How.HASH, now=now)
            session.execute(delete(cs).where(cs.c.id == old.id))
            session.execute(
                update(cs)
                .where(cs.c.id == new.id)
                .values(state_changed_at=now, state_reason=Reason.MOVED, move_candidate_id=None)
            )
            found.moved.append((old.path, new.path, old.asset_id))
        elif (
            old.hash is not None and not old.needs_verify and (new.hash is None or new.needs_verify)
        ):
            session.execute(update(cs).where(cs.c.id == new.id).values(move_candidate_id=old.id))
            found.candidates.append((old.path, new.path))
        elif (old.hash is None or old.needs_verify) and _same_birth(old, new):
            found.moved.append((old.path, new.path, _adopt(session, old, new, now)))
    return found


def _same_birth(old: _Row, new: _Row) -> bool:
    return old.birth_ns is not None and old.birth_ns == new.birth_ns


def _adopt(session: Session, old: _Row, new: _Row, now: dt.datetime) -> int:
    """The new row is the old file moved (same birth time): one asset for both, the old row
    goes. The survivor is the old asset, unless the hasher has read the new file already (its
    asset then has the content; the old one, never hashed, merges into it). A fresh seed's own
    untouched info is dropped first, so the moved file keeps its name. Returns the asset."""
    survivor, merged = old.asset_id, new.asset_id
    if new.hash is not None and not new.needs_verify:
        survivor, merged = new.asset_id, old.asset_id
        # the old asset's other paths were never read: the content they join is checked
        session.execute(
            update(cs)
            .where(cs.c.asset_id == old.asset_id, cs.c.id != old.id)
            .values(needs_verify=True)
        )
    elif not _has_other_rows(session, new.asset_id, new.id):
        drop_pristine_infos(session, new.asset_id)
    merge_assets(session, survivor, merged)
    record_row_move(session, old.id, new.id, How.BIRTH, now=now)
    session.execute(delete(cs).where(cs.c.id == old.id))
    values: dict[str, object] = {"state_reason": Reason.MOVED, "move_candidate_id": None}
    if survivor == old.asset_id and old.hash is not None:
        values["needs_verify"] = True  # the asset has a content the new path was never read for
    session.execute(update(cs).where(cs.c.id == new.id).values(state_changed_at=now, **values))
    return survivor


def _has_other_rows(session: Session, asset_id: int, but: int) -> bool:
    query = select(cs.c.id).where(cs.c.asset_id == asset_id, cs.c.id != but).limit(1)
    return session.execute(query).first() is not None
