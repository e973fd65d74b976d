"""Journeys as graphs: definitions in the contract's JSON, enrollments that wait, timers, and
the frequency ledger.

Revision ID: 0002
Revises: 0001
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPLETED = 2


def upgrade() -> None:
    for table in ("journeys", "journey_versions"):
        _steps_into_definition(table)
    op.add_column(
        "journeys", sa.Column("trigger_segment", sa.String, nullable=False, server_default="")
    )
    op.create_index(
        "ix_journeys_trigger_segment", "journeys", ["workspace", "state", "trigger_segment"]
    )
    with op.batch_alter_table("journey_enrollments") as batch:
        batch.drop_constraint("uq_journey_enrollments_profile", type_="unique")
        # Enrollments so far sent every step at once on entry: all of them are done.
        batch.add_column(
            sa.Column("status", sa.Integer, nullable=False, server_default=str(COMPLETED))
        )
        batch.add_column(
            sa.Column("trigger_message_id", sa.String, nullable=False, server_default="")
        )
        batch.add_column(sa.Column("context", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("active_key", sa.String, nullable=True))
        batch.add_column(sa.Column("step_id", sa.String, nullable=False, server_default=""))
        batch.add_column(sa.Column("awaiting_event", sa.String, nullable=False, server_default=""))
        batch.add_column(sa.Column("last_send_key", sa.String, nullable=False, server_default=""))
        batch.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint("uq_journey_enrollments_id", ["workspace", "enrollment_id"])
        batch.create_unique_constraint(
            "uq_journey_enrollments_active", ["workspace", "journey_id", "active_key"]
        )
    op.create_index(
        "ix_journey_enrollments_profile",
        "journey_enrollments",
        ["workspace", "profile_key", "status"],
    )
    op.create_table(
        "journey_timers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("journey_id", sa.String, nullable=False),
        sa.Column("enrollment_id", sa.String, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resume_at", sa.String, nullable=False),
        sa.Column("needs_profile", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_journey_timers_due", "journey_timers", ["due_at"])
    op.create_table(
        "frequency_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("profile_key", sa.String, nullable=False),
        sa.Column("channel", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_key", sa.String, nullable=False),
        sa.UniqueConstraint("workspace", "send_key", name="uq_frequency_ledger_send"),
    )
    op.create_index(
        "ix_frequency_ledger_profile", "frequency_ledger", ["workspace", "profile_key", "sent_at"]
    )
    op.create_index(
        "ix_journey_timers_enrollment", "journey_timers", ["workspace", "enrollment_id"]
    )


def _steps_into_definition(table: str) -> None:
    """The old `steps` JSON is already the contract's JSON of the steps (enum values as
    numbers, which the contract's JSON accepts): wrap it with the trigger into a definition."""
    op.add_column(table, sa.Column("definition", sa.Text, nullable=False, server_default=""))
    rows = sa.table(
        table,
        sa.column("id", sa.Integer),
        sa.column("trigger_event", sa.String),
        sa.column("steps", sa.Text),
        sa.column("definition", sa.Text),
    )
    connection = op.get_bind()
    for row_id, trigger_event, steps in connection.execute(
        sa.select(rows.c.id, rows.c.trigger_event, rows.c.steps)
    ).all():
        definition = {"trigger": {"event": {"event": trigger_event}}, "steps": json.loads(steps)}
        connection.execute(
            rows.update().where(rows.c.id == row_id).values(definition=json.dumps(definition))
        )
    with op.batch_alter_table(table) as batch:
        batch.drop_column("steps")
        if table == "journey_versions":
            batch.drop_column("trigger_event")


def downgrade() -> None:
    raise NotImplementedError("journeys as graphs cannot be turned back into lists of steps")
