"""Journey steps on the customer's calendar, with segments and the scheduler running: a step
that reads the profile reads it with the triggering event applied, and waits for a date trait
or a time of day in the profile's own zone while days pass in seconds."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engage.bus import Bus
from engage.v1 import journey_pb2, journey_pb2_grpc
from tests.harness import Suite, eventually
from tests.journeys import (
    a_journey,
    create,
    exit_step,
    identify,
    journey_events,
    move,
    now_on,
    send,
    sends,
    steps_sent,
)

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def stub(
    bare_suite: Suite, clock_file: Path
) -> AsyncIterator[journey_pb2_grpc.JourneyServiceStub]:
    await asyncio.to_thread(bare_suite.start, "segments")
    await asyncio.to_thread(bare_suite.start, "scheduler")
    async with bare_suite.channel("scheduler") as channel:
        yield journey_pb2_grpc.JourneyServiceStub(channel)


@pytest.fixture
async def bus(bare_suite: Suite, stub: object) -> AsyncIterator[Bus]:
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


def until_trait_date(
    step_id: str, trait: str, days: int, on_missing: str
) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id)
    step.wait.trait_date.trait = trait
    step.wait.trait_date.days = days
    step.wait.trait_date.at.SetInParent()
    step.wait.trait_date.at.hours = 10
    step.wait.trait_date.on_missing = on_missing
    return step


async def test_a_date_trait_set_just_before_the_trigger_times_the_reminder_in_the_profiles_zone(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    steps = [
        until_trait_date("before-cancel", "auto_cancel_at", -7, on_missing="no-date"),
        send("reminder", next="done"),
        send("no-date"),
        exit_step("done"),
    ]
    await create(stub, "renewal", a_journey(event="prescribed", graph=steps))
    cancel_day = now_on(clock_file).astimezone(TOKYO).date() + timedelta(days=18)
    traits = {"auto_cancel_at": cancel_day.isoformat(), "timezone": "Asia/Tokyo"}
    await identify(bus, "ana", traits, then="prescribed")
    await identify(bus, "bo", {"timezone": "Asia/Tokyo"}, then="prescribed")
    # Bo has no date: he goes the `no-date` way once his profile is read.
    await eventually(lambda: steps_sent(bus, "bo"), timeout=30)
    assert await steps_sent(bus, "bo") == ["no-date"]

    due = datetime.combine(cancel_day - timedelta(days=7), datetime.min.time(), TOKYO)
    due += timedelta(hours=10)
    move(clock_file, due - now_on(clock_file) - timedelta(minutes=1))
    await identify(bus, "marker", {}, then="prescribed")
    await eventually(lambda: steps_sent(bus, "marker"), timeout=30)
    assert await steps_sent(bus, "ana") == []

    move(clock_file, timedelta(minutes=2))
    await eventually(lambda: steps_sent(bus, "ana"), timeout=30)
    [reminder] = [s for s in await sends(bus) if s.user_id == "ana"]
    assert reminder.step_id == "reminder"
    sent_at = reminder.occurred_at.ToDatetime(tzinfo=UTC).astimezone(TOKYO)
    assert (sent_at.date(), sent_at.hour) == (cancel_day - timedelta(days=7), 10)


async def test_a_time_of_day_wait_sends_at_that_hour_in_the_profiles_zone(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub, clock_file: Path
) -> None:
    morning = journey_pb2.JourneyStep(id="at-nine")
    morning.wait.time_of_day.hours = 9
    await create(stub, "morning", a_journey(event="signed_up", graph=[morning, send("hello")]))
    await identify(bus, "ana", {"timezone": "Asia/Tokyo"}, then="signed_up")
    await identify(bus, "ed", {"timezone": "America/New_York"}, then="signed_up")
    zones = {"ana": TOKYO, "ed": NEW_YORK}
    for user in zones:
        # The wait is entered once the profile (and so its zone) has been read.
        await eventually(partial(waiting_at, bus, user, "at-nine"), timeout=30)
    # Whichever zone reaches 09:00 first, then the other.
    for user, zone in sorted(
        zones.items(), key=lambda item: next_nine(now_on(clock_file), item[1])
    ):
        move(clock_file, next_nine(now_on(clock_file), zone) - now_on(clock_file) + MINUTE)
        await eventually(partial(steps_sent, bus, user), timeout=30)
        [hello] = [s for s in await sends(bus) if s.user_id == user]
        local = hello.occurred_at.ToDatetime(tzinfo=UTC).astimezone(zone)
        assert (local.hour, local.minute) == (9, 1), user
    assert sorted(s.user_id for s in await sends(bus)) == ["ana", "ed"]


async def waiting_at(bus: Bus, user_id: str, step_id: str) -> bool:
    return any(event.step_id == step_id for event in await journey_events(bus, user_id))


def next_nine(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
    return nine if nine > local else nine + timedelta(days=1)
