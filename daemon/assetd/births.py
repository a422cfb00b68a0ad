"""Birth times for rows written before assetd read them (docs/content-rules.md, rule 8).

A row gets its birth time where it is written (seeded, changed, restored: one ``statx`` per
written row, :mod:`assetd.statx`); an unchanged file's row is never rewritten, so a catalog from
before birth times were read would never have them, and its never-hashed files would never pair
when moved while the daemon is stopped. The periodic pass fills them in: up to :data:`LIMIT` rows
a pass, by pages of :data:`PAGE` (read, ``statx`` outside any transaction, then one short write
that sets only rows still without a birth time and still on the same device and inode). A root
whose filesystem keeps no birth time costs :data:`PROBE` calls a pass: its first files show none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import bindparam, false, select, update
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.models import cache_states as cs
from assetd.catalog.roots import RootSpec
from assetd.fsutil import os_path_of
from assetd.statx import identity

PAGE = 2_000
LIMIT = 100_000
PROBE = 20
_log = log.get_logger("assetd.reconcile")

Identity = Callable[..., "tuple[int, int, int | None] | None"]


def backfill_birth_times(
    session: Session,
    roots: Sequence[RootSpec],
    *,
    cancel: Callable[[], bool] | None = None,
    limit: int = LIMIT,
    read: Identity = identity,
) -> int:
    """Give live rows without a birth time theirs, where the filesystem keeps one; returns rows
    filled. The session must not be in a transaction."""
    filled = looked = 0
    for root in roots:
        after, none_seen, some_seen = 0, 0, False
        while looked < limit and (some_seen or none_seen < PROBE):
            if cancel is not None and cancel():
                return filled
            with session.begin():
                rows = session.execute(
                    select(cs.c.id, cs.c.file_path, cs.c.file_path_raw, cs.c.device, cs.c.inode)
                    .add_columns(cs.c.is_symlink)
                    .where(
                        cs.c.root_id == root.id,
                        cs.c.is_missing == false(),
                        cs.c.birth_ns.is_(None),
                        cs.c.device.is_not(None),
                        cs.c.id > after,
                    )
                    .order_by(cs.c.id)
                    .limit(min(PAGE if some_seen else PROBE, limit - looked))
                ).all()
            if not rows:
                break
            found = []
            for r in rows:
                got = read(os_path_of(r.file_path, r.file_path_raw), follow=not r.is_symlink)
                if got is None or (got[0], got[1]) != (r.device, r.inode):
                    continue  # gone or replaced: the next walk sees it
                if got[2] is None:
                    none_seen += 1
                else:
                    some_seen = True
                    found.append({"b_id": r.id, "b_dev": r.device, "b_ino": r.inode, "b": got[2]})
            if found:
                with session.begin():
                    session.connection().execute(
                        update(cs)
                        .where(
                            cs.c.id == bindparam("b_id"),
                            cs.c.birth_ns.is_(None),
                            cs.c.device == bindparam("b_dev"),
                            cs.c.inode == bindparam("b_ino"),
                        )
                        .values(birth_ns=bindparam("b")),
                        found,
                    )
            filled += len(found)
            looked += len(rows)
            after = rows[-1].id
    if filled:
        _log.info("birth_times.recorded", count=filled, roots=[r.name for r in roots])
    return filled
