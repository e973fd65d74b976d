"""The scheduler's tables: journeys, every saved version of each, and enrollments."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class JourneyRow(SQLModel, table=True):
    """A journey's current definition (the latest version)."""

    __tablename__ = "journeys"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "journey_id", name="uq_journeys_workspace_journey"),
        sa.Index("ix_journeys_trigger", "workspace", "state", "trigger_event"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    # Changes when a journey is deleted and created again, so enrollments never collide.
    uid: str
    display_name: str
    state: int
    version: int
    trigger_event: str
    # JSON of the steps (see journeys.steps_to_json).
    steps: str
    create_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
    update_time: datetime = Field(sa_type=sa.DateTime(timezone=True))


class JourneyVersionRow(SQLModel, table=True):
    """One saved version of a journey; enrollments run the version they entered with."""

    __tablename__ = "journey_versions"
    __table_args__ = (
        sa.UniqueConstraint(
            "workspace", "journey_id", "version", name="uq_journey_versions_version"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    version: int
    trigger_event: str
    steps: str
    create_time: datetime = Field(sa_type=sa.DateTime(timezone=True))


class EnrollmentRow(SQLModel, table=True):
    """A profile in a journey; one per profile and journey for now (entry once ever)."""

    __tablename__ = "journey_enrollments"
    __table_args__ = (
        sa.UniqueConstraint(
            "workspace", "journey_id", "profile_key", name="uq_journey_enrollments_profile"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    profile_key: str
    enrollment_id: str
    journey_version: int
    user_id: str
    anonymous_id: str
    enrolled_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
