"""marking a path missing rewrites no index entry: drop ``ix_asset_cache_states_live_path``

``(root_id, is_missing, file_path)`` put ``is_missing`` in an index key, so every row marked
missing (a deleted file) or restored moved from one part of that index to the other: on SQLite
about 40 % of a 100,000-deletion burst's ``UPDATE`` (0.31 s against 0.18 s without it,
docs/benchmarks.md, session 7). ``UNIQUE (root_id, file_path)`` serves every look-up it
served: a path of a root, and a root's paths in order, with ``is_missing`` read from the row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Frozen once released: add a new revision instead of editing this one.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_asset_cache_states_live_path", table_name="asset_cache_states")


def downgrade() -> None:
    op.create_index(
        "ix_asset_cache_states_live_path",
        "asset_cache_states",
        ["root_id", "is_missing", "file_path"],
        unique=False,
    )
