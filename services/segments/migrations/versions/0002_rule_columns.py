"""What segment rules need to run in SQL: the date traits as numbers, a sample bucket per
profile, event properties as JSON, and an index for per-profile event look-ups by name.

Existing rows are filled from what is already stored (traits, the serialised events).

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op
from google.protobuf import json_format

from engage.rules.language import date_index, stable_bucket
from engage.v1 import common_pb2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "profiles", sa.Column("trait_dates", sa.String, nullable=False, server_default="{}")
    )
    op.add_column(
        "profiles", sa.Column("sample_bucket", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "profile_events", sa.Column("properties", sa.String, nullable=False, server_default="{}")
    )
    op.create_index(
        "ix_profile_events_profile_event_time",
        "profile_events",
        ["workspace", "profile_id", "event", "timestamp"],
    )
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    profiles = bind.execute(sa.text("SELECT id, traits FROM profiles")).all()
    for profile_id, traits in profiles:
        bind.execute(
            sa.text(
                "UPDATE profiles SET trait_dates = :dates, sample_bucket = :bucket WHERE id = :id"
            ),
            {
                "dates": json.dumps(
                    {key: found.at for key, found in date_index(json.loads(traits)).items()},
                    sort_keys=True,
                ),
                "bucket": stable_bucket(profile_id),
                "id": profile_id,
            },
        )
    events = bind.execute(
        sa.text("SELECT workspace, message_id, payload FROM profile_events")
    ).all()
    for workspace, message_id, payload in events:
        event = common_pb2.Event.FromString(payload)
        bind.execute(
            sa.text(
                "UPDATE profile_events SET properties = :properties"
                " WHERE workspace = :workspace AND message_id = :message_id"
            ),
            {
                "properties": json.dumps(json_format.MessageToDict(event.properties)),
                "workspace": workspace,
                "message_id": message_id,
            },
        )


def downgrade() -> None:
    op.drop_index("ix_profile_events_profile_event_time", "profile_events")
    with op.batch_alter_table("profile_events") as table:
        table.drop_column("properties")
    with op.batch_alter_table("profiles") as table:
        table.drop_column("sample_bucket")
        table.drop_column("trait_dates")
