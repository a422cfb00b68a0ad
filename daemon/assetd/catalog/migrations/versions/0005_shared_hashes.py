"""a share is hashed once (DESIGN §7): what each path's hash was computed for, and hash claims

``asset_cache_states.hashed_size_bytes`` / ``hashed_mtime_ns``: the size and mtime_ns the file
had when the hash its asset carries was read (or trusted) for this path; NULL when never hashed.
Another host with the same ``shared`` label trusts that hash only while the path's figures are
still these. ``share_hash_claims``: one row per (shared label, path relative to the root) a host
is reading now, so two hosts do not both read a file of a fresh share.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Frozen once released: add a new revision instead of editing this one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PATH = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("asset_cache_states") as batch_op:
        batch_op.add_column(sa.Column("hashed_size_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("hashed_mtime_ns", sa.BigInteger(), nullable=True))
    op.create_table(
        "share_hash_claims",
        sa.Column("shared", sa.String(length=255), nullable=False),
        sa.Column("rel_path", PATH, nullable=False),
        sa.Column("host", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("shared", "rel_path", name=op.f("pk_share_hash_claims")),
    )
    op.create_index(op.f("ix_share_hash_claims_host"), "share_hash_claims", ["host"])


def downgrade() -> None:
    op.drop_index(op.f("ix_share_hash_claims_host"), table_name="share_hash_claims")
    op.drop_table("share_hash_claims")
    with op.batch_alter_table("asset_cache_states") as batch_op:
        batch_op.drop_column("hashed_mtime_ns")
        batch_op.drop_column("hashed_size_bytes")
