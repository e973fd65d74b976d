"""Time-based rules flip by themselves in the running segments process: a profile enters a
segment when its moment comes and leaves when it passes, with no new event and no one calling
the sweeper, announced as membership events on the bus."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from engage import subjects
from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import bus_pb2, common_pb2, segment_pb2, segment_pb2_grpc
from tests.harness import MARKETER_KEY, MembershipFeed, Suite, auth
from tests.rules import from_yaml

WORKSPACE = "acme"
Change = bus_pb2.MembershipChanged


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    # A short sweep interval stands in for the default 30 s; nothing else is sped up.
    bare_suite.env["ENGAGE_TIMED_SWEEP_SECONDS"] = "0.5"
    await asyncio.to_thread(bare_suite.start, "segments")
    connection = await Bus.open(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


async def test_a_profile_enters_when_its_time_comes_and_leaves_when_it_passes(
    bare_suite: Suite, bus: Bus
) -> None:
    channel = bare_suite.channel("segments")
    segments = segment_pb2_grpc.SegmentServiceStub(channel)
    watch = await MembershipFeed.watch(bus, WORKSPACE)
    # "Its trial started within the last 3 seconds": true from `trial_at` for 3 seconds.
    rule = from_yaml("{trait: trial_at, between: [{ago: 3s}, now]}")
    made = await segments.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{WORKSPACE}",
            segment_id="new-trials",
            segment=segment_pb2.Segment(rule=to_proto(rule)),
        ),
        metadata=auth(MARKETER_KEY),
    )
    trial_at = datetime.now(UTC) + timedelta(seconds=2)
    event = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id="ana"
    )
    event.timestamp.FromDatetime(datetime.now(UTC))
    # A .NET client's 7-digit fraction: still a date to the rule.
    event.traits.update({"trial_at": trial_at.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")})
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
    await bus.publish(
        subjects.events(WORKSPACE, "ana", 8), batch, f"{WORKSPACE}:{batch.id}", WORKSPACE
    )

    entered = await watch.next(timeout=20)
    assert (entered.segment, entered.user_id, entered.change) == (
        made.name,
        "ana",
        Change.CHANGE_ENTERED,
    )
    # Not on the identify itself: when the trial's moment had come.
    assert entered.occurred_at.ToDatetime(tzinfo=UTC) >= trial_at
    exited = await watch.next(timeout=20)
    assert (exited.segment, exited.user_id, exited.change) == (
        made.name,
        "ana",
        Change.CHANGE_EXITED,
    )
    assert exited.occurred_at.ToDatetime(tzinfo=UTC) > trial_at + timedelta(seconds=3)
    check = await segments.CheckMembership(
        segment_pb2.CheckMembershipRequest(segment=made.name, profile=exited.profile),
        metadata=auth(MARKETER_KEY),
    )
    assert not check.member
    await channel.close()
