"""Journeys and segments together: entering (or leaving) a segment enrolls a profile, and a
branch sends each profile down the path of the segments it is in (or of a rule it meets), read
with the triggering event applied."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import (
    journey_pb2,
    journey_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from tests.harness import MARKETER_KEY, Suite, auth, eventually
from tests.journeys import (
    PARENT,
    a_journey,
    create,
    exit_step,
    identify_event,
    publish,
    send,
    steps_sent,
    track_event,
)
from tests.rules import from_yaml

GOLD = f"{PARENT}/segments/gold"


@pytest.fixture
async def stubs(
    bare_suite: Suite,
) -> AsyncIterator[tuple[journey_pb2_grpc.JourneyServiceStub, segment_pb2_grpc.SegmentServiceStub]]:
    await asyncio.to_thread(bare_suite.start, "segments")
    await asyncio.to_thread(bare_suite.start, "scheduler")
    async with (
        bare_suite.channel("scheduler") as scheduler,
        bare_suite.channel("segments") as segments,
    ):
        yield (
            journey_pb2_grpc.JourneyServiceStub(scheduler),
            segment_pb2_grpc.SegmentServiceStub(segments),
        )


@pytest.fixture
async def bus(bare_suite: Suite, stubs: object) -> AsyncIterator[Bus]:
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


async def gold_segment(segments: segment_pb2_grpc.SegmentServiceStub) -> None:
    await segments.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=PARENT,
            segment_id="gold",
            segment=segment_pb2.Segment(rule=to_proto(from_yaml("{trait: plan, equals: gold}"))),
        ),
        metadata=auth(MARKETER_KEY),
    )


async def test_entering_or_leaving_a_segment_enrolls_the_profile(
    bus: Bus,
    stubs: tuple[journey_pb2_grpc.JourneyServiceStub, segment_pb2_grpc.SegmentServiceStub],
) -> None:
    journeys, segments = stubs
    await gold_segment(segments)
    welcome = a_journey(steps=("welcome-gold",))
    welcome.trigger.CopyFrom(
        journey_pb2.JourneyTrigger(segment=journey_pb2.SegmentTrigger(segment=GOLD))
    )
    await create(journeys, "gold-welcome", welcome)
    farewell = a_journey(steps=("come-back",))
    farewell.trigger.segment.segment = GOLD
    farewell.trigger.segment.change = journey_pb2.SegmentTrigger.CHANGE_EXITED
    await create(journeys, "gold-farewell", farewell)

    await publish(bus, "ana", identify_event("ana", plan="gold"))
    await publish(bus, "bo", identify_event("bo", plan="free"))
    await eventually(partial(steps_sent, bus, "ana"))
    await publish(bus, "ana", identify_event("ana", plan="free"))
    await eventually(lambda: _has(bus, "ana", 2))
    assert await steps_sent(bus, "ana") == ["welcome-gold", "come-back"]
    assert await steps_sent(bus, "bo") == []


async def test_a_branch_reads_the_segments_with_the_trigger_applied(
    bus: Bus,
    stubs: tuple[journey_pb2_grpc.JourneyServiceStub, segment_pb2_grpc.SegmentServiceStub],
) -> None:
    journeys, segments = stubs
    await gold_segment(segments)
    branch = journey_pb2.JourneyStep(
        id="by-plan",
        branch=journey_pb2.BranchStep(
            paths=[journey_pb2.BranchPath(segment=GOLD, member=True, next="gold-offer")],
            otherwise="standard-offer",
        ),
    )
    steps = [branch, send("gold-offer", next="done"), send("standard-offer"), exit_step("done")]
    await create(journeys, "offers", a_journey(event="visited", graph=steps))

    # Each identify travels in the same batch as the trigger, just before it.
    await publish(bus, "ana", identify_event("ana", plan="gold"), track_event("ana", "visited"))
    await publish(bus, "bo", identify_event("bo", plan="free"), track_event("bo", "visited"))
    await eventually(partial(steps_sent, bus, "ana"), timeout=30)
    await eventually(partial(steps_sent, bus, "bo"), timeout=30)
    assert await steps_sent(bus, "ana") == ["gold-offer"]
    assert await steps_sent(bus, "bo") == ["standard-offer"]


async def test_a_branch_rule_reads_the_profile_with_the_trigger_applied_and_its_properties(
    bus: Bus,
    stubs: tuple[journey_pb2_grpc.JourneyServiceStub, segment_pb2_grpc.SegmentServiceStub],
) -> None:
    journeys, _ = stubs
    rule = """
    all:
      - {trait: plan, equals: gold}
      - {event: visited, where: [{property: page, equals: pricing}]}
    """
    branch = journey_pb2.JourneyStep(
        id="by-rule",
        branch=journey_pb2.BranchStep(
            paths=[journey_pb2.BranchPath(rule=to_proto(from_yaml(rule)), next="gold-pricing")],
            otherwise="standard-offer",
        ),
    )
    steps = [branch, send("gold-pricing", next="done"), send("standard-offer"), exit_step("done")]
    await create(journeys, "pricing", a_journey(event="visited", graph=steps))

    visits = {"ana": ("gold", "pricing"), "bo": ("gold", "home"), "cy": ("free", "pricing")}
    for user_id, (plan, page) in visits.items():
        visit = track_event(user_id, "visited")
        visit.properties.update({"page": page})
        # The identify travels in the same batch as the trigger, just before it.
        await publish(bus, user_id, identify_event(user_id, plan=plan), visit)
    for user_id in visits:
        await eventually(partial(steps_sent, bus, user_id), timeout=30)
    assert await steps_sent(bus, "ana") == ["gold-pricing"]
    assert await steps_sent(bus, "bo") == ["standard-offer"]
    assert await steps_sent(bus, "cy") == ["standard-offer"]


async def test_an_update_trait_step_changes_the_profile_and_its_segments(
    bus: Bus,
    stubs: tuple[journey_pb2_grpc.JourneyServiceStub, segment_pb2_grpc.SegmentServiceStub],
) -> None:
    journeys, segments = stubs
    await gold_segment(segments)
    upgrade = journey_pb2.JourneyStep(id="upgrade")
    upgrade.update_trait.trait = "plan"
    upgrade.update_trait.value.string_value = "gold"
    await create(journeys, "trial-upgrade", a_journey(event="trial_ended", graph=[upgrade]))
    welcome = a_journey(steps=("welcome-gold",))
    welcome.trigger.CopyFrom(
        journey_pb2.JourneyTrigger(segment=journey_pb2.SegmentTrigger(segment=GOLD))
    )
    await create(journeys, "gold-welcome", welcome)

    # Stamped as a client stamps them, a moment before the journey runs: the trait the journey
    # sets is the later one.
    events = [identify_event("ana", plan="trial"), track_event("ana", "trial_ended")]
    for event in events:
        event.timestamp.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
    await publish(bus, "ana", *events)

    # The trait set by the first journey puts ana in the segment that triggers the second.
    await eventually(partial(steps_sent, bus, "ana"), timeout=30)
    assert await steps_sent(bus, "ana") == ["welcome-gold"]


async def _has(bus: Bus, user_id: str, count: int) -> bool:
    return len(await steps_sent(bus, user_id)) >= count
