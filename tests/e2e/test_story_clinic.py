"""Story 1, the online clinic, from the examples a marketer applies with `engage apply`, with
segments and the scheduler running and days passing in seconds: reminders the day after the
visit and 7 days before the automatic cancellation, each at 10:00 on the patient's calendar;
a payment stops them; a held-out control group is sent nothing; at month 11 of a 12-month plan
a reminder goes out by email, push and LINE."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2
from services.scheduler.decisions import in_share
from tests.harness import WORKSPACE, Suite, eventually
from tests.journeys import (
    EXAMPLES,
    engage_apply,
    identify,
    journey_events,
    move,
    now_on,
    publish,
    sends,
    start_scheduler,
    steps_sent,
    track_event,
)

TOKYO = ZoneInfo("Asia/Tokyo")
MINUTE = timedelta(minutes=1)
Kind = bus_pb2.JourneyEvent


@pytest.fixture
async def bus(bare_suite: Suite, clock_file: Path) -> AsyncIterator[Bus]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    applied = await asyncio.to_thread(
        engage_apply, bare_suite, EXAMPLES / "segments", EXAMPLES / "journeys"
    )
    assert applied.returncode == 0, applied.stderr
    assert "created workspaces/acme/journeys/prescription-reminders" in applied.stdout
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


def held_out(candidates: list[str]) -> tuple[list[str], str]:
    """Patients the 10% control group does not hold, and one it does."""
    group = f"{WORKSPACE}/journeys/prescription-reminders"
    held = [user for user in candidates if in_share(group, user, 10)]
    return [user for user in candidates if user not in held], held[0]


async def waiting_at(bus: Bus, user_id: str, step_id: str) -> bool:
    return any(e.step_id == step_id for e in await journey_events(bus, user_id))


async def skipped(bus: Bus, user_id: str) -> list[tuple[str, str]]:
    return [
        (e.step_id, e.reason)
        for e in await journey_events(bus, user_id)
        if e.kind == Kind.KIND_SEND_SKIPPED
    ]


async def test_story_1_reminders_stop_on_payment_skip_the_control_group_and_follow_the_calendar(
    bus: Bus, clock_file: Path
) -> None:
    (payer, forgetful, *_), control = held_out([f"patient-{n}" for n in range(60)])
    visit = now_on(clock_file).astimezone(TOKYO).replace(second=0, microsecond=0)
    prescription = {"prescribed_at": visit.isoformat(), "timezone": "Asia/Tokyo"}
    for patient in (payer, forgetful, control):
        await identify(bus, patient, prescription, then="prescription_confirmed")
    for patient in (payer, forgetful, control):
        await eventually(partial(waiting_at, bus, patient, "day-after-visit"), timeout=30)

    # The day after the visit on the patient's calendar, at 10:00: a calendar day, not 24 hours.
    day_after = datetime.combine(visit.date() + timedelta(days=1), datetime.min.time(), TOKYO)
    day_after += timedelta(hours=10)
    move(clock_file, day_after - now_on(clock_file) - MINUTE)
    await asyncio.sleep(1)
    assert await sends(bus) == []
    move(clock_file, 2 * MINUTE)
    for patient in (payer, forgetful):
        await eventually(partial(steps_sent, bus, patient))
    for request in await sends(bus):
        local = request.occurred_at.ToDatetime(tzinfo=UTC).astimezone(TOKYO)
        assert (local.date(), local.hour) == (day_after.date(), 10)
    assert await eventually(partial(skipped, bus, control)) == [("first-reminder", "holdout")]

    await publish(bus, payer, track_event(payer, "payment_completed"))

    async def converted() -> bool:
        return any(e.kind == Kind.KIND_CONVERTED for e in await journey_events(bus, payer))

    await eventually(converted)
    # 7 days before the cancellation 18 days after the visit: day 11, at 10:00.
    cutoff_reminder = day_after + timedelta(days=10)
    move(clock_file, cutoff_reminder - now_on(clock_file) + MINUTE)
    await eventually(lambda: _sent(bus, forgetful, ["first-reminder", "last-reminder"]))
    assert await steps_sent(bus, payer) == ["first-reminder"]
    assert await steps_sent(bus, control) == []
    assert await eventually(lambda: _skips(bus, control, 2)) == [
        ("first-reminder", "holdout"),
        ("last-reminder", "holdout"),
    ]


async def test_story_1_month_eleven_reminds_by_email_push_and_line(
    bus: Bus, clock_file: Path
) -> None:
    ends = now_on(clock_file) + timedelta(days=20)
    plan = {
        "subscription_status": "active",
        "plan_months": 12,
        "contract_ends_at": ends.isoformat(),
        "timezone": "Asia/Tokyo",
    }
    await identify(bus, "mei", plan)
    await identify(bus, "kai", {**plan, "plan_months": 6})
    await eventually(lambda: _sent(bus, "mei", ["email", "push", "line"]), timeout=30)
    channels = {request.channel for request in await sends(bus) if request.user_id == "mei"}
    assert channels == {
        common_pb2.CHANNEL_EMAIL,
        common_pb2.CHANNEL_PUSH,
        common_pb2.CHANNEL_LINE,
    }
    assert await steps_sent(bus, "kai") == []


async def _sent(bus: Bus, user_id: str, steps: list[str]) -> bool:
    return await steps_sent(bus, user_id) == steps


async def _skips(bus: Bus, user_id: str, count: int) -> list[tuple[str, str]] | None:
    found = await skipped(bus, user_id)
    return found if len(found) >= count else None
