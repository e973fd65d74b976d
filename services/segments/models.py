"""Tables of the segments service: profiles, the identities that resolve to them, each
profile's event history, per-event-name counters and property sums, merges; segments, their
versions and memberships. Every row carries its workspace.
"""

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Field, SQLModel

from engage.db import table_of
from services.segments.rules import date_index, stable_bucket

# Rows per multi-row statement on these tables, well under SQLite's and PostgreSQL's limits on
# bound parameters.
CHUNK = 500
WHEN = sa.DateTime(timezone=True)


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
    first_seen: datetime | None = Field(default=None, sa_type=WHEN)
    last_seen: datetime | None = Field(default=None, sa_type=WHEN)
    time_zone: str = ""
    locale: str = ""
    created_at: datetime = Field(sa_type=WHEN)
    updated_at: datetime = Field(sa_type=WHEN)
    # Derived, for segment rules in SQL (set by the listeners below, never by hand): the traits
    # that are ISO-8601 dates as microseconds since the epoch (JSON object), because PostgreSQL
    # cannot parse an arbitrary string as a date without failing the query; and the profile's
    # 0..9999 bucket for percentage samples, because SQLite has no hash function.
    trait_dates: str = "{}"
    sample_bucket: int = 0


@event.listens_for(Profile, "before_insert")
def _derive_on_insert(_mapper: Any, _connection: Any, profile: Profile) -> None:
    profile.sample_bucket = stable_bucket(profile.id)
    profile.trait_dates = json.dumps(date_index(json.loads(profile.traits)), sort_keys=True)


@event.listens_for(Profile, "before_update")
def _derive_on_update(_mapper: Any, _connection: Any, profile: Profile) -> None:
    # Every writer of traits (events, merges, erasure) goes through the ORM, so this keeps the
    # index right without each of them knowing about it.
    if sa.inspect(profile).attrs.traits.history.has_changes():
        profile.trait_dates = json.dumps(date_index(json.loads(profile.traits)), sort_keys=True)


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
    timestamp: datetime = Field(sa_type=WHEN)
    # The serialised engage.v1.Event, returned by ExportProfile.
    payload: bytes
    # JSON object of the event's properties, for segment rules' `where` filters in SQL.
    properties: str = "{}"


class EventCounter(SQLModel, table=True):
    __tablename__ = "event_counters"

    workspace: str = Field(primary_key=True)
    profile_id: str = Field(primary_key=True)
    event_name: str = Field(primary_key=True)
    count: int
    first_time: datetime = Field(sa_type=WHEN)
    last_time: datetime = Field(sa_type=WHEN)


class PropertySum(SQLModel, table=True):
    """The running total of one numeric property of one event name (configured sums only)."""

    __tablename__ = "property_sums"

    workspace: str = Field(primary_key=True)
    profile_id: str = Field(primary_key=True)
    event_name: str = Field(primary_key=True)
    property: str = Field(primary_key=True)
    total: float


class ProfileMerge(SQLModel, table=True):
    """A profile merged into another by an identify or alias event; kept for export (GDPR)."""

    __tablename__ = "profile_merges"

    workspace: str = Field(primary_key=True)
    # A merged profile is deleted, so it is merged once.
    merged_profile_id: str = Field(primary_key=True)
    into_profile_id: str
    # "identify" or "alias".
    reason: str
    message_id: str
    merged_at: datetime = Field(sa_type=WHEN)


class Segment(SQLModel, table=True):
    __tablename__ = "segments"

    workspace: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    display_name: str = ""
    description: str = ""
    version: int
    # The serialised engage.v1.Rule of the current version.
    rule: bytes
    time_dependent: bool = False
    create_time: datetime = Field(sa_type=WHEN)
    update_time: datetime = Field(sa_type=WHEN)


class SegmentVersion(SQLModel, table=True):
    """Every saved version of a segment, kept so a journey can say which one a profile met."""

    __tablename__ = "segment_versions"

    workspace: str = Field(primary_key=True)
    segment_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    display_name: str = ""
    description: str = ""
    rule: bytes
    create_time: datetime = Field(sa_type=WHEN)


class SegmentMembership(SQLModel, table=True):
    __tablename__ = "segment_memberships"

    workspace: str = Field(primary_key=True)
    segment_id: str = Field(primary_key=True)
    profile_id: str = Field(primary_key=True)
    entered_at: datetime = Field(sa_type=WHEN)


class MembershipChange(SQLModel, table=True):
    """Staging of one batch evaluation, emptied before its transaction commits."""

    __tablename__ = "segment_membership_changes"

    workspace: str = Field(primary_key=True)
    segment_id: str = Field(primary_key=True)
    profile_id: str = Field(primary_key=True)
    change: int
    entered_at: datetime = Field(sa_type=WHEN)


# The bare tables of the bulk paths (Core statements, which carry their workspace themselves).
PROFILES = table_of(Profile)
EVENTS = table_of(ProfileEvent)
MEMBERSHIPS = table_of(SegmentMembership)
CHANGES = table_of(MembershipChange)
SEGMENTS = table_of(Segment)
