"""Send decisions in the running suite: the workspace's frequency cap, kept by segments' settings
and applied by the scheduler to every marketing send of every journey, transactional exempt."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path

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
    journey_events,
    move,
    start_scheduler,
    steps_sent,
    track,
    with_moving_clock,
)

WEEK = timedelta(days=7)
Kind = bus_pb2.JourneyEvent


@pytest.fixture
async def clock_file(bare_suite: Suite) -> Path:
    return with_moving_clock(bare_suite)


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
