"""Journeys that wait, on real parts: the scheduler process with its database, nats-server, and
a clock the test moves forward (days pass in seconds)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf import field_mask_pb2

from engage.bus import Bus
from engage.v1 import bus_pb2, journey_pb2, journey_pb2_grpc
from tests.harness import Suite, auth, eventually
from tests.journeys import (
    Kind,
    a_journey,
    create,
    exit_step,
    journey_events,
    move,
    send,
    sends_to,
    start_scheduler,
    steps_sent,
    track,
    wait,
    wait_for,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
Mode = journey_pb2.ReentryPolicy


@pytest.fixture
async def bus(bare_suite: Suite, clock_file: Path) -> AsyncIterator[Bus]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
async def stub(bare_suite: Suite, bus: Bus) -> AsyncIterator[journey_pb2_grpc.JourneyServiceStub]:
    async with bare_suite.channel("scheduler") as channel:
        yield journey_pb2_grpc.JourneyServiceStub(channel)


def reminder_journey(**fields: object) -> journey_pb2.Journey:
    """Sends `hello`, waits a day, sends `reminder`."""
    journey = a_journey(graph=[send("hello"), wait("a-day", DAY), send("reminder")])
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(journey, name).extend(value)
        else:
            getattr(journey, name).CopyFrom(value)
    return journey


async def until_sent(bus: Bus, user_id: str, *steps: str) -> None:
    async def sent() -> bool:
        return await steps_sent(bus, user_id) == list(steps)

    await eventually(sent)


async def test_a_wait_holds_the_next_send_until_its_time_comes(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    await create(stub, "welcome", reminder_journey())
    await track(bus, "signed_up", "ana")
    await until_sent(bus, "ana", "hello")

    move(clock_file, DAY - timedelta(minutes=1))
    await track(bus, "signed_up", "marker")
    await until_sent(bus, "marker", "hello")
    assert await steps_sent(bus, "ana") == ["hello"]

    move(clock_file, timedelta(minutes=1))
    await until_sent(bus, "ana", "hello", "reminder")
    left = (await journey_events(bus, "ana"))[-1]
    assert (left.kind, left.reason) == (Kind.KIND_EXITED, "completed")


async def test_the_goal_converts_and_nothing_more_is_sent(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    await create(stub, "welcome", reminder_journey(goal=journey_pb2.JourneyGoal(event="paid")))
    await track(bus, "signed_up", "payer", "", "other")
    await until_sent(bus, "payer", "hello")
    move(clock_file, 3 * HOUR)
    await track(bus, "paid", "payer")

    async def converted() -> bus_pb2.JourneyEvent | None:
        events = await journey_events(bus, "payer")
        return events[-1] if events[-1].kind == Kind.KIND_CONVERTED else None

    conversion = await eventually(converted)
    [hello] = await sends_to(bus, "payer")
    assert conversion.attributed_send == hello.id
    assert 3 * HOUR <= conversion.time_to_convert.ToTimedelta() < 4 * HOUR

    move(clock_file, DAY)
    await until_sent(bus, "other", "hello", "reminder")
    assert await steps_sent(bus, "payer") == ["hello"]


async def test_an_exit_event_ends_the_enrollment(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    await create(stub, "welcome", reminder_journey(exit_events=["unsubscribed"]))
    await track(bus, "signed_up", "leaver", "", "stayer")
    await until_sent(bus, "leaver", "hello")
    await track(bus, "unsubscribed", "leaver")

    async def exited() -> bool:
        last = (await journey_events(bus, "leaver"))[-1]
        return (last.kind, last.reason) == (Kind.KIND_EXITED, "exit_event:unsubscribed")

    await eventually(exited)
    move(clock_file, DAY)
    await until_sent(bus, "stayer", "hello", "reminder")
    assert await steps_sent(bus, "leaver") == ["hello"]


async def test_a_wait_for_an_event_takes_the_event_path_or_the_timeout_path(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    cart = a_journey(
        event="added_to_cart",
        graph=[
            wait_for("no-purchase", "purchase", HOUR, on_timeout="remind", next="thanks"),
            send("remind", next="done"),
            send("thanks"),
            exit_step("done"),
        ],
    )
    await create(stub, "cart", cart)
    await track(bus, "added_to_cart", "buyer", "", "browser")
    await track(bus, "purchase", "buyer")
    await until_sent(bus, "buyer", "thanks")

    move(clock_file, HOUR)
    await until_sent(bus, "browser", "remind")
    assert await steps_sent(bus, "buyer") == ["thanks"]
    assert (await journey_events(bus, "browser"))[-1].reason == "exit_step"


async def test_one_at_a_time_reentry_waits_for_the_first_enrollment_to_end(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    await create(stub, "welcome", reminder_journey(reentry=Mode(mode=Mode.MODE_ONE_AT_A_TIME)))
    await track(bus, "signed_up", "ana")
    await until_sent(bus, "ana", "hello")
    await track(bus, "signed_up", "ana")
    await track(bus, "signed_up", "marker")
    await until_sent(bus, "marker", "hello")
    assert await steps_sent(bus, "ana") == ["hello"]

    move(clock_file, DAY)
    await until_sent(bus, "ana", "hello", "reminder")
    await track(bus, "signed_up", "ana")
    await until_sent(bus, "ana", "hello", "reminder", "hello")
    assert len({s.enrollment_id for s in await sends_to(bus, "ana")}) == 2


async def test_a_paused_journey_holds_its_timers_until_resumed(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    paused = await create(stub, "paused", reminder_journey())
    await create(stub, "marker", a_journey(event="marked", graph=[wait("w", DAY), send("m")]))
    await track(bus, "signed_up", "ana")
    await track(bus, "marked", "marker")
    await until_sent(bus, "ana", "hello")
    await _set_state(stub, paused.name, journey_pb2.Journey.STATE_PAUSED)

    move(clock_file, DAY)
    # Timers fire in one claim, earliest first: once the marker's is out, ana's was passed over.
    await until_sent(bus, "marker", "m")
    assert await steps_sent(bus, "ana") == ["hello"]

    await _set_state(stub, paused.name, journey_pb2.Journey.STATE_ACTIVE)
    await until_sent(bus, "ana", "hello", "reminder")


async def test_an_enrollment_finishes_on_the_version_it_entered_with(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    created = await create(stub, "welcome", reminder_journey())
    await track(bus, "signed_up", "early")
    await until_sent(bus, "early", "hello")
    edited = a_journey(graph=[send("hello"), wait("a-day", DAY), send("new-reminder")])
    edited.name = created.name
    updated = await stub.UpdateJourney(
        journey_pb2.UpdateJourneyRequest(
            journey=edited, update_mask=field_mask_pb2.FieldMask(paths=["steps"])
        ),
        metadata=auth(),
    )
    assert updated.version == 2
    await track(bus, "signed_up", "late")
    await until_sent(bus, "late", "hello")

    move(clock_file, DAY)
    await until_sent(bus, "early", "hello", "reminder")
    await until_sent(bus, "late", "hello", "new-reminder")
    assert {s.journey_version for s in await sends_to(bus, "early")} == {1}


async def _set_state(
    stub: journey_pb2_grpc.JourneyServiceStub, name: str, state: "journey_pb2.Journey.State"
) -> None:
    await stub.UpdateJourney(
        journey_pb2.UpdateJourneyRequest(
            journey=journey_pb2.Journey(name=name, state=state),
            update_mask=field_mask_pb2.FieldMask(paths=["state"]),
        ),
        metadata=auth(),
    )
