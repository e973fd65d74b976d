"""Message records remember a handoff to the provider: when it began, and how many there were.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("handoff_time", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("handoffs", sa.Integer, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("handoffs")
        batch.drop_column("handoff_time")
