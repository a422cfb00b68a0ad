"""columns for the safety nets: daemons.error, birth time, links, guessed moves, pathless assets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen once released: add a new revision instead of editing this one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("daemons") as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(sa.Column("pathless_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("asset_cache_states") as batch_op:
        batch_op.add_column(sa.Column("birth_ns", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("is_symlink", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("move_candidate_id", ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_asset_cache_states_move_candidate_id_asset_cache_states"),
            "asset_cache_states",
            ["move_candidate_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("asset_cache_states") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_asset_cache_states_move_candidate_id_asset_cache_states"),
            type_="foreignkey",
        )
        batch_op.drop_column("move_candidate_id")
        batch_op.drop_column("is_symlink")
        batch_op.drop_column("birth_ns")
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("pathless_since")
    with op.batch_alter_table("daemons") as batch_op:
        batch_op.drop_column("error")
