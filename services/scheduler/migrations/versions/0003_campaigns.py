"""Campaigns, and each member of a broadcast's audience.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("campaign_id", sa.String, nullable=False),
        sa.Column("uid", sa.String, nullable=False),
        sa.Column("display_name", sa.String, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("send_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("cursor", sa.String, nullable=False),
        sa.Column("audience_done", sa.Boolean, nullable=False),
        sa.Column("targeted", sa.Integer, nullable=False),
        sa.Column("queued", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Text, nullable=False),
        sa.Column("pending", sa.Integer, nullable=False),
        sa.Column("test_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("winner", sa.String, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "campaign_id", name="uq_campaigns_workspace_campaign"),
    )
    op.create_index("ix_campaigns_state", "campaigns", ["state"])
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("campaign_id", sa.String, nullable=False),
        sa.Column("run", sa.Integer, nullable=False),
        sa.Column("profile_key", sa.String, nullable=False),
        sa.Column("variant", sa.String, nullable=False),
        sa.Column("send_key", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("zone", sa.String, nullable=False),
        sa.Column("opened", sa.Boolean, nullable=False),
        sa.Column("clicked", sa.Boolean, nullable=False),
        sa.UniqueConstraint(
            "workspace", "campaign_id", "run", "profile_key", name="uq_campaign_recipients_profile"
        ),
    )
    op.create_index("ix_campaign_recipients_send", "campaign_recipients", ["workspace", "send_key"])


def downgrade() -> None:
    op.drop_table("campaign_recipients")
    op.drop_index("ix_campaigns_state", table_name="campaigns")
    op.drop_table("campaigns")
