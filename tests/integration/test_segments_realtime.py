"""Segment membership as profiles change, on real parts: a database (SQLite, and PostgreSQL
when configured), a nats-server, and the segments service, in-process with an injected clock
(the consumer and the time sweeper) or as its own process (the one-second promise).
"""

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import services.segments
from engage import db, subjects
from engage.bus import Bus
from engage.outbox import OutboxRelay
from engage.principal import Principal, current_principal
from engage.rules.proto import to_proto
from engage.v1 import bus_pb2, common_pb2, segment_pb2, segment_pb2_grpc
from engage_cli.processes import NatsServer
from services.segments.consumers import EventsConsumer
from services.segments.models import MEMBERSHIPS, PROFILES
from services.segments.profiles import ProfileStore
from services.segments.segment_store import SegmentStore
from services.segments.segments_api import SegmentApi
from services.segments.timed import TimedSweeper
from tests.harness import MARKETER_KEY, Databases, MembershipFeed, Suite, auth, eventually
from tests.rules import from_yaml

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
Change = bus_pb2.MembershipChanged
PRESCRIBED = """
all:
  - {trait: drug_type, equals: pill}
  - {event: prescription_confirmed, within: 18d}
  - not: {event: payment_received}
"""
OVERDUE = "{trait: prescribed_at, before: {ago: 18d}}"


def event(
    kind: "common_pb2.EventType",
    user_id: str,
    at: datetime,
    name: str = "",
    traits: dict[str, Any] | None = None,
) -> common_pb2.Event:
    made = common_pb2.Event(message_id=uuid.uuid4().hex, type=kind, event=name, user_id=user_id)
    made.timestamp.FromDatetime(at)
    if traits:
        made.traits.update(traits)
    return made


async def publish(bus: Bus, *events: common_pb2.Event) -> None:
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=list(events))
    subject = subjects.events(WORKSPACE, events[0].user_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)


def segment(segment_id: str, rule_yaml: str) -> segment_pb2.CreateSegmentRequest:
    return segment_pb2.CreateSegmentRequest(
        parent=f"workspaces/{WORKSPACE}",
        segment_id=segment_id,
        segment=segment_pb2.Segment(display_name=segment_id, rule=to_proto(from_yaml(rule_yaml))),
    )


@dataclass
class Service:
    """The segments service's parts, in this process, on a clock the test moves."""

    bus: Bus
    api: SegmentApi
    sweeper: TimedSweeper
    store: Callable[[], Any]
    clock: list[datetime]


