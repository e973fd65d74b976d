"""Delivery and journey facts.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_facts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("channel", sa.Integer, nullable=False),
        sa.Column("journey", sa.String, nullable=False),
        sa.Column("journey_version", sa.Integer, nullable=False),
        sa.Column("step_id", sa.String, nullable=False),
        sa.Column("campaign", sa.String, nullable=False),
        sa.Column("idempotency_key", sa.String, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "event_id", name="uq_delivery_facts_event"),
    )
    op.create_index("ix_delivery_facts_journey", "delivery_facts", ["workspace", "journey"])
    op.create_index("ix_delivery_facts_campaign", "delivery_facts", ["workspace", "campaign"])
    op.create_table(
        "journey_facts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("journey", sa.String, nullable=False),
        sa.Column("journey_version", sa.Integer, nullable=False),
        sa.Column("enrollment_id", sa.String, nullable=False),
        sa.Column("step_id", sa.String, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "event_id", name="uq_journey_facts_event"),
    )
    op.create_index("ix_journey_facts_journey", "journey_facts", ["workspace", "journey"])


def downgrade() -> None:
    op.drop_table("journey_facts")
    op.drop_table("delivery_facts")
