"""SimulateJourney over a whole audience, with segments and the scheduler running: who would
enter, the path and the moments each would take on their own calendar, and why a send would
be skipped, without anything sent."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import journey_pb2, journey_pb2_grpc, segment_pb2, segment_pb2_grpc
from services.scheduler.decisions import in_share
from tests.grpc_errors import violated_fields
from tests.harness import MARKETER_KEY, Suite, auth, eventually
from tests.journeys import (
    PARENT,
    a_journey,
    create,
    identify,
    journey_events,
    send,
    sends,
    start_scheduler,
)
from tests.rules import from_yaml

TOKYO = ZoneInfo("Asia/Tokyo")
Step = journey_pb2.SimulatedStep


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


def reminders(holdout: float) -> journey_pb2.Journey:
    """The day after `prescribed_at`, at 10:00 on the patient's calendar, a reminder."""
    day_after = journey_pb2.JourneyStep(id="day-after")
    day_after.wait.trait_date.trait = "prescribed_at"
    day_after.wait.trait_date.days = 1
    day_after.wait.trait_date.at.SetInParent()
    day_after.wait.trait_date.at.hours = 10
    journey = a_journey(event="prescription_confirmed", graph=[day_after, send("reminder")])
    journey.holdout_percent = holdout
    return journey


async def test_a_saved_journey_is_simulated_over_a_segment_without_sending(
    bare_suite: Suite, bus: Bus
) -> None:
    # A visit ten days ahead: the patient who enters for real waits (sends nothing meanwhile).
    ahead = datetime.now(TOKYO) + timedelta(days=10)
    visit = ahead.replace(hour=15, minute=0, second=0, microsecond=0)
    patients = [f"patient-{n}" for n in range(12)]
    traits = {"prescribed_at": visit.isoformat(), "timezone": "Asia/Tokyo", "plan": "pill"}
    for patient in patients:
        await identify(bus, patient, traits)
    async with bare_suite.channel("segments") as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        rule = to_proto(from_yaml("{trait: plan, equals: pill}"))
        await eventually(lambda: _all_applied(segments, rule, len(patients)))
        made = await segments.CreateSegment(
            segment_pb2.CreateSegmentRequest(
                parent=PARENT, segment_id="pills", segment=segment_pb2.Segment(rule=rule)
            ),
            metadata=auth(MARKETER_KEY),
        )
    async with bare_suite.channel("scheduler") as channel:
        stub = journey_pb2_grpc.JourneyServiceStub(channel)
        saved = await create(stub, "reminders", reminders(holdout=30))
        # One patient enters it for real first: she is in it, waiting, so she would not enter.
        await identify(bus, patients[0], {}, then="prescription_confirmed")
        await eventually(lambda: journey_events(bus, patients[0]))
        sent_before = len(await sends(bus))
        request = journey_pb2.SimulateJourneyRequest(
            parent=PARENT,
            journey_name=saved.name,
            segment=made.name,
            start_time=_stamp(visit),
        )
        answer = await stub.SimulateJourney(request, metadata=auth(MARKETER_KEY))

    assert len(await sends(bus)) == sent_before
    by_user = {profile.user_id: profile for profile in answer.profiles}
    assert set(by_user) == set(patients)
    assert by_user[patients[0]].not_entered == "already_in_journey"
    held = {p for p in patients[1:] if in_share("acme/journeys/reminders", p, 30)}
    assert held and held != set(patients[1:])
    ten_am = (visit + timedelta(days=1)).replace(hour=10)
    for patient in patients[1:]:
        profile = by_user[patient]
        last = profile.steps[-1]
        assert last.step_id == "reminder" and profile.outcome == "completed"
        assert last.time.ToDatetime(tzinfo=UTC) == ten_am
        expected = Step.KIND_SKIPPED if patient in held else Step.KIND_SENT
        assert (last.kind, last.reason) == (expected, "holdout" if patient in held else "")
    assert answer.sends_by_channel["CHANNEL_EMAIL"] == len(patients) - 1 - len(held)
    assert answer.skipped_by_reason["holdout"] == len(held)
    assert answer.entered_by_step["day-after"] == len(patients) - 1


async def test_an_unsaved_journey_is_simulated_for_listed_users_and_a_bad_request_is_named(
    bare_suite: Suite, bus: Bus
) -> None:
    await identify(bus, "ana", {"timezone": "Asia/Tokyo"})
    async with bare_suite.channel("scheduler") as channel:
        stub = journey_pb2_grpc.JourneyServiceStub(channel)
        draft = a_journey(graph=[send("hello")])
        request = journey_pb2.SimulateJourneyRequest(
            parent=PARENT, journey=draft, users=journey_pb2.UserIds(user_ids=["ana", "nobody"])
        )
        answer = await eventually(
            lambda: _found(stub.SimulateJourney(request, metadata=auth(MARKETER_KEY)))
        )
        by_user = {profile.user_id: profile for profile in answer.profiles}
        assert by_user["nobody"].not_entered == "profile_not_found"
        assert [s.kind for s in by_user["ana"].steps] == [Step.KIND_ENTERED, Step.KIND_SENT]

        no_audience = journey_pb2.SimulateJourneyRequest(parent=PARENT, journey=draft)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SimulateJourney(no_audience, metadata=auth(MARKETER_KEY))
        assert violated_fields(raised.value) == ["segment"]
        too_far = journey_pb2.SimulateJourneyRequest(
            parent=PARENT, journey=draft, users=journey_pb2.UserIds(user_ids=["ana"])
        )
        too_far.horizon.FromTimedelta(timedelta(days=1000))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SimulateJourney(too_far, metadata=auth(MARKETER_KEY))
        assert violated_fields(raised.value) == ["horizon"]


async def _found(
    call: Awaitable[journey_pb2.SimulateJourneyResponse],
) -> journey_pb2.SimulateJourneyResponse | None:
    answer = await call
    found = [p for p in answer.profiles if p.user_id == "ana" and not p.not_entered]
    return answer if found else None


async def _all_applied(
    segments: segment_pb2_grpc.SegmentServiceStub, rule: segment_pb2.Rule, count: int
) -> bool:
    preview = await segments.PreviewSegment(
        segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=rule),
        metadata=auth(MARKETER_KEY),
    )
    return bool(preview.member_count == count)


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
