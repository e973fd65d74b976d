"""Segment definitions, their versions, memberships, and the staging table of membership changes.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("display_name", sa.String, nullable=False),
        sa.Column("description", sa.String, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        # The serialised engage.v1.Rule of the current version.
        sa.Column("rule", sa.LargeBinary, nullable=False),
        # Whether membership can change by the passage of time alone (the sweeper's work list).
        sa.Column("time_dependent", sa.Boolean, nullable=False),
        sa.Column("create_time", WHEN, nullable=False),
        sa.Column("update_time", WHEN, nullable=False),
    )
    op.create_table(
        "segment_versions",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("segment_id", sa.String, primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("display_name", sa.String, nullable=False),
        sa.Column("description", sa.String, nullable=False),
        sa.Column("rule", sa.LargeBinary, nullable=False),
        sa.Column("create_time", WHEN, nullable=False),
    )
    op.create_table(
        "segment_memberships",
        sa.Column("workspace", sa.Text, primary_key=True),
        sa.Column("segment_id", sa.Text, primary_key=True),
        sa.Column("profile_id", sa.Text, primary_key=True),
        sa.Column("entered_at", WHEN, nullable=False),
    )
    # Real-time evaluation and erasure look memberships up by profile.
    op.create_index(
        "ix_segment_memberships_profile", "segment_memberships", ["workspace", "profile_id"]
    )
    # Filled and emptied inside one batch evaluation's transaction: the difference between the
    # stored members and the rule's members, paged from here into the outbox in chunks.
    op.create_table(
        "segment_membership_changes",
        sa.Column("workspace", sa.Text, primary_key=True),
        sa.Column("segment_id", sa.Text, primary_key=True),
        sa.Column("profile_id", sa.Text, primary_key=True),
        sa.Column("change", sa.Integer, nullable=False),
        sa.Column("entered_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("segment_membership_changes")
    op.drop_index("ix_segment_memberships_profile", "segment_memberships")
    op.drop_table("segment_memberships")
    op.drop_table("segment_versions")
    op.drop_table("segments")
