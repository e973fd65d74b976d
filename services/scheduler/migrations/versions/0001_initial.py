"""Journeys, their versions, enrollments and the outbox.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engage.outbox import create_outbox_table

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("journey_id", sa.String, nullable=False),
        sa.Column("uid", sa.String, nullable=False),
        sa.Column("display_name", sa.String, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trigger_event", sa.String, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "journey_id", name="uq_journeys_workspace_journey"),
    )
    op.create_index("ix_journeys_trigger", "journeys", ["workspace", "state", "trigger_event"])
    op.create_table(
        "journey_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("journey_id", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trigger_event", sa.String, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "workspace", "journey_id", "version", name="uq_journey_versions_version"
        ),
    )
    op.create_table(
        "journey_enrollments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("journey_id", sa.String, nullable=False),
        sa.Column("profile_key", sa.String, nullable=False),
        sa.Column("enrollment_id", sa.String, nullable=False),
        sa.Column("journey_version", sa.Integer, nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("anonymous_id", sa.String, nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "workspace", "journey_id", "profile_key", name="uq_journey_enrollments_profile"
        ),
    )
    create_outbox_table()


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("journey_enrollments")
    op.drop_table("journey_versions")
    op.drop_index("ix_journeys_trigger", table_name="journeys")
    op.drop_table("journeys")
