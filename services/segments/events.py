"""Applying one bus message (an EventBatch) to profiles, in the caller's transaction.

Each event applies once, keyed by (workspace, message id) in `profile_events`. The batch's
identities are loaded in one query; only unknown ids create profiles. Counters are written with
one bulk upsert per batch, profiles once per touched profile.
"""

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from google.protobuf import json_format
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import outbox
from engage.db import in_workspace
from engage.resources import name_of
from engage.v1 import bus_pb2, common_pb2
from services.segments.models import EventCounter, Identity, Profile, ProfileEvent
from services.segments.traits import LOCALE_KEY, TIME_ZONE_KEY, TraitState, as_utc

log = logging.getLogger(__name__)

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
# Rows per multi-row INSERT, well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500

Insert = postgresql.Insert | sqlite.Insert


def table_of(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def upsert_into(session: AsyncSession, model: type[Any]) -> Insert:
    """An INSERT with ON CONFLICT support in the session's dialect."""
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def profiles_subject(workspace: str) -> str:
    return f"engage.profiles.{workspace}"


def announce(
    session: AsyncSession,
    workspace: str,
    kind: "bus_pb2.ProfileChanged.Kind",
    profile: Profile,
    changed_traits: dict[str, Any] | None = None,
) -> None:
    """Put a ProfileChanged in the transaction's outbox."""
    change = bus_pb2.ProfileChanged(
        id=uuid.uuid4().hex,
        workspace=workspace,
        kind=kind,
        profile=name_of("profiles", profile.id, workspace),
        user_id=profile.user_id or "",
    )
    change.occurred_at.FromDatetime(datetime.now(UTC))
    if changed_traits:
        change.changed_traits.update(changed_traits)
    outbox.enqueue(session, profiles_subject(workspace), change, change.id, workspace)


def event_time(event: common_pb2.Event, fallback: datetime) -> datetime:
    """When the event happened: the client's timestamp, else when ingest received it."""
    if event.HasField("timestamp"):
        return event.timestamp.ToDatetime(tzinfo=UTC)
    if event.HasField("received_at"):
        return event.received_at.ToDatetime(tzinfo=UTC)
    return fallback


async def upsert_counters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add counts to (workspace, profile, event name) counters, widening their time span."""
    table = table_of(EventCounter)
    for start in range(0, len(rows), CHUNK):
        insert = upsert_into(session, EventCounter).values(list(rows[start : start + CHUNK]))
        new = insert.excluded
        await session.exec(
            insert.on_conflict_do_update(
                index_elements=["workspace", "profile_id", "event_name"],
                set_={
                    "count": table.c["count"] + new["count"],
                    "first_time": sa.case(
                        (new["first_time"] < table.c["first_time"], new["first_time"]),
                        else_=table.c["first_time"],
                    ),
                    "last_time": sa.case(
                        (new["last_time"] > table.c["last_time"], new["last_time"]),
                        else_=table.c["last_time"],
                    ),
                },
            )
        )


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


class BatchApplier:
    """Applies one EventBatch of one workspace inside the session's transaction."""

    def __init__(
        self, session: AsyncSession, workspace: str, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.session = session
        self.workspace = workspace
        self.now = (clock or (lambda: datetime.now(UTC)))()
        self.identities: dict[tuple[str, str], str] = {}
        self.profiles: dict[str, Profile] = {}
        self.merged_into: dict[str, str] = {}
        self.created: set[str] = set()

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
        await self._load_identities(fresh)
        resolved = [(event, at, await self._resolve(event)) for event, at in fresh]
        applied = await self._record(
            [_Applied(event, at, self._final(profile_id)) for event, at, profile_id in resolved]
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
                        ProfileEvent.workspace == self.workspace,
                        col(ProfileEvent.message_id).in_(list(candidates)),
                    )
                )
            ).all()
        )
        return [pair for message_id, pair in candidates.items() if message_id not in seen]

    async def _load_identities(self, events: Sequence[tuple[common_pb2.Event, datetime]]) -> None:
        user_ids = {e.user_id for e, _ in events if e.user_id}
        anonymous_ids = {e.anonymous_id for e, _ in events if e.anonymous_id}
        rows = (
            await self.session.exec(
                in_workspace(Identity, self.workspace).where(
                    sa.or_(
                        sa.and_(col(Identity.kind) == USER_ID, col(Identity.value).in_(user_ids)),
                        sa.and_(
                            col(Identity.kind) == ANONYMOUS_ID,
                            col(Identity.value).in_(anonymous_ids),
                        ),
                    )
                )
            )
        ).all()
        self.identities = {(row.kind, row.value): row.profile_id for row in rows}
        profile_ids = set(self.identities.values())
        if profile_ids:
            found = await self.session.exec(
                in_workspace(Profile, self.workspace)
                .where(col(Profile.id).in_(profile_ids))
                .with_for_update()
            )
            self.profiles = {profile.id: profile for profile in found.all()}

    async def _resolve(self, event: common_pb2.Event) -> str:
        """The profile an event belongs to; links new ids and merges as the event shows."""
        user_id, anonymous_id = event.user_id, event.anonymous_id
        by_user = self.identities.get((USER_ID, user_id)) if user_id else None
        by_anonymous = self.identities.get((ANONYMOUS_ID, anonymous_id)) if anonymous_id else None
        if not user_id:
            return by_anonymous or self._create(anonymous_id=anonymous_id)
        if by_user is None:
            if by_anonymous is not None and self.profiles[by_anonymous].user_id is None:
                self._link(USER_ID, user_id, by_anonymous)
                self.profiles[by_anonymous].user_id = user_id
                return by_anonymous
            linked_anonymous = anonymous_id if by_anonymous is None else ""
            return self._create(user_id=user_id, anonymous_id=linked_anonymous)
        if anonymous_id and by_anonymous is None:
            self._link(ANONYMOUS_ID, anonymous_id, by_user)
        elif (
            by_anonymous is not None
            and by_anonymous != by_user
            and self.profiles[by_anonymous].user_id is None
        ):
            await self._merge(by_anonymous, by_user)
        # An anonymous id already under another known user stays there: a shared device.
        return by_user

    def _create(self, user_id: str = "", anonymous_id: str = "") -> str:
        profile = Profile(
            id=uuid.uuid4().hex,
            workspace=self.workspace,
            user_id=user_id or None,
            created_at=self.now,
            updated_at=self.now,
        )
        self.session.add(profile)
        self.profiles[profile.id] = profile
        self.created.add(profile.id)
        if user_id:
            self._link(USER_ID, user_id, profile.id)
        if anonymous_id:
            self._link(ANONYMOUS_ID, anonymous_id, profile.id)
        return profile.id

    def _link(self, kind: str, value: str, profile_id: str) -> None:
        self.session.add(
            Identity(workspace=self.workspace, kind=kind, value=value, profile_id=profile_id)
        )
        self.identities[(kind, value)] = profile_id

    async def _merge(self, source_id: str, target_id: str) -> None:
        """Move an anonymous-only profile's identities, history and counters under another."""
        await self.session.flush()
        ws = self.workspace
        for model in (Identity, ProfileEvent):
            await self.session.exec(
                update(model)
                .where(col(model.workspace) == ws, col(model.profile_id) == source_id)
                .values(profile_id=target_id)
            )
        counters = (
            await self.session.exec(
                in_workspace(EventCounter, ws).where(EventCounter.profile_id == source_id)
            )
        ).all()
        if counters:
            await self.session.exec(
                delete(EventCounter).where(
                    col(EventCounter.workspace) == ws, col(EventCounter.profile_id) == source_id
                )
            )
            await upsert_counters(
                self.session,
                [{**c.model_dump(), "profile_id": target_id} for c in counters],
            )
        source, target = self.profiles.pop(source_id), self.profiles[target_id]
        _fold_profile(source, into=target)
        await self.session.delete(source)
        for key, profile_id in self.identities.items():
            if profile_id == source_id:
                self.identities[key] = target_id
        self.merged_into[source_id] = target_id
        self.created.discard(source_id)
        announce(self.session, ws, bus_pb2.ProfileChanged.KIND_MERGED, target)
        log.info("profiles merged", extra={"workspace": ws, "profile": target_id})

    def _final(self, profile_id: str) -> str:
        while profile_id in self.merged_into:
            profile_id = self.merged_into[profile_id]
        return profile_id

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
        counters: dict[tuple[str, str], dict[str, Any]] = {}
        for item in applied:
            profile = self.profiles[item.profile_id]
            if item.profile_id not in touched:
                touched[item.profile_id] = _Touched(
                    TraitState.load(profile.traits, profile.trait_times),
                    created=item.profile_id in self.created,
                )
            _apply_event(profile, touched[item.profile_id], item)
            if item.event.type == common_pb2.EVENT_TYPE_TRACK and item.event.event:
                key = (item.profile_id, item.event.event)
                counter = counters.setdefault(
                    key,
                    {
                        "workspace": self.workspace,
                        "profile_id": item.profile_id,
                        "event_name": item.event.event,
                        "count": 0,
                        "first_time": item.at,
                        "last_time": item.at,
                    },
                )
                counter["count"] += 1
                counter["first_time"] = min(counter["first_time"], item.at)
                counter["last_time"] = max(counter["last_time"], item.at)
        for profile_id, change in touched.items():
            profile = self.profiles[profile_id]
            profile.traits = json.dumps(change.state.values, sort_keys=True)
            profile.trait_times = change.state.dump_times()
            email = change.state.values.get("email")
            profile.email = email if isinstance(email, str) else None
            profile.updated_at = self.now
            self.session.add(profile)
            if change.created:
                announce(
                    self.session,
                    self.workspace,
                    bus_pb2.ProfileChanged.KIND_CREATED,
                    profile,
                    change.state.values,
                )
            elif change.changed:
                announce(
                    self.session,
                    self.workspace,
                    bus_pb2.ProfileChanged.KIND_UPDATED,
                    profile,
                    change.changed,
                )
        if counters:
            await upsert_counters(self.session, list(counters.values()))


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


def _fold_profile(source: Profile, into: Profile) -> None:
    """A merge's effect on the surviving profile row."""
    traits = TraitState.load(into.traits, into.trait_times)
    traits.merge(TraitState.load(source.traits, source.trait_times))
    into.traits = json.dumps(traits.values, sort_keys=True)
    into.trait_times = traits.dump_times()
    email = traits.values.get("email")
    into.email = email if isinstance(email, str) else None
    seen_first = [as_utc(t) for t in (into.first_seen, source.first_seen) if t is not None]
    seen_last = [as_utc(t) for t in (into.last_seen, source.last_seen) if t is not None]
    into.first_seen = min(seen_first, default=None)
    into.last_seen = max(seen_last, default=None)
    into.time_zone = into.time_zone or source.time_zone
    into.locale = into.locale or source.locale
