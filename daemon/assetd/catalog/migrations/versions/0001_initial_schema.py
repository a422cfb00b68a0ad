"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Frozen: never edit a released migration; add a new one (and let tests/test_schema.py compare).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # the rowid on SQLite
PATH = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")  # byte-wise ordering


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", ID, nullable=False),
        sa.Column("hash", sa.String(length=128), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("hash", name=op.f("uq_assets_hash")),
    )
    op.create_table(
        "daemons",
        sa.Column("id", ID, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'starting'"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemons")),
        sa.UniqueConstraint("host", name=op.f("uq_daemons_host")),
    )
    op.create_table(
        "roots",
        sa.Column("id", ID, nullable=False),
        sa.Column("host", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=True),
        sa.Column("is_mount", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("shared", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "state", sa.String(length=32), server_default=sa.text("'watching'"), nullable=False
        ),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reconcile_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reconcile_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roots")),
        sa.UniqueConstraint("host", "name", name=op.f("uq_roots_host_name")),
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags")),
    )
    op.create_table(
        "asset_cache_states",
        sa.Column("id", ID, nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("root_id", ID, nullable=False),
        sa.Column("file_path", PATH, nullable=False),
        sa.Column("file_path_raw", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=True),
        sa.Column("inode", sa.BigInteger(), nullable=True),
        sa.Column("needs_verify", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_missing", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "state_changed_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False
        ),
        sa.Column(
            "state_reason", sa.String(length=32), server_default=sa.text("'seed'"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_cache_states_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["root_id"],
            ["roots.id"],
            name=op.f("fk_asset_cache_states_root_id_roots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_cache_states")),
        sa.UniqueConstraint(
            "root_id", "file_path", name=op.f("uq_asset_cache_states_root_id_file_path")
        ),
    )
    with op.batch_alter_table("asset_cache_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_asset_cache_states_asset_id"), ["asset_id"], unique=False
        )
        batch_op.create_index(
            "ix_asset_cache_states_live_path", ["root_id", "is_missing", "file_path"], unique=False
        )

    op.create_table(
        "asset_infos",
        sa.Column("id", ID, nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("user_metadata", sa.JSON(), server_default=sa.text("'{}'"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_infos_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_infos")),
        sa.UniqueConstraint("asset_id", "name", name=op.f("uq_asset_infos_asset_id_name")),
    )
    op.create_table(
        "asset_info_tags",
        sa.Column("asset_info_id", ID, nullable=False),
        sa.Column("tag_name", sa.String(length=255), nullable=False),
        sa.Column(
            "origin", sa.String(length=16), server_default=sa.text("'manual'"), nullable=False
        ),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_info_id"],
            ["asset_infos.id"],
            name=op.f("fk_asset_info_tags_asset_info_id_asset_infos"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_name"],
            ["tags.name"],
            name=op.f("fk_asset_info_tags_tag_name_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_info_id", "tag_name", name=op.f("pk_asset_info_tags")),
    )
    with op.batch_alter_table("asset_info_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_info_tags_tag_name"), ["tag_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("asset_info_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_info_tags_tag_name"))

    op.drop_table("asset_info_tags")
    op.drop_table("asset_infos")
    with op.batch_alter_table("asset_cache_states", schema=None) as batch_op:
        batch_op.drop_index("ix_asset_cache_states_live_path")
        batch_op.drop_index(batch_op.f("ix_asset_cache_states_asset_id"))

    op.drop_table("asset_cache_states")
    op.drop_table("tags")
    op.drop_table("roots")
    op.drop_table("daemons")
    op.drop_table("assets")
