"""The workspace's messaging policy: frequency caps, the global control group, quiet hours.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspace_settings") as batch:
        batch.add_column(sa.Column("frequency_caps", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("global_control_percent", sa.Float, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("quiet_hours", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("workspace_settings") as batch:
        batch.drop_column("quiet_hours")
        batch.drop_column("global_control_percent")
        batch.drop_column("frequency_caps")
