"""asset_moves: a bounded history of the moves the catalog applied, so `why OLD` can say where a
file renamed away went (one row per file move, one per directory move)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Frozen once released: add a new revision instead of editing this one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # the rowid on SQLite
PATH = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")  # byte-wise ordering


def upgrade() -> None:
    op.create_table(
        "asset_moves",
        sa.Column("id", ID, nullable=False),
        sa.Column("asset_id", ID, nullable=True),
        sa.Column("root_id", ID, nullable=False),
        sa.Column("from_path", PATH, nullable=False),
        sa.Column("to_path", PATH, nullable=False),
        sa.Column("is_dir", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("how", sa.String(length=32), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_moves_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["roots.id"], name=op.f("fk_asset_moves_root_id_roots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_moves")),
    )
    op.create_index("ix_asset_moves_asset_id", "asset_moves", ["asset_id"], unique=False)
    op.create_index("ix_asset_moves_from_path_id", "asset_moves", ["from_path", "id"], unique=False)
    op.create_index("ix_asset_moves_moved_at", "asset_moves", ["moved_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_asset_moves_moved_at", table_name="asset_moves")
    op.drop_index("ix_asset_moves_from_path_id", table_name="asset_moves")
    op.drop_index("ix_asset_moves_asset_id", table_name="asset_moves")
    op.drop_table("asset_moves")
