"""JSON documents stored as written, and dates of nested traits in the date index.

Traits and event properties were stored with ASCII escapes (`"\\u4f1a\\u54e1"` for `会員`), which
SQLite's JSON paths never match, so a segment created after the data missed profiles with
non-ASCII keys; they are stored again as `models.document_text` writes them. The date index now
has the shape of the traits (nested dates included), so profiles whose traits hold an object
get theirs again.

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

from services.segments.models import derived_date_columns, document_text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Rows whose text may change: an escape, or an object nested in the document (a `{` past the
# first character; one inside a text is a harmless false positive).
# PostgreSQL's LIKE reads a backslash as its escape character unless told otherwise.
_ESCAPED = r"LIKE '%\u%' ESCAPE '!'"
_NESTED = "LIKE '_%{%'"


def upgrade() -> None:
    bind = op.get_bind()
    profiles = bind.execute(
        sa.text(
            "SELECT p.workspace, p.id, p.traits, p.trait_times, p.time_zone, s.time_zone"
            " FROM profiles p LEFT JOIN workspace_settings s ON s.workspace = p.workspace"
            f" WHERE p.traits {_ESCAPED} OR p.traits {_NESTED} OR p.trait_times {_ESCAPED}"
        )
    ).all()
    for workspace, profile_id, traits, times, time_zone, workspace_zone in profiles:
        values = json.loads(traits)
        bind.execute(
            sa.text(
                "UPDATE profiles SET traits = :traits, trait_times = :times,"
                " trait_dates = :trait_dates, trait_local_times = :trait_local_times"
                " WHERE workspace = :workspace AND id = :id"
            ),
            {
                "traits": document_text(values),
                "times": document_text(json.loads(times)),
                **derived_date_columns(values, time_zone or "", workspace_zone or ""),
                "workspace": workspace,
                "id": profile_id,
            },
        )
    events = bind.execute(
        sa.text(
            "SELECT workspace, message_id, properties FROM profile_events"
            f" WHERE properties {_ESCAPED}"
        )
    ).all()
    for workspace, message_id, properties in events:
        bind.execute(
            sa.text(
                "UPDATE profile_events SET properties = :properties"
                " WHERE workspace = :workspace AND message_id = :id"
            ),
            {
                "properties": document_text(json.loads(properties)),
                "workspace": workspace,
                "id": message_id,
            },
        )


def downgrade() -> None:
    # The documents mean the same either way; nothing to undo.
    pass
