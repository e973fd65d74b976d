"""A campaign's goal event, and when each recipient was sent and whether it converted; the
index that finds a broadcast's pending members.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns", sa.Column("goal_event", sa.String, nullable=False, server_default="")
    )
    op.add_column(
        "campaign_recipients", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "campaign_recipients",
        sa.Column("converted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_campaign_recipients_pending",
        "campaign_recipients",
        ["workspace", "campaign_id", "run", "status", "due_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_recipients_pending", table_name="campaign_recipients")
    with op.batch_alter_table("campaign_recipients") as table:
        table.drop_column("converted")
        table.drop_column("sent_at")
    with op.batch_alter_table("campaigns") as table:
        table.drop_column("goal_event")
