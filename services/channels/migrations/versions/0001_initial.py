"""Templates, message records and the outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from engage.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("template_id", sa.String, nullable=False),
        sa.Column("display_name", sa.String, nullable=False),
        sa.Column("channel", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "template_id"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("message_id", sa.String, nullable=False),
        sa.Column("idempotency_key", sa.String, nullable=False),
        sa.Column("channel", sa.Integer, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("profile", sa.String, nullable=False),
        sa.Column("template", sa.String, nullable=False),
        sa.Column("recipient", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("journey", sa.String, nullable=False),
        sa.Column("journey_version", sa.BigInteger, nullable=False),
        sa.Column("step_id", sa.String, nullable=False),
        sa.Column("campaign", sa.String, nullable=False),
        sa.Column("provider_message_id", sa.String, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_time", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("workspace", "idempotency_key"),
        sa.UniqueConstraint("workspace", "message_id"),
    )
    op.create_index("ix_messages_workspace_profile", "messages", ["workspace", "profile", "id"])
    create_outbox_table()


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_index("ix_messages_workspace_profile", table_name="messages")
    op.drop_table("messages")
    op.drop_table("templates")
