"""What the hasher still has to read: the cache states that need a hash, and their count.

Apart from :mod:`assetd.catalog.content` (which uses :func:`needs_hash` to pick its work) so
that ``assetd status`` can show the backlog without importing the content rules and their
metadata operations.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true

from assetd.catalog.sqlutil import Reader
from assetd.catalog.tables import assets
from assetd.catalog.tables import cache_states as cs

__all__ = ["hashing_backlog", "needs_hash"]


def needs_hash() -> Any:
    """Live, not a link (a link to outside every root is never read: DESIGN §5), and unhashed
    or flagged ``needs_verify``."""
    return and_(
        cs.c.is_missing == false(),
        cs.c.is_symlink == false(),
        or_(assets.c.hash.is_(None), cs.c.needs_verify == true()),
    )


def hashing_backlog(session: Reader, *, roots: Collection[int]) -> tuple[int, int]:
    """``(files, bytes)`` of live cache states in these roots that need a hash: their asset is
    unhashed, or they are flagged ``needs_verify``."""
    if not roots:
        return 0, 0
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(cs.c.size_bytes), 0))
        .select_from(cs.join(assets, assets.c.id == cs.c.asset_id))
        .where(cs.c.root_id.in_(list(roots)), needs_hash())
    ).one()
    return int(row[0]), int(row[1])
