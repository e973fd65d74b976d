"""Applying the events of bus messages (EventBatches) to profiles, in the caller's
transaction.

Each event applies once, keyed by (workspace, message id) in `profile_events`. The batches'
identities are loaded in one query (identity.py resolves and merges); only unknown ids create
profiles. The work is a few bulk statements per call, whatever the number of events: one
insert of the history, one update of the touched profiles, one upsert each of counters and
configured sums, one insert of ProfileChanges announcements into the outbox. Several bus
messages may be applied in one call (the consumer does, to keep up with ingest).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf import json_format
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.clock import Clock, as_utc, utc_now
from engage.db import as_arrays, is_postgresql, table_of, unnested, upsert_into
from engage.events import event_time
from engage.outbox import OutboxMessage
from engage.rules.language import TIME_ZONE_KEY
from engage.v1 import bus_pb2, common_pb2
from services.segments.aggregates import upsert_counters, upsert_sums
from services.segments.calendar import workspace_time_zone
from services.segments.identity import IdentityResolver
from services.segments.models import (
    CHUNK,
    EVENTS,
    PROFILES,
    ProfileEvent,
    ProfileRow,
    derived_date_columns,
    document_text,
)
from services.segments.profile_changes import outbox_rows, profile_change
from services.segments.traits import (
    LOCALE_KEY,
    SummedProperties,
    TraitState,
    summed_amounts,
)

# The derived columns `derived_date_columns` computes (see models.py).
DATE_COLUMNS = ("trait_dates", "trait_local_times")

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """An event that took effect in this call, and the profile it ended up on."""

    event: common_pb2.Event
    at: datetime
    profile_id: str
    # The event's properties as JSON values, read once for the history, sums and rules.
    properties: dict[str, Any]


@dataclass
class ProfileState:
    """A profile's row as one call leaves it, built in memory and written once."""

    profile: ProfileRow
    traits: TraitState
    first_seen: datetime | None
    last_seen: datetime | None
    time_zone: str
    locale: str
    created: bool = False
    # Trait keys whose value this call changed, with their new values.
    changed: dict[str, Any] = field(default_factory=dict)
    # The value as loaded (None: absent) of every trait key an event of this call set.
    before: dict[str, Any] = field(default_factory=dict)
    loaded_time_zone: str = ""

    @classmethod
    def of(cls, profile: ProfileRow, created: bool) -> "ProfileState":
        return cls(
            profile,
            TraitState.load(profile.traits, profile.trait_times),
            None if profile.first_seen is None else as_utc(profile.first_seen),
            None if profile.last_seen is None else as_utc(profile.last_seen),
            profile.time_zone,
            profile.locale,
            created,
            loaded_time_zone=profile.time_zone,
        )

    @property
    def zone_changed(self) -> bool:
        return self.time_zone != self.loaded_time_zone

    def traits_before(self) -> dict[str, Any]:
        """The traits as they were before this call's events."""
        merged = {**self.traits.values, **self.before}
        return {key: value for key, value in merged.items() if value is not None}


