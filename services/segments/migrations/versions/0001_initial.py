"""Profiles, identities, per-profile event history and counters, and the outbox.

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

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("user_id", sa.String, nullable=True),
        sa.Column("email", sa.String, nullable=True),
        sa.Column("traits", sa.String, nullable=False),
        sa.Column("trait_times", sa.String, nullable=False),
        sa.Column("first_seen", WHEN, nullable=True),
        sa.Column("last_seen", WHEN, nullable=True),
        sa.Column("time_zone", sa.String, nullable=False),
        sa.Column("locale", sa.String, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_profiles_workspace_id", "profiles", ["workspace", "id"])
    op.create_index("ix_profiles_workspace_email", "profiles", ["workspace", "email"])
    op.create_table(
        "identities",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("value", sa.String, primary_key=True),
        sa.Column("profile_id", sa.String, nullable=False),
    )
    op.create_index("ix_identities_profile_id", "identities", ["profile_id"])
    op.create_table(
        "profile_events",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("message_id", sa.String, primary_key=True),
        sa.Column("profile_id", sa.String, nullable=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("event", sa.String, nullable=False),
        sa.Column("timestamp", WHEN, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_profile_events_profile_time", "profile_events", ["profile_id", "timestamp"])
    op.create_table(
        "event_counters",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("profile_id", sa.String, primary_key=True),
        sa.Column("event_name", sa.String, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_time", WHEN, nullable=False),
        sa.Column("last_time", WHEN, nullable=False),
    )
    create_outbox_table()


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("event_counters")
    op.drop_table("profile_events")
    op.drop_table("identities")
    op.drop_table("profiles")
