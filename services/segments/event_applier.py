"""Applying the events of one bus message (an EventBatch) to profiles, in the caller's
transaction.

Each event applies once, keyed by (workspace, message id) in `profile_events`. The batch's
identities are loaded in one query (identity.py resolves and merges); only unknown ids create
profiles. Counters and configured property sums are written with one bulk upsert each per batch,
profiles once per touched profile.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.clock import Clock, as_utc, utc_now
from engage.db import upsert_into
from engage.v1 import bus_pb2, common_pb2
from services.segments.aggregates import upsert_counters, upsert_sums
from services.segments.identity import IdentityResolver
from services.segments.models import CHUNK, Profile, ProfileEvent
from services.segments.profile_changes import announce
from services.segments.traits import (
    LOCALE_KEY,
    TIME_ZONE_KEY,
    SummedProperties,
    TraitState,
    summed_amounts,
)

log = logging.getLogger(__name__)


def event_time(event: common_pb2.Event, fallback: datetime) -> datetime:
    """When the event happened: the client's timestamp, else when ingest received it."""
    if event.HasField("timestamp"):
        return event.timestamp.ToDatetime(tzinfo=UTC)
    if event.HasField("received_at"):
        return event.received_at.ToDatetime(tzinfo=UTC)
    return fallback


@dataclass
class _Applied:
    event: common_pb2.Event
    at: datetime
    profile_id: str


@dataclass
class _Touched:
    """What one batch did to one profile."""

    state: TraitState
    created: bool = False
    changed: dict[str, Any] = field(default_factory=dict)


