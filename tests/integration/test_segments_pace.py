"""Segments keep up with ingest without giving up a guarantee: replicas share the EVENTS
partitions, each profile's events still apply in order, several bus messages go into one
transaction, and a message that cannot be read is parked alone while the rest apply."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db, subjects
from engage.bus import WORKSPACE_HEADER, Bus
from engage.outbox import OutboxRelay
from engage.principal import Principal, current_principal
from engage.rules.proto import to_proto
from engage.v1 import bus_pb2, common_pb2, segment_pb2
from engage_cli.processes import NatsServer
from services.segments.consumers import (
    EVENTS_DEAD_LETTERS,
    EventsConsumer,
    owned_partitions,
    partition_consumer,
)
from services.segments.models import MEMBERSHIPS, PROFILES
from services.segments.segments_api import SegmentApi
from tests.harness import Databases, dead_letters, eventually
from tests.rules import from_yaml

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PARTITIONS = 8
USERS = [f"user-{n}" for n in range(40)]
STEPS = 5
LAST_STEP = f"{{trait: plan, equals: step-{STEPS - 1}}}"


def identify(user_id: str, plan: str) -> common_pb2.Event:
    # Every event at the same time: ties go to the later arrival, so the stored plan is the
    # last one applied, and only an in-order apply ends on the last step.
    made = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
    )
    made.timestamp.FromDatetime(T0)
    made.traits.update({"plan": plan})
    return made


async def publish_one_per_message(bus: Bus, events: list[common_pb2.Event]) -> None:
    for event in events:
        batch = bus_pb2.EventBatch(id=event.message_id, workspace=WORKSPACE, events=[event])
        subject = subjects.events(WORKSPACE, event.user_id, PARTITIONS)
        await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)


@asynccontextmanager
async def replicas(
    sessions: async_sessionmaker[AsyncSession], nats_url: str, count: int
) -> AsyncIterator[None]:
    """`count` segments consumers, each on its own connection with its share of partitions."""
    buses = [await Bus.open(nats_url, f"replica-{i}") for i in range(count)]
    tasks = []
    for index, bus in enumerate(buses):
        relay = OutboxRelay(sessions, bus)
        consumer = EventsConsumer(sessions, bus, relay.notify, clock=lambda: T0)
        share = owned_partitions(PARTITIONS, index, count)
        tasks += [asyncio.create_task(consumer.consume(share)), asyncio.create_task(relay.run())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in buses:
            await bus.close()


async def plans(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with db.reading(sessions, WORKSPACE) as session:
        rows = await session.exec(
            select(PROFILES.c.user_id, PROFILES.c.traits).where(PROFILES.c.workspace == WORKSPACE)
        )
        return {user: traits for user, traits in rows.all()}


async def members(sessions: async_sessionmaker[AsyncSession], segment_id: str) -> int:
    async with db.reading(sessions, WORKSPACE) as session:
        query = select(sa.func.count()).where(
            MEMBERSHIPS.c.workspace == WORKSPACE, MEMBERSHIPS.c.segment_id == segment_id
        )
        return int((await session.exec(query)).one())


async def open_segments_database(
    databases: Databases,
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    url = await asyncio.to_thread(databases.url, "segments")
    return await db.open_database(url, Path(services.segments.__file__).parent / "migrations")


async def test_two_replicas_share_the_partitions_and_keep_each_profiles_order(
    databases: Databases, bus: Bus, nats_server: NatsServer
) -> None:
    engine, sessions = await open_segments_database(databases)
    current_principal.set(Principal(WORKSPACE, frozenset({"admin"})))
    api = SegmentApi(sessions, lambda: None, clock=lambda: T0)
    await api.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{WORKSPACE}",
            segment_id="last-step",
            segment=segment_pb2.Segment(rule=to_proto(from_yaml(LAST_STEP))),
        ),
        None,
    )
    events = [identify(user, f"step-{step}") for step in range(STEPS) for user in USERS]
    await publish_one_per_message(bus, events)
    try:
        async with replicas(sessions, nats_server.url, 2):

            async def all_applied() -> bool:
                found = await plans(sessions)
                return len(found) == len(USERS) and all(
                    f'"step-{STEPS - 1}"' in traits for traits in found.values()
                )

            await eventually(all_applied, timeout=30)
            assert await eventually(lambda: members(sessions, "last-step")) == len(USERS)
        # Each partition was read through its own durable, to the end, by its owner.
        used = {subjects.events(WORKSPACE, user, PARTITIONS).rsplit(".", 1)[1] for user in USERS}
        for partition in range(PARTITIONS):
            info = await bus.js.consumer_info("EVENTS", partition_consumer(partition).durable)
            assert info.num_pending == 0 and info.num_ack_pending == 0
            assert (info.delivered.stream_seq > 0) == (str(partition) in used)
    finally:
        await engine.dispose()


async def test_an_unreadable_message_among_many_is_parked_alone(
    databases: Databases, bus: Bus, nats_server: NatsServer
) -> None:
    engine, sessions = await open_segments_database(databases)
    good = [identify(user, "step-0") for user in USERS]
    # All waiting before the consumer starts, so they arrive in the same fetches.
    await publish_one_per_message(bus, good[:20])
    subject = subjects.events(WORKSPACE, USERS[0], PARTITIONS)
    await bus.publish_raw(subject, b"\xff not an event batch", {WORKSPACE_HEADER: WORKSPACE})
    await publish_one_per_message(bus, good[20:])
    try:
        async with replicas(sessions, nats_server.url, 1):
            await eventually(lambda: _count_is(sessions, len(USERS)), timeout=30)
            [parked] = await eventually(lambda: dead_letters(bus, EVENTS_DEAD_LETTERS))
        assert parked.data == b"\xff not an event batch"
        assert (parked.headers or {})["Engage-Consumer"] == EVENTS_DEAD_LETTERS
    finally:
        await engine.dispose()


async def _count_is(sessions: async_sessionmaker[AsyncSession], expected: int) -> bool:
    return len(await plans(sessions)) == expected
