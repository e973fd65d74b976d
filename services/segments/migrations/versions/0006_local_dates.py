"""The customer's calendar: each date trait also on the profile's wall clock, and a settings
row per workspace holding its time zone.

Date-only and zone-less traits were read as UTC; they are now read in the profile's zone, so
the date index of every profile is computed again (no workspace has a zone setting yet).

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

from services.segments.models import derived_date_columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "profiles",
        sa.Column("trait_local_times", sa.String, nullable=False, server_default="{}"),
    )
    op.create_table(
        "workspace_settings",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("time_zone", sa.String, nullable=False, server_default=""),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Parsed once on write, as the other trait documents (0005).
        op.execute(
            "ALTER TABLE profiles ADD COLUMN trait_local_times_doc jsonb "
            "GENERATED ALWAYS AS (trait_local_times::jsonb) STORED"
        )
    _recompute()


def _recompute() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT workspace, id, traits, time_zone FROM profiles")).all()
    for workspace, profile_id, traits, time_zone in rows:
        bind.execute(
            sa.text(
                "UPDATE profiles SET trait_dates = :trait_dates,"
                " trait_local_times = :trait_local_times"
                " WHERE workspace = :workspace AND id = :id"
            ),
            {
                **derived_date_columns(json.loads(traits), time_zone or ""),
                "workspace": workspace,
                "id": profile_id,
            },
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE profiles DROP COLUMN trait_local_times_doc")
    op.drop_table("workspace_settings")
    with op.batch_alter_table("profiles") as table:
        table.drop_column("trait_local_times")