class EventApplier:
    """Applies EventBatches of one workspace inside the session's transaction."""

    def __init__(
        self,
        session: AsyncSession,
        workspace: str,
        clock: Clock = utc_now,
        summed: SummedProperties = frozenset(),
    ) -> None:
        self.session = session
        self.workspace = workspace
        self.now = clock()
        self.summed = summed
        self.resolver = IdentityResolver(session, workspace, self.now)
        # Dates of profiles without a zone of their own are read in it.
        self.workspace_zone = ""
        # What the last call did, for real-time re-evaluation in the same transaction.
        self.applied: list[Applied] = []
        self.states: dict[str, ProfileState] = {}

    async def apply(self, batch: bus_pb2.EventBatch) -> int:
        """Apply the batch's new events; returns how many were new."""
        return await self.apply_all([batch])

    async def apply_all(self, batches: Sequence[bus_pb2.EventBatch]) -> int:
        """Apply the new events of several batches, in order, as one; returns how many."""
        fresh = await self._fresh(
            [(event, event_time(event, fallback)) for batch in batches
             for fallback in [self._fallback(batch)] for event in batch.events]
        )  # fmt: skip
        if not fresh:
            return 0
        self.workspace_zone = await workspace_time_zone(self.session, self.workspace)
        await self.resolver.load(event for event, _ in fresh)
        resolved = [(event, at, await self.resolver.resolve(event)) for event, at in fresh]
        self.applied = await self._record(
            [
                Applied(event, at, self.resolver.final(pid), _properties(event))
                for event, at, pid in resolved
            ]
        )
        await self._apply_effects(self.applied)
        return len(self.applied)

    def _fallback(self, batch: bus_pb2.EventBatch) -> datetime:
        if batch.HasField("occurred_at"):
            return as_utc(batch.occurred_at.ToDatetime(tzinfo=UTC))
        return self.now

    async def _fresh(
        self, events: Sequence[tuple[common_pb2.Event, datetime]]
    ) -> list[tuple[common_pb2.Event, datetime]]:
        """Events with ids, not seen before (in these batches or the database)."""
        candidates: dict[str, tuple[common_pb2.Event, datetime]] = {}
        for event, at in events:
            if not event.message_id or not (event.user_id or event.anonymous_id):
                log.warning("event without message id or profile key skipped")
                continue
            candidates.setdefault(event.message_id, (event, at))
        ids = list(candidates)
        seen: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            rows = await self.session.exec(
                select(EVENTS.c.message_id).where(
                    EVENTS.c.workspace == self.workspace,
                    EVENTS.c.message_id.in_(ids[start : start + CHUNK]),
                )
            )
            seen.update(rows.all())
        return [pair for message_id, pair in candidates.items() if message_id not in seen]

    async def _record(self, applied: list[Applied]) -> list[Applied]:
        """Insert the events into the history; only the ones inserted here take effect (a
        concurrent delivery of the same message may have inserted some meanwhile)."""
        # New profiles and identities first: the history points at them.
        await self.resolver.flush()
        rows = [
            {
                "workspace": self.workspace,
                "message_id": item.event.message_id,
                "profile_id": item.profile_id,
                "type": int(item.event.type),
                "event": item.event.event,
                "timestamp": item.at,
                "payload": item.event.SerializeToString(),
                "properties": _properties_json(item.properties),
            }
            for item in applied
        ]
        insert = upsert_into(self.session, ProfileEvent).on_conflict_do_nothing()
        result = await self.session.exec(
            insert.returning(insert.table.c["message_id"]),
            params=rows,
        )
        inserted = set(result.scalars().all())
        return [item for item in applied if item.event.message_id in inserted]

    async def _apply_effects(self, applied: list[Applied]) -> None:
        states: dict[str, ProfileState] = {}
        for item in applied:
            state = states.get(item.profile_id)
            if state is None:
                profile = self.resolver.profiles[item.profile_id]
                state = ProfileState.of(profile, item.profile_id in self.resolver.created)
                states[item.profile_id] = state
            _apply_event(state, item)
        self.states = states
        await self._save(list(states.values()))
        await self._announce(list(states.values()))
        await self._add_to_aggregates(applied)

    async def _save(self, states: list[ProfileState]) -> None:
        """Write every touched profile row in one statement."""
        rows = [self._row(state) for state in states]
        written = [key for key in rows[0] if key != "pid"]
        if is_postgresql(self.session):
            columns = {"pid": PROFILES.c.id} | {key: PROFILES.c[key] for key in written}
            saved = unnested("saved", columns)
            update = (
                sa.update(PROFILES)
                .where(PROFILES.c.workspace == self.workspace, PROFILES.c.id == saved.c.pid)
                .values({key: saved.c[key] for key in written})
            )
            await self.session.exec(update, params=as_arrays(rows, columns))
            return
        update = (
            sa.update(PROFILES)
            .where(PROFILES.c.workspace == sa.bindparam("ws"), PROFILES.c.id == sa.bindparam("pid"))
            .values({key: sa.bindparam(key) for key in written})
        )
        await self.session.exec(update, params=[{**row, "ws": self.workspace} for row in rows])

    def _row(self, state: ProfileState) -> dict[str, Any]:
        profile, values = state.profile, state.traits.values
        traits, trait_times = profile.traits, profile.trait_times
        if state.traits.touched:
            traits, trait_times = document_text(values), state.traits.dump_times()
        dates = {column: getattr(profile, column) for column in DATE_COLUMNS}
        if traits != profile.traits or state.zone_changed or profile.folded:
            dates = derived_date_columns(values, state.time_zone, self.workspace_zone)
        email = values.get("email")
        return {
            "pid": profile.id,
            **dates,
            "user_id": profile.user_id,
            "traits": traits,
            "trait_times": trait_times,
            "email": email if isinstance(email, str) else None,
            "first_seen": state.first_seen,
            "last_seen": state.last_seen,
            "time_zone": state.time_zone,
            "locale": state.locale,
            "updated_at": self.now,
        }

    async def _announce(self, states: list[ProfileState]) -> None:
        """A change for each profile the call created or whose traits it changed."""
        changes = []
        for state in states:
            if state.created:
                kind, traits = bus_pb2.ProfileChanged.KIND_CREATED, state.traits.values
            elif state.changed:
                kind, traits = bus_pb2.ProfileChanged.KIND_UPDATED, state.changed
            else:
                continue
            changes.append(profile_change(self.workspace, kind, state.profile, traits))
        if changes:
            rows = outbox_rows(self.workspace, changes, self.now)
            await self.session.exec(sa.insert(table_of(OutboxMessage)), params=rows)

    async def _add_to_aggregates(self, applied: list[Applied]) -> None:
        """Per-event-name counters and configured property sums: one bulk upsert each."""
        counters: dict[tuple[str, str], dict[str, Any]] = {}
        sums: dict[tuple[str, str, str], dict[str, Any]] = {}
        summed_events = {event_name for event_name, _ in self.summed}
        for item in applied:
            name = item.event.event
            if item.event.type != common_pb2.EVENT_TYPE_TRACK or not name:
                continue
            counter = counters.get((item.profile_id, name))
            if counter is None:
                counters[(item.profile_id, name)] = {
                    "workspace": self.workspace,
                    "profile_id": item.profile_id,
                    "event_name": name,
                    "count": 1,
                    "first_time": item.at,
                    "last_time": item.at,
                }
            else:
                counter["count"] += 1
                counter["first_time"] = min(counter["first_time"], item.at)
                counter["last_time"] = max(counter["last_time"], item.at)
            if name not in summed_events or not item.properties:
                continue
            for key, amount in summed_amounts(name, item.properties, self.summed).items():
                total = sums.setdefault(
                    (item.profile_id, name, key),
                    {
                        "workspace": self.workspace,
                        "profile_id": item.profile_id,
                        "event_name": name,
                        "property": key,
                        "total": 0.0,
                    },
                )
                total["total"] += amount
        if counters:
            await upsert_counters(self.session, list(counters.values()))
        if sums:
            await upsert_sums(self.session, list(sums.values()))


