"""Tables of the segments service: profiles, the identities that resolve to them, each
profile's event history, per-event-name counters and property sums, merges; segments, their
versions and memberships. Every row carries its workspace.
"""

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Field, SQLModel

from engage.dates import profile_zone, zone_named
from engage.db import INSTANT, table_of
from engage.rules import paths
from engage.rules.language import date_index, stable_bucket

# Rows per multi-row statement on these tables, well under SQLite's and PostgreSQL's limits on
# bound parameters.
CHUNK = 500
WHEN = INSTANT


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
    # The same dates on the customer's wall clock (micros since 1970-01-01T00:00 local), in the
    # profile's time zone, else the workspace's, else UTC: what calendar-day rules compare.
    trait_local_times: str = "{}"
    sample_bucket: int = 0


@dataclass
class ProfileRow:
    """A profile's row as plain values: applying events reads and writes thousands per
    transaction, which ORM objects would cost several times more than the statements."""

    id: str
    user_id: str | None = None
    email: str | None = None
    traits: str = "{}"
    trait_times: str = "{}"
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    time_zone: str = ""
    locale: str = ""
    trait_dates: str = "{}"
    trait_local_times: str = "{}"
    # Set when a merge changed the traits in memory: the derived date columns must follow.
    folded: bool = False

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "folded"]


class WorkspaceSettings(SQLModel, table=True):
    """Settings of one workspace; a workspace without a row has the defaults."""

    __tablename__ = "workspace_settings"

    workspace: str = Field(primary_key=True)
    # IANA name; dates of profiles without a valid zone of their own are read in it ("": UTC).
    time_zone: str = ""
    # The contract's JSON of the FrequencyCap list; the scheduler applies them.
    frequency_caps: str = "[]"
    global_control_percent: float = 0.0
    # The contract's JSON of QuietHours; empty: none.
    quiet_hours: str = ""
    # None only for the defaults of a workspace that never set any.
    update_time: datetime | None = Field(default=None, sa_type=WHEN)


def document_text(document: object) -> str:
    """How every JSON document of these tables is stored (traits, properties, date index):
    keys sorted, and characters as they are, not ASCII escapes, since SQLite's JSON paths
    compare a key with the text as stored and would miss `"\\u4f1a..."` for `会員ランク`."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def derived_date_columns(
    traits: dict[str, Any], time_zone: str, workspace_zone: str = ""
) -> dict[str, str]:
    """The date index columns of a profile with these traits and zones. Called by the listeners
    below, by the bulk writer of events (event_applier.py), which bypasses them, and when the
    workspace's zone changes."""
    found = {
        paths.parse(path): when
        for path, when in date_index(traits, profile_zone(time_zone, workspace_zone)).items()
    }
    # Shaped as the traits, so SQL reads a nested date with the path it reads the trait with.
    return {
        "trait_dates": document_text(paths.nest(found, lambda when: when.at)),
        "trait_local_times": document_text(paths.nest(found, lambda when: when.local)),
    }


def derived_trait_dates(traits: dict[str, Any], time_zone: str, workspace_zone: str = "") -> str:
    """Only `trait_dates` of `derived_date_columns` (until every caller writes both)."""
    return derived_date_columns(traits, time_zone, workspace_zone)["trait_dates"]


def _derive_dates(connection: sa.Connection, profile: Profile) -> None:
    traits = json.loads(profile.traits)
    workspace_zone = ""
    if traits and zone_named(profile.time_zone) is None:
        # Only a profile without a valid zone of its own reads the workspace's.
        workspace_zone = (
            connection.execute(
                sa.select(WORKSPACE_SETTINGS.c.time_zone).where(
                    WORKSPACE_SETTINGS.c.workspace == profile.workspace
                )
            ).scalar()
            or ""
        )
    columns = derived_date_columns(traits, profile.time_zone, workspace_zone)
    profile.trait_dates = columns["trait_dates"]
    profile.trait_local_times = columns["trait_local_times"]


@event.listens_for(Profile, "before_insert")
def _derive_on_insert(_mapper: Any, connection: sa.Connection, profile: Profile) -> None:
    profile.sample_bucket = stable_bucket(profile.id)
    _derive_dates(connection, profile)


@event.listens_for(Profile, "before_update")
def _derive_on_update(_mapper: Any, connection: sa.Connection, profile: Profile) -> None:
    # Merges and erasure write profiles through the ORM, so this keeps the index right without
    # each of them knowing about it; applying events writes in bulk and calls it itself.
    state = sa.inspect(profile).attrs
    if state.traits.history.has_changes() or state.time_zone.history.has_changes():
        _derive_dates(connection, profile)


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
    profile_id: str
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
WORKSPACE_SETTINGS = table_of(WorkspaceSettings)
