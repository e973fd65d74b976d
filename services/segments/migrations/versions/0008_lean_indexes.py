"""Indexes shaped for the real-time path.

Memberships are looked up by (workspace, profile, segment): with only (workspace, profile),
SQLite's planner preferred the primary key (workspace, segment, profile) and walked every
membership of the workspace for each lookup of a few thousand profiles (900 ms instead of 54 ms
for 5,000 profiles). The history's (profile_id, timestamp) index served nothing that
(workspace, profile_id, event, timestamp) does not, and cost every insert.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_profile_events_profile_time", "profile_events")
    op.drop_index("ix_segment_memberships_profile", "segment_memberships")
    op.create_index(
        "ix_segment_memberships_profile",
        "segment_memberships",
        ["workspace", "profile_id", "segment_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_segment_memberships_profile", "segment_memberships")
    op.create_index(
        "ix_segment_memberships_profile", "segment_memberships", ["workspace", "profile_id"]
    )
    op.create_index("ix_profile_events_profile_time", "profile_events", ["profile_id", "timestamp"])