def _properties(event: common_pb2.Event) -> dict[str, Any]:
    if not event.HasField("properties") or not event.properties.fields:
        return {}
    return json_format.MessageToDict(event.properties)


def _properties_json(properties: dict[str, Any]) -> str:
    """The event's properties for segment rules' `where` filters in SQL."""
    if not properties:
        return "{}"
    try:
        return document_text(properties)
    except ValueError:  # NaN or infinity, which JSON cannot carry: the event counts, unfiltered
        log.warning("event properties with a non-finite number not indexed")
        return "{}"


def _apply_event(state: ProfileState, item: Applied) -> None:
    """One event's effect on the profile: seen times, traits, time zone, locale."""
    at, event = item.at, item.event
    state.first_seen = at if state.first_seen is None else min(state.first_seen, at)
    state.last_seen = at if state.last_seen is None else max(state.last_seen, at)
    traits = json_format.MessageToDict(event.traits) if event.HasField("traits") else {}
    if event.type == common_pb2.EVENT_TYPE_IDENTIFY and traits:
        for key in traits.keys() - state.before.keys():
            state.before[key] = state.traits.values.get(key)
        state.changed.update(state.traits.apply(traits, at))
    time_zone = _context_text(event, "timezone") or traits.get("timezone")
    if isinstance(time_zone, str) and time_zone and state.traits.claim(TIME_ZONE_KEY, at):
        state.time_zone = time_zone
    locale = _context_text(event, "locale")
    if locale and state.traits.claim(LOCALE_KEY, at):
        state.locale = locale


def _context_text(event: common_pb2.Event, key: str) -> str:
    """A text field of the event's context ("" if absent or not a text), read in place: SDKs
    send large contexts (library, page, user agent) of which only this is needed."""
    if not event.HasField("context"):
        return ""
    value = event.context.fields.get(key)
    return value.string_value if value is not None else ""