@pytest.fixture
async def service(databases: Databases, nats_server: NatsServer) -> AsyncIterator[Service]:
    url = await asyncio.to_thread(databases.url, "segments")
    engine, sessions = await db.open_database(
        url, Path(services.segments.__file__).parent / "migrations"
    )
    bus = await Bus.open(nats_server.url, "test")
    relay = OutboxRelay(sessions, bus)
    now = [T0]
    consumer = EventsConsumer(sessions, bus, relay.notify, clock=lambda: now[0])
    tasks = [
        asyncio.create_task(relay.run()),
        asyncio.create_task(consumer.consume(range(8))),
    ]
    current_principal.set(Principal(WORKSPACE, frozenset({"admin"})))
    try:
        yield Service(
            bus,
            SegmentApi(sessions, relay.notify, clock=lambda: now[0]),
            TimedSweeper(sessions, relay.notify, lambda: now[0]),
            lambda: db.transaction(sessions, WORKSPACE),
            now,
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        await engine.dispose()


async def is_member(service: Service, segment_id: str, profile: str) -> bool:
    async with service.store() as session:
        at = await SegmentStore(session, WORKSPACE).entered_at(segment_id, profile.split("/")[-1])
    return at is not None


async def test_time_passing_exits_and_enters_through_the_sweeper(service: Service) -> None:
    await service.api.CreateSegment(segment("awaiting-payment", PRESCRIBED), None)
    await service.api.CreateSegment(segment("payment-overdue", OVERDUE), None)
    changes = await MembershipFeed.watch(service.bus)
    traits = {"drug_type": "pill", "prescribed_at": T0.isoformat()}
    await publish(
        service.bus,
        event(IDENTIFY, "u1", T0, traits=traits),
        event(TRACK, "u1", T0, "prescription_confirmed"),
    )
    [(segment_id, profile, change)] = await changes.take(1)
    assert (segment_id, change) == ("awaiting-payment", Change.CHANGE_ENTERED)

    service.clock[0] = T0 + timedelta(days=17)
    assert await service.sweeper.sweep() == (0, 0)
    service.clock[0] = T0 + timedelta(days=18, seconds=1)
    assert await service.sweeper.sweep() == (1, 1)
    assert await changes.take(2) == [
        ("awaiting-payment", profile, Change.CHANGE_EXITED),
        ("payment-overdue", profile, Change.CHANGE_ENTERED),
    ]
    assert not await is_member(service, "awaiting-payment", profile)
    assert await is_member(service, "payment-overdue", profile)
    # A second sweep at the same time finds nothing left to change.
    assert await service.sweeper.sweep() == (0, 0)


async def test_payment_event_exits_in_real_time(service: Service) -> None:
    await service.api.CreateSegment(segment("awaiting-payment", PRESCRIBED), None)
    changes = await MembershipFeed.watch(service.bus)
    await publish(
        service.bus,
        event(IDENTIFY, "u2", T0, traits={"drug_type": "pill"}),
        event(TRACK, "u2", T0, "prescription_confirmed"),
    )
    [entered] = await changes.take(1)
    await publish(service.bus, event(TRACK, "u2", T0 + timedelta(days=2), "payment_received"))
    [exited] = await changes.take(1)
    assert entered[2] == Change.CHANGE_ENTERED
    assert exited == (entered[0], entered[1], Change.CHANGE_EXITED)


async def test_in_segment_cascades_in_real_time(service: Service) -> None:
    await service.api.CreateSegment(segment("pro", "{trait: plan, equals: pro}"), None)
    await service.api.CreateSegment(
        segment("pro-in-tokyo", "all: [{in_segment: pro}, {trait: city, equals: Tokyo}]"), None
    )
    await service.api.CreateSegment(segment("not-pro", "not: {in_segment: pro}"), None)
    changes = await MembershipFeed.watch(service.bus)
    await publish(service.bus, event(IDENTIFY, "u3", T0, traits={"city": "Tokyo"}))
    [(_, profile, _)] = await changes.take(1)
    assert await is_member(service, "not-pro", profile)
    await publish(service.bus, event(IDENTIFY, "u3", T0, traits={"plan": "pro"}))
    assert await changes.take(3) == [
        ("not-pro", profile, Change.CHANGE_EXITED),
        ("pro", profile, Change.CHANGE_ENTERED),
        ("pro-in-tokyo", profile, Change.CHANGE_ENTERED),
    ]


async def test_new_profiles_enter_samples_on_any_first_event(service: Service) -> None:
    samples = {seed: f"{{sample: {{percent: 50, seed: {seed}}}}}" for seed in ("spring", "summer")}
    for seed, rule in samples.items():
        await service.api.CreateSegment(segment(seed, rule), None)
    users = [f"visitor-{n}" for n in range(20)]
    await publish(service.bus, *(event(TRACK, user, T0, "page_viewed") for user in users))

    async def counts(query: sa.Select[Any], expected: int) -> bool:
        async with service.store() as session:
            return int((await session.exec(query)).one()[0]) == expected

    profiles = sa.select(sa.func.count()).select_from(PROFILES)
    await eventually(lambda: counts(profiles, len(users)))
    for seed, rule in samples.items():
        # The rule in SQL over the 20 new profiles, as a marketer previews it.
        preview = segment_pb2.PreviewSegmentRequest(
            parent=f"workspaces/{WORKSPACE}", rule=to_proto(from_yaml(rule))
        )
        expected = (await service.api.PreviewSegment(preview, None)).member_count
        assert 0 < expected < len(users)
        members = sa.select(sa.func.count()).where(MEMBERSHIPS.c.segment_id == seed)
        await eventually(functools.partial(counts, members, expected))


async def test_erasing_a_profile_drops_its_memberships(service: Service) -> None:
    await service.api.CreateSegment(segment("pro", "{trait: plan, equals: pro}"), None)
    changes = await MembershipFeed.watch(service.bus)
    await publish(service.bus, event(IDENTIFY, "u4", T0, traits={"plan": "pro"}))
    [(_, profile, _)] = await changes.take(1)
    assert await is_member(service, "pro", profile)
    async with service.store() as session:
        await ProfileStore(session, WORKSPACE).erase(profile.split("/")[-1])
    assert not await is_member(service, "pro", profile)


# --- the service as its own process: from the event on the bus to the membership on the bus --


@pytest.fixture
async def segments(bare_suite: Suite) -> AsyncIterator[segment_pb2_grpc.SegmentServiceStub]:
    await asyncio.to_thread(bare_suite.start, "segments")
    channel = bare_suite.channel("segments")
    yield segment_pb2_grpc.SegmentServiceStub(channel)
    await channel.close()


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    connection = await Bus.open(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


async def test_track_enters_within_a_second_of_the_event(
    segments: segment_pb2_grpc.SegmentServiceStub, bus: Bus
) -> None:
    now = datetime.now(UTC)
    rule = "{event: searched, within: 1d, where: [{property: route, equals: NRT-HNL}]}"
    await segments.CreateSegment(segment("searched-hawaii", rule), metadata=auth(MARKETER_KEY))
    changes = await MembershipFeed.watch(bus)
    for attempt in range(3):
        searched = event(TRACK, f"u-{attempt}", now, "searched")
        searched.properties.update({"route": "NRT-HNL"})
        started = time.monotonic()
        await publish(bus, searched)
        change = await changes.next(timeout=5.0)
        elapsed = time.monotonic() - started
        assert change.change == Change.CHANGE_ENTERED
        assert change.user_id == f"u-{attempt}"
        assert change.segment == f"workspaces/{WORKSPACE}/segments/searched-hawaii"
        assert change.segment_version == 1
        assert elapsed < 1.0, f"membership announced {elapsed:.3f}s after the event"


async def test_identify_enters_then_exits(
    segments: segment_pb2_grpc.SegmentServiceStub, bus: Bus
) -> None:
    now = datetime.now(UTC)
    await segments.CreateSegment(
        segment("pro", "{trait: plan, equals: pro}"), metadata=auth(MARKETER_KEY)
    )
    changes = await MembershipFeed.watch(bus)
    await publish(bus, event(IDENTIFY, "u9", now, traits={"plan": "pro"}))
    entered = await changes.next()
    await publish(bus, event(IDENTIFY, "u9", now + timedelta(seconds=1), traits={"plan": "free"}))
    exited = await changes.next()
    assert (entered.change, exited.change) == (Change.CHANGE_ENTERED, Change.CHANGE_EXITED)
    assert entered.profile == exited.profile
    assert entered.id != exited.id
    check = segment_pb2.CheckMembershipRequest(segment=entered.segment, profile=entered.profile)
    answer = await eventually(
        lambda: _not_member(segments.CheckMembership(check, metadata=auth(MARKETER_KEY)))
    )
    assert not answer.member


async def _not_member(call: Any) -> Any:
    answer = await call
    return None if answer.member else answer
