"""Profile merges (kept for export) and configured sums of numeric event properties.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_merges",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("merged_profile_id", sa.String, primary_key=True),
        sa.Column("into_profile_id", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("message_id", sa.String, nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_profile_merges_workspace_into", "profile_merges", ["workspace", "into_profile_id"]
    )
    op.create_table(
        "property_sums",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("profile_id", sa.String, primary_key=True),
        sa.Column("event_name", sa.String, primary_key=True),
        sa.Column("property", sa.String, primary_key=True),
        sa.Column("total", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("property_sums")
    op.drop_table("profile_merges")
