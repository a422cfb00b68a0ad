"""What the hasher still has to read: the cache states that need a hash, and their count.

Apart from :mod:`assetd.catalog.content` (which uses :data:`NEEDS_HASH` to pick its work) so
that ``assetd status`` can show the backlog without importing the content rules and their
metadata operations; plain SQL text (:mod:`assetd.catalog.sqltext`), so it can without
SQLAlchemy too.
"""

from __future__ import annotations

from collections.abc import Collection

from assetd.catalog.sqltext import TextReader, query

__all__ = ["NEEDS_HASH", "hashing_backlog"]

NEEDS_HASH = (
    "asset_cache_states.is_missing = false AND asset_cache_states.is_symlink = false "
    "AND (assets.hash IS NULL OR asset_cache_states.needs_verify = true)"
)
"""Live, not a link (a link to outside every root is never read: DESIGN §5), and unhashed or
flagged ``needs_verify``: a condition on ``asset_cache_states`` joined with ``assets`` (the
tables by their own names)."""


_BACKLOG = (
    "SELECT count(*), coalesce(sum(asset_cache_states.size_bytes), 0) FROM asset_cache_states "
    "JOIN assets ON assets.id = asset_cache_states.asset_id "
    f"WHERE asset_cache_states.root_id IN :roots AND {NEEDS_HASH}"
)


def hashing_backlog(session: TextReader, *, roots: Collection[int]) -> tuple[int, int]:
    """``(files, bytes)`` of live cache states in these roots that need a hash: their asset is
    unhashed, or they are flagged ``needs_verify``."""
    if not roots:
        return 0, 0
    [(files, size)] = query(session, _BACKLOG, roots=list(roots))
    return int(files), int(size)
