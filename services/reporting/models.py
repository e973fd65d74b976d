"""Reporting's facts: one row per bus event, unique by its id, so a redelivery counts once."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class DeliveryFact(SQLModel, table=True):
    __tablename__ = "delivery_facts"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "event_id", name="uq_delivery_facts_event"),
        sa.Index("ix_delivery_facts_journey", "workspace", "journey"),
        sa.Index("ix_delivery_facts_campaign", "workspace", "campaign"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    event_id: str
    # DeliveryEvent.Kind and Channel numbers.
    kind: int
    channel: int
    # Resource names; empty when the send was not of a journey (or campaign).
    journey: str
    journey_version: int
    step_id: str
    campaign: str
    idempotency_key: str
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class JourneyFact(SQLModel, table=True):
    __tablename__ = "journey_facts"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "event_id", name="uq_journey_facts_event"),
        sa.Index("ix_journey_facts_journey", "workspace", "journey"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    event_id: str
    # JourneyEvent.Kind number.
    kind: int
    journey: str
    journey_version: int
    enrollment_id: str
    step_id: str
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
