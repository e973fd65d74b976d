"""The segments store on a real database (SQLite, and PostgreSQL when configured), without
processes: batches applied in one transaction each, merges, counters, sums, erasure.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from engage.outbox import OutboxMessage
from engage.v1 import bus_pb2, common_pb2
from services.segments.event_applier import EventApplier
from services.segments.models import EventCounter, Identity, ProfileEvent, ProfileMerge
from services.segments.profiles import ProfileStore
from services.segments.traits import SummedProperties
from tests.harness import Databases

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
ALIAS = common_pb2.EVENT_TYPE_ALIAS


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
    previous_id: str = "",
    properties: dict[str, Any] | None = None,
) -> common_pb2.Event:
    made = common_pb2.Event(
        message_id=message_id,
        type=kind,
        event=name if kind == TRACK else "",
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
    )
    made.timestamp.FromDatetime(T0 + timedelta(minutes=minutes))
    if traits:
        made.traits.update(traits)
    if properties:
        made.properties.update(properties)
    return made


async def apply(
    sessions: async_sessionmaker[AsyncSession],
    *events: common_pb2.Event,
    summed: SummedProperties = frozenset(),
) -> int:
    async with db.transaction(sessions, WORKSPACE) as session:
        batch = bus_pb2.EventBatch(id="b", workspace=WORKSPACE, events=list(events))
        return await EventApplier(session, WORKSPACE, summed=summed).apply(batch)


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
    async with db.transaction(sessions, WORKSPACE) as session:
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
    async with db.transaction(sessions, WORKSPACE) as session:
        counters = (await session.exec(select(EventCounter))).all()
        assert [(c.event_name, c.count) for c in counters] == [("viewed", 3)]
        assert len({c.profile_id for c in counters}) == 1
        owners = {row.profile_id for row in (await session.exec(select(ProfileEvent))).all()}
        assert owners == {counters[0].profile_id}
        kinds = [
            change.kind
            for row in (await session.exec(select(OutboxMessage))).all()
            if row.subject.startswith("engage.profiles.")
            for change in bus_pb2.ProfileChanges.FromString(row.payload).changes
        ]
        assert bus_pb2.ProfileChanged.KIND_MERGED in kinds


async def test_anonymous_id_of_another_user_is_not_merged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="ann", anonymous_id="shared-device"))
    await apply(sessions, event("e2", user_id="bob", anonymous_id="shared-device"))
    async with db.transaction(sessions, WORKSPACE) as session:
        identities = (await session.exec(select(Identity))).all()
        owners = {(i.kind, i.value): i.profile_id for i in identities}
        assert owners[("user_id", "ann")] == owners[("anonymous_id", "shared-device")]
        assert owners[("user_id", "bob")] != owners[("user_id", "ann")]


async def test_erase_removes_every_row_of_the_profile(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="user", anonymous_id="anon"))
    await apply(sessions, event("e2", user_id="other"))
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        await store.erase((await store.by_identity("user_id", "user")).id)
    async with db.transaction(sessions, WORKSPACE) as session:
        assert {i.value for i in (await session.exec(select(Identity))).all()} == {"other"}
        assert [e.message_id for e in (await session.exec(select(ProfileEvent))).all()] == ["e2"]
        assert len((await session.exec(select(EventCounter))).all()) == 1


async def owners(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], str]:
    async with db.transaction(sessions, WORKSPACE) as session:
        return {(i.kind, i.value): i.profile_id for i in (await session.exec(select(Identity)))}


async def test_alias_merges_the_anonymous_profile_and_records_the_merge(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(
        sessions,
        event("e1", anonymous_id="anon", minutes=1),
        event("e2", IDENTIFY, anonymous_id="anon", minutes=5, traits={"plan": "free"}),
    )
    await apply(sessions, event("e3", IDENTIFY, user_id="user", minutes=2, traits={"plan": "pro"}))
    await apply(sessions, event("e4", ALIAS, user_id="user", previous_id="anon", minutes=9))
    # The same alias again, as a new message: nothing left to merge.
    await apply(sessions, event("e5", ALIAS, user_id="user", previous_id="anon", minutes=9))
    ids = await owners(sessions)
    assert ids[("anonymous_id", "anon")] == ids[("user_id", "user")]
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        profile = await store.by_identity("user_id", "user")
        [proto] = await store.to_protos([profile])
        assert proto.traits["plan"] == "free"  # set by the later event, on the anonymous side
        assert proto.first_seen_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=1)
        assert proto.event_stats["viewed"].count == 1
        assert [e.message_id for e in await store.events(profile.id)] == [
            "e1",
            "e3",
            "e2",
            "e4",
            "e5",
        ]
        [merge] = await store.merges(profile.id)
        assert (merge.into_profile_id, merge.reason, merge.message_id) == (
            profile.id,
            "alias",
            "e4",
        )


async def test_alias_before_the_anonymous_events_sends_them_to_the_user(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", ALIAS, user_id="user", previous_id="anon", minutes=5))
    await apply(sessions, event("e2", anonymous_id="anon", minutes=1))
    ids = await owners(sessions)
    assert ids[("anonymous_id", "anon")] == ids[("user_id", "user")]
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        profile = await store.by_identity("anonymous_id", "anon")
        assert profile.user_id == "user"
        assert await store.merges(profile.id) == []


async def test_alias_of_an_earlier_user_id_joins_two_users(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="old", anonymous_id="a1"))
    await apply(sessions, event("e2", user_id="new", minutes=1))
    await apply(sessions, event("e3", ALIAS, user_id="new", previous_id="old", minutes=2))
    ids = await owners(sessions)
    assert len(set(ids.values())) == 1
    async with db.transaction(sessions, WORKSPACE) as session:
        profile = await ProfileStore(session, WORKSPACE).by_identity("user_id", "old")
        assert profile.user_id == "new"


async def test_alias_of_another_users_anonymous_id_is_not_merged(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await apply(sessions, event("e1", user_id="ann", anonymous_id="shared"))
    await apply(sessions, event("e2", ALIAS, user_id="bob", previous_id="shared"))
    ids = await owners(sessions)
    assert ids[("anonymous_id", "shared")] == ids[("user_id", "ann")] != ids[("user_id", "bob")]


async def test_configured_property_sums_add_up_and_follow_merges(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    summed = frozenset({("order_completed", "revenue"), ("order_completed", "items")})

    def order(
        message_id: str, properties: dict[str, Any], user_id: str = "", anonymous_id: str = ""
    ) -> common_pb2.Event:
        return event(
            message_id,
            name="order_completed",
            properties=properties,
            user_id=user_id,
            anonymous_id=anonymous_id,
        )

    await apply(
        sessions,
        order("e1", {"revenue": 10.5, "items": 2}, anonymous_id="anon"),
        order("e2", {"revenue": "12", "items": True}, anonymous_id="anon"),
        summed=summed,
    )
    await apply(
        sessions,
        order("e3", {"revenue": 4, "tax": 1}, user_id="user"),
        order("e4", {"revenue": 100}, user_id="user", anonymous_id="anon"),
        # A redelivered order adds nothing.
        order("e1", {"revenue": 10.5, "items": 2}, anonymous_id="anon"),
        summed=summed,
    )
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        profile = await store.by_identity("user_id", "user")
        assert await store.property_sums(profile.id) == {
            "order_completed": {"revenue": 114.5, "items": 2.0}
        }


async def test_erase_after_merges_removes_the_merged_history_and_memberships(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    summed = frozenset({("viewed", "seconds")})
    await apply(sessions, event("e1", anonymous_id="a1", properties={"seconds": 3}), summed=summed)
    await apply(sessions, event("e2", anonymous_id="a2"))
    await apply(sessions, event("e3", IDENTIFY, user_id="user", anonymous_id="a1"))
    await apply(sessions, event("e4", user_id="other"))
    await apply(sessions, event("e5", ALIAS, user_id="user", previous_id="a2"))
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        profile = await store.by_identity("user_id", "user")
        assert [m.reason for m in await store.merges(profile.id)] == ["alias"]
        connection = await session.connection()
        await connection.execute(
            sa.text(
                "INSERT INTO segment_memberships (workspace, segment_id, profile_id, entered_at)"
                " VALUES (:w, 's1', :p, :t)"
            ).bindparams(w=WORKSPACE, p=profile.id, t=T0)
        )
    async with db.transaction(sessions, WORKSPACE) as session:
        store = ProfileStore(session, WORKSPACE)
        await store.erase((await store.by_identity("anonymous_id", "a2")).id)
    async with db.transaction(sessions, WORKSPACE) as session:
        assert {i.value for i in (await session.exec(select(Identity))).all()} == {"other"}
        assert [e.message_id for e in (await session.exec(select(ProfileEvent))).all()] == ["e4"]
        assert (await session.exec(select(ProfileMerge))).all() == []
        connection = await session.connection()
        for table in ("property_sums", "segment_memberships"):
            count = await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))
            assert count.scalar_one() == 0, table
