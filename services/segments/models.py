"""Tables of the segments service: profiles, the identities that resolve to them, each
profile's event history and per-event-name counters. Every row carries its workspace.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Profile(SQLModel, table=True):
    __tablename__ = "profiles"

    id: str = Field(primary_key=True)
    workspace: str = Field(index=True)
    user_id: str | None = None
    # Denormalised from traits.email so that GetProfile by email is an indexed lookup.
    email: str | None = None
    # JSON object of merged traits.
    traits: str = "{}"
    # JSON object: trait key -> ISO time of the event that last set it (latest event wins).
    trait_times: str = "{}"
    first_seen: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    last_seen: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    time_zone: str = ""
    locale: str = ""
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class Identity(SQLModel, table=True):
    """One user id or anonymous id, and the profile it belongs to."""

    __tablename__ = "identities"

    workspace: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    value: str = Field(primary_key=True)
    profile_id: str = Field(index=True)


class ProfileEvent(SQLModel, table=True):
    """An event applied to a profile; its key makes every event apply once."""

    __tablename__ = "profile_events"

    workspace: str = Field(primary_key=True)
    message_id: str = Field(primary_key=True)
    profile_id: str = Field(index=True)
    type: int
    event: str = ""
    timestamp: datetime = Field(sa_type=sa.DateTime(timezone=True))
    # The serialised engage.v1.Event, returned by ExportProfile.
    payload: bytes


class EventCounter(SQLModel, table=True):
    __tablename__ = "event_counters"

    workspace: str = Field(primary_key=True)
    profile_id: str = Field(primary_key=True)
    event_name: str = Field(primary_key=True)
    count: int
    first_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
    last_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
