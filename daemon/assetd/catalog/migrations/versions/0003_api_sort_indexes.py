"""indexes for the HTTP API's sorted pages: asset_infos by created_at, updated_at, name; assets
by size (each with the id that breaks ties), so a keyset page reads one index range

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Frozen once released: add a new revision instead of editing this one.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_asset_infos_created_at_id", "asset_infos", ["created_at", "id"]),
    ("ix_asset_infos_updated_at_id", "asset_infos", ["updated_at", "id"]),
    ("ix_asset_infos_name_id", "asset_infos", ["name", "id"]),
    ("ix_assets_size_bytes_id", "assets", ["size_bytes", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