class EventApplier:
    """Applies one EventBatch of one workspace inside the session's transaction."""

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

    async def apply(self, batch: bus_pb2.EventBatch) -> int:
        """Apply the batch's new events; returns how many were new."""
        fallback = (
            as_utc(batch.occurred_at.ToDatetime(tzinfo=UTC))
            if batch.HasField("occurred_at")
            else self.now
        )
        fresh = await self._fresh([(e, event_time(e, fallback)) for e in batch.events])
        if not fresh:
            return 0
        await self.resolver.load(event for event, _ in fresh)
        resolved = [(event, at, await self.resolver.resolve(event)) for event, at in fresh]
        applied = await self._record(
            [_Applied(event, at, self.resolver.final(pid)) for event, at, pid in resolved]
        )
        await self._apply_effects(applied)
        return len(applied)

    async def _fresh(
        self, events: Iterable[tuple[common_pb2.Event, datetime]]
    ) -> list[tuple[common_pb2.Event, datetime]]:
        """Events with ids, not seen before (in this batch or the database)."""
        candidates: dict[str, tuple[common_pb2.Event, datetime]] = {}
        for event, at in events:
            if not event.message_id or not (event.user_id or event.anonymous_id):
                log.warning("event without message id or profile key skipped")
                continue
            candidates.setdefault(event.message_id, (event, at))
        if not candidates:
            return []
        seen = set(
            (
                await self.session.exec(
                    select(ProfileEvent.message_id).where(
                        col(ProfileEvent.message_id).in_(list(candidates))
                    )
                )
            ).all()
        )
        return [pair for message_id, pair in candidates.items() if message_id not in seen]

    async def _record(self, applied: list[_Applied]) -> list[_Applied]:
        """Insert the events into the history; only the ones inserted here take effect."""
        await self.session.flush()
        inserted: set[str] = set()
        for start in range(0, len(applied), CHUNK):
            rows = [
                {
                    "workspace": self.workspace,
                    "message_id": item.event.message_id,
                    "profile_id": item.profile_id,
                    "type": int(item.event.type),
                    "event": item.event.event,
                    "timestamp": item.at,
                    "payload": item.event.SerializeToString(),
                    "properties": _properties_json(item.event),
                }
                for item in applied[start : start + CHUNK]
            ]
            insert = upsert_into(self.session, ProfileEvent).values(rows)
            result = await self.session.exec(
                insert.on_conflict_do_nothing().returning(insert.table.c["message_id"])
            )
            inserted.update(result.scalars().all())
        return [item for item in applied if item.event.message_id in inserted]

    async def _apply_effects(self, applied: list[_Applied]) -> None:
        touched: dict[str, _Touched] = {}
        for item in applied:
            profile = self.resolver.profiles[item.profile_id]
            if item.profile_id not in touched:
                touched[item.profile_id] = _Touched(
                    TraitState.load(profile.traits, profile.trait_times),
                    created=item.profile_id in self.resolver.created,
                )
            _apply_event(profile, touched[item.profile_id], item)
        for profile_id, change in touched.items():
            self._save(self.resolver.profiles[profile_id], change)
        await self._add_to_aggregates(applied)

    def _save(self, profile: Profile, change: _Touched) -> None:
        """Write the profile row once per batch and announce what the batch changed."""
        profile.traits = json.dumps(change.state.values, sort_keys=True)
        profile.trait_times = change.state.dump_times()
        email = change.state.values.get("email")
        profile.email = email if isinstance(email, str) else None
        profile.updated_at = self.now
        self.session.add(profile)
        if change.created:
            kind, traits = bus_pb2.ProfileChanged.KIND_CREATED, change.state.values
        elif change.changed:
            kind, traits = bus_pb2.ProfileChanged.KIND_UPDATED, change.changed
        else:
            return
        announce(self.session, self.workspace, kind, profile, traits)

    async def _add_to_aggregates(self, applied: list[_Applied]) -> None:
        """Per-event-name counters and configured property sums: one bulk upsert each."""
        counters: dict[tuple[str, str], dict[str, Any]] = {}
        sums: dict[tuple[str, str, str], dict[str, Any]] = {}
        summed_events = {event_name for event_name, _ in self.summed}
        for item in applied:
            name = item.event.event
            if item.event.type != common_pb2.EVENT_TYPE_TRACK or not name:
                continue
            counter = counters.setdefault(
                (item.profile_id, name),
                {
                    "workspace": self.workspace,
                    "profile_id": item.profile_id,
                    "event_name": name,
                    "count": 0,
                    "first_time": item.at,
                    "last_time": item.at,
                },
            )
            counter["count"] += 1
            counter["first_time"] = min(counter["first_time"], item.at)
            counter["last_time"] = max(counter["last_time"], item.at)
            if name not in summed_events or not item.event.HasField("properties"):
                continue
            properties = json_format.MessageToDict(item.event.properties)
            for key, amount in summed_amounts(name, properties, self.summed).items():
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


def _properties_json(event: common_pb2.Event) -> str:
    """The event's properties for segment rules' `where` filters in SQL."""
    try:
        return json.dumps(json_format.MessageToDict(event.properties))
    except ValueError:  # NaN or infinity, which JSON cannot carry: the event counts, unfiltered
        log.warning("event properties with a non-finite number not indexed")
        return "{}"


def _apply_event(profile: Profile, change: _Touched, item: _Applied) -> None:
    """One event's effect on the profile row: seen times, traits, time zone, locale."""
    at, event = item.at, item.event
    profile.first_seen = at if profile.first_seen is None else min(as_utc(profile.first_seen), at)
    profile.last_seen = at if profile.last_seen is None else max(as_utc(profile.last_seen), at)
    traits = json_format.MessageToDict(event.traits) if event.HasField("traits") else {}
    context = json_format.MessageToDict(event.context) if event.HasField("context") else {}
    if event.type == common_pb2.EVENT_TYPE_IDENTIFY and traits:
        change.changed.update(change.state.apply(traits, at))
    time_zone = context.get("timezone") or traits.get("timezone")
    if isinstance(time_zone, str) and time_zone and change.state.claim(TIME_ZONE_KEY, at):
        profile.time_zone = time_zone
    locale = context.get("locale")
    if isinstance(locale, str) and locale and change.state.claim(LOCALE_KEY, at):
        profile.locale = locale
