"""The segments store on a real database (SQLite, and PostgreSQL when configured), without
processes: batches applied in one transaction each, merges, counters, erasure.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from engage.outbox import OutboxMessage
from engage.v1 import bus_pb2, common_pb2
from services.segments.events import BatchApplier
from services.segments.models import EventCounter, Identity, ProfileEvent
from services.segments.profiles import ProfileStore
from tests.harness import Databases

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY


@pytest.fixture
async def sessions(databases: Databases) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = await asyncio.to_thread(databases.url, "segments")
    engine = db.create_engine(url)
    await db.migrate(engine, Path(services.segments.__file__).parent / "migrations")
    yield db.session_factory(engine)
    await engine.dispose()


def event(
    message_id: str,
    kind: "common_pb2.EventType" = TRACK,
    *,
    user_id: str = "",
    anonymous_id: str = "",
    name: str = "viewed",
    minutes: int = 0,
    traits: dict[str, str] | None = None,
) -> common_pb2.Event:
    made = common_pb2.Event(
        message_id=message_id, type=kind, event=name, user_id=user_id, anonymous_id=anonymous_id
    )
    made.timestamp.FromDatetime(T0 + timedelta(minutes=minutes))
    if traits:
        made.traits.update(traits)
    return made


async def apply(sessions: async_sessionmaker[AsyncSession], *events: common_pb2.Event) -> int:
    async with db.transaction(sessions) as session:
        batch = bus_pb2.EventBatch(id="b", workspace=WORKSPACE, events=list(events))
        return await BatchApplier(session, WORKSPACE).apply(batch)


async def test_merge_inside_one_batch_sums_counters_and_moves_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    applied = await apply(
        sessions,
        event("e1", anonymous_id="anon", minutes=1),
        event("e2", user_id="user", minutes=2),
        event("e1", anonymous_id="anon", minutes=1),
        event("e3", IDENTIFY, user_id="user", anonymous_id="anon", minutes=3, traits={"k": "v"}),
        event("e4", anonymous_id="anon", minutes=4),
    )
    assert applied == 4
    async with db.transaction(sessions) as session:
        store = ProfileStore(session, WORKSPACE)
        profile = await store.by_identity("anonymous_id", "anon")
        assert (await store.by_identity("user_id", "user")).id == profile.id
        [proto] = await store.to_protos([profile])
        assert proto.event_stats["viewed"].count == 3
        assert proto.first_seen_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=1)
        assert proto.last_seen_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=4)
        assert [e.message_id for e in await store.events(profile.id)] == ["e1", "e2", "e3", "e4"]
        page, _ = await store.page(10, "")
        assert [p.id for p in page] == [profile.id]


async def test_merge_across_batches_folds_counters_of_both_profiles(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", anonymous_id="anon"), event("e2", anonymous_id="anon"))
    await apply(sessions, event("e3", user_id="user", minutes=5))
    await apply(sessions, event("e4", IDENTIFY, user_id="user", anonymous_id="anon"))
    assert await apply(sessions, event("e2", anonymous_id="anon")) == 0
    async with db.transaction(sessions) as session:
        counters = (await session.exec(select(EventCounter))).all()
        assert [(c.event_name, c.count) for c in counters] == [("viewed", 3)]
        assert len({c.profile_id for c in counters}) == 1
        owners = {row.profile_id for row in (await session.exec(select(ProfileEvent))).all()}
        assert owners == {counters[0].profile_id}
        kinds = [
            bus_pb2.ProfileChanged.FromString(row.payload).kind
            for row in (await session.exec(select(OutboxMessage))).all()
        ]
        assert bus_pb2.ProfileChanged.KIND_MERGED in kinds


async def test_anonymous_id_of_another_user_is_not_merged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="ann", anonymous_id="shared-device"))
    await apply(sessions, event("e2", user_id="bob", anonymous_id="shared-device"))
    async with db.transaction(sessions) as session:
        identities = (await session.exec(select(Identity))).all()
        owners = {(i.kind, i.value): i.profile_id for i in identities}
        assert owners[("user_id", "ann")] == owners[("anonymous_id", "shared-device")]
        assert owners[("user_id", "bob")] != owners[("user_id", "ann")]


async def test_erase_removes_every_row_of_the_profile(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="user", anonymous_id="anon"))
    await apply(sessions, event("e2", user_id="other"))
    async with db.transaction(sessions) as session:
        store = ProfileStore(session, WORKSPACE)
        await store.erase((await store.by_identity("user_id", "user")).id)
    async with db.transaction(sessions) as session:
        assert {i.value for i in (await session.exec(select(Identity))).all()} == {"other"}
        assert [e.message_id for e in (await session.exec(select(ProfileEvent))).all()] == ["e2"]
        assert len((await session.exec(select(EventCounter))).all()) == 1
