"""Send decisions in the running suite: the workspace's frequency caps and quiet hours, kept by
segments' settings and applied by the scheduler to every marketing send of every journey,
transactional exempt."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import field_mask_pb2

from engage.bus import Bus
from engage.v1 import (
    bus_pb2,
    common_pb2,
    journey_pb2,
    journey_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)
from tests.harness import MARKETER_KEY, Suite, auth, eventually
from tests.journeys import (
    PARENT,
    a_journey,
    create,
    identify,
    journey_events,
    move,
    now_on,
    sends,
    start_scheduler,
    steps_sent,
    track,
)

WEEK = timedelta(days=7)
TOKYO = ZoneInfo("Asia/Tokyo")
Kind = bus_pb2.JourneyEvent


@pytest.fixture
async def stub(
    bare_suite: Suite, clock_file: Path
) -> AsyncIterator[journey_pb2_grpc.JourneyServiceStub]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    async with bare_suite.channel("scheduler") as channel:
        yield journey_pb2_grpc.JourneyServiceStub(channel)


@pytest.fixture
async def bus(bare_suite: Suite, stub: object) -> AsyncIterator[Bus]:
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


async def one_email_a_week(suite: Suite) -> None:
    cap = workspace_pb2.FrequencyCap(channel=common_pb2.CHANNEL_EMAIL, max_sends=1)
    cap.window.FromTimedelta(WEEK)
    async with suite.channel("segments") as channel:
        await workspace_pb2_grpc.WorkspaceServiceStub(channel).UpdateWorkspaceSettings(
            workspace_pb2.UpdateWorkspaceSettingsRequest(
                settings=workspace_pb2.WorkspaceSettings(
                    name=f"{PARENT}/settings", frequency_caps=[cap]
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["frequency_caps"]),
            ),
            metadata=auth(MARKETER_KEY),
        )


async def skipped(bus: Bus, user_id: str) -> list[tuple[str, str]]:
    return [
        (event.step_id, event.reason)
        for event in await journey_events(bus, user_id)
        if event.kind == Kind.KIND_SEND_SKIPPED
    ]


async def test_a_frequency_cap_skips_marketing_over_it_until_the_window_has_passed(
    bare_suite: Suite, bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    await one_email_a_week(bare_suite)
    await create(stub, "welcome", a_journey(event="signed_up", steps=("welcome",)))
    again = journey_pb2.ReentryPolicy(mode=journey_pb2.ReentryPolicy.MODE_ONE_AT_A_TIME)
    promo = a_journey(event="visited", steps=("promo",))
    promo.reentry.CopyFrom(again)
    await create(stub, "promo", promo)
    receipt = a_journey(event="bought", steps=("receipt",))
    receipt.steps[0].send.transactional = True
    await create(stub, "receipt", receipt)

    await track(bus, "signed_up", "ana")
    await eventually(partial(steps_sent, bus, "ana"))
    await track(bus, "visited", "ana")
    await eventually(partial(skipped, bus, "ana"))
    assert await skipped(bus, "ana") == [("promo", "frequency_cap")]
    await track(bus, "bought", "ana")
    await eventually(lambda: _sent(bus, "ana", ["welcome", "receipt"]))

    move(clock_file, WEEK + timedelta(minutes=1))
    await track(bus, "visited", "ana")
    await eventually(lambda: _sent(bus, "ana", ["welcome", "receipt", "promo"]))


async def _sent(bus: Bus, user_id: str, steps: list[str]) -> bool:
    return await steps_sent(bus, user_id) == steps


async def test_quiet_hours_defer_a_marketing_send_to_their_end_in_the_profiles_zone(
    bare_suite: Suite, bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    quiet = workspace_pb2.QuietHours(
        start=common_pb2.LocalTime(hours=21), end=common_pb2.LocalTime(hours=9)
    )
    async with bare_suite.channel("segments") as channel:
        await workspace_pb2_grpc.WorkspaceServiceStub(channel).UpdateWorkspaceSettings(
            workspace_pb2.UpdateWorkspaceSettingsRequest(
                settings=workspace_pb2.WorkspaceSettings(
                    name=f"{PARENT}/settings", quiet_hours=quiet
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["quiet_hours"]),
            ),
            metadata=auth(MARKETER_KEY),
        )
    await create(stub, "promo", a_journey(event="visited", steps=("promo",)))
    receipt = a_journey(event="bought", steps=("receipt",))
    receipt.steps[0].send.transactional = True
    await create(stub, "receipt", receipt)
    # 22:00 in Tokyo.
    tokyo_now = now_on(clock_file).astimezone(TOKYO)
    ten_pm = tokyo_now.replace(hour=22, minute=0, second=0, microsecond=0)
    if ten_pm < tokyo_now:
        ten_pm += timedelta(days=1)
    move(clock_file, ten_pm - tokyo_now)

    await identify(bus, "ana", {"timezone": "Asia/Tokyo"}, then="visited")
    await identify(bus, "bo", {"timezone": "Asia/Tokyo"}, then="bought")
    await eventually(partial(steps_sent, bus, "bo"))

    async def deferred() -> list[tuple[str, str]]:
        return [
            (event.step_id, event.reason)
            for event in await journey_events(bus, "ana")
            if event.kind == Kind.KIND_SEND_DEFERRED
        ]

    assert await eventually(deferred) == [("promo", "quiet_hours")]
    assert await steps_sent(bus, "ana") == []
    move(clock_file, timedelta(hours=11, minutes=1))
    await eventually(partial(steps_sent, bus, "ana"))
    [promo] = [s for s in await sends(bus) if s.user_id == "ana"]
    sent_at = promo.occurred_at.ToDatetime(tzinfo=UTC).astimezone(TOKYO)
    assert (sent_at.hour, sent_at.minute) == (9, 1)
