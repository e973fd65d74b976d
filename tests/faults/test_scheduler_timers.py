"""Durable time under crashes and replicas: a scheduler killed with a thousand enrollments
waiting resumes every one, and two schedulers sharing PostgreSQL never fire a step twice.

Every publish on `engage.sends.>` is watched on the wire (`WireTap`), where JetStream's
deduplication has not yet hidden anything.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from engage.bus import Bus
from engage.v1 import journey_pb2_grpc
from engage_cli.processes import ServiceProcess
from tests.harness import POSTGRES_URL, Suite, eventually
from tests.journeys import (
    WireTap,
    a_journey,
    create,
    move,
    send,
    start_scheduler,
    track,
    wait,
)

PROFILES = 1_000
DAY = timedelta(days=1)


@pytest.fixture
async def bus(bare_suite: Suite, clock_file: Path) -> AsyncIterator[Bus]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


async def enroll_many(suite: Suite, bus: Bus) -> WireTap:
    """A thousand profiles in a journey of three sends a day apart, each having had the first."""
    tap = WireTap()
    await tap.start(bus)
    async with suite.channel("scheduler") as channel:
        stub = journey_pb2_grpc.JourneyServiceStub(channel)
        steps = [send("day-0"), wait("w1", DAY), send("day-1"), wait("w2", DAY), send("day-2")]
        await create(stub, "drip", a_journey(graph=steps))
    users = [f"user-{n:04}" for n in range(PROFILES)]
    for start in range(0, PROFILES, 100):
        await track(bus, "signed_up", users[start], "", *users[start + 1 : start + 100])
    await until(tap, {"day-0": PROFILES})
    return tap


async def until(tap: WireTap, expected: dict[str, int]) -> None:
    await eventually(lambda: tap.steps() == expected, timeout=60)


async def test_a_killed_scheduler_fires_every_waiting_timer_once_after_restart(
    bare_suite: Suite, bus: Bus, clock_file: Path
) -> None:
    tap = await enroll_many(bare_suite, bus)

    # Killed while idle, with every enrollment waiting: the day passes while it is down.
    bare_suite.kill("scheduler")
    move(clock_file, DAY)
    await asyncio.to_thread(bare_suite.start, "scheduler")
    await until(tap, {"day-0": PROFILES, "day-1": PROFILES})

    # Killed while firing: as soon as the first of the next day's sends is out.
    move(clock_file, DAY)
    await eventually(lambda: tap.steps().get("day-2", 0) > 0, timeout=60)
    bare_suite.kill("scheduler")
    await asyncio.to_thread(bare_suite.start, "scheduler")
    await until(tap, {"day-0": PROFILES, "day-1": PROFILES, "day-2": PROFILES})
    assert tap.fired_twice() == []


if POSTGRES_URL:
    # Replicas share timers on PostgreSQL; on SQLite one scheduler process claims them. Defined
    # only where there is a PostgreSQL, so it is never a skipped test.

    @pytest.mark.parametrize("databases", ["postgres"], indirect=True)
    async def test_two_schedulers_on_postgresql_never_fire_a_step_twice(
        bare_suite: Suite, bus: Bus, clock_file: Path
    ) -> None:
        tap = await enroll_many(bare_suite, bus)
        env = {**bare_suite.env, **bare_suite.service_env("scheduler")}
        second = ServiceProcess(
            "scheduler",
            env,
            bare_suite.run_dir / "replica-2",
            bare_suite.run_dir / "scheduler-2.log",
        )
        second.start()
        try:
            await asyncio.to_thread(second.wait_ready)
            for days in (2, 3):
                move(clock_file, DAY)
                await until(tap, {f"day-{n}": PROFILES for n in range(days)})
            assert tap.fired_twice() == []
        finally:
            second.stop()
