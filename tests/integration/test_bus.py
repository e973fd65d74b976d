"""The bus on a real nats-server: idempotent declaration, retries, dead letters, the outbox."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from sqlmodel import SQLModel, select

from engage import db
from engage.bus import Bus, ConsumerSpec, PermanentError
from engage.outbox import OutboxMessage, OutboxRelay, enqueue
from engage.processes import NatsServer
from engage.v1 import bus_pb2
from tests.harness import eventually


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_server.url, "test")
    await connected.declare_streams()
    yield connected
    await connected.close()


def journey_event(event_id: str) -> bus_pb2.JourneyEvent:
    return bus_pb2.JourneyEvent(id=event_id, workspace="acme", journey="j")


async def dead_letters(bus: Bus, durable: str) -> list[Msg]:
    subscription = await bus.js.subscribe(f"engage.deadletter.{durable}", ordered_consumer=True)
    found: list[Msg] = []
    try:
        while True:
            found.append(await subscription.next_msg(timeout=0.5))
    except TimeoutError:
        return found
    finally:
        await subscription.unsubscribe()


async def test_declaring_streams_again_changes_nothing(bus: Bus) -> None:
    await bus.js.publish("engage.journeys.acme", b"kept", headers={"Nats-Msg-Id": "x"})
    await bus.declare_streams()

    assert (await bus.js.stream_info("JOURNEYS")).state.messages == 1


async def test_failing_message_is_retried_then_parked_with_its_error(bus: Bus) -> None:
    spec = ConsumerSpec("test-always-fails", "JOURNEYS", ["engage.journeys.>"], [0.05], 3)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        raise RuntimeError("database is down")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish("engage.journeys.acme", journey_event("e1"), "e1", "acme")
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 3))
    [parked] = await eventually(lambda: dead_letters(bus, spec.durable))
    task.cancel()

    assert attempts == [1, 2, 3]
    assert bus_pb2.JourneyEvent.FromString(parked.data).id == "e1"
    assert parked.headers is not None
    assert parked.headers["Engage-Error"] == "RuntimeError: database is down"
    assert parked.headers["Engage-Original-Subject"] == "engage.journeys.acme"


async def test_permanent_error_is_parked_without_retrying(bus: Bus) -> None:
    spec = ConsumerSpec("test-poison", "JOURNEYS", ["engage.journeys.>"], [0.05], 5)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        raise PermanentError("undecodable")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish("engage.journeys.acme", journey_event("e2"), "e2", "acme")
    await eventually(lambda: dead_letters(bus, spec.durable))
    task.cancel()

    assert attempts == [1]


async def test_transient_failure_is_retried_until_it_succeeds(bus: Bus) -> None:
    spec = ConsumerSpec("test-flaky", "JOURNEYS", ["engage.journeys.>"], [0.05], 5)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        if len(attempts) < 2:
            raise ConnectionError("try again")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish("engage.journeys.acme", journey_event("e3"), "e3", "acme")
    await eventually(lambda: asyncio.sleep(0, len(attempts) == 2))
    await asyncio.sleep(0.3)  # room for a wrong third delivery to show
    task.cancel()

    assert attempts == [1, 2]
    assert await dead_letters(bus, spec.durable) == []


async def test_slow_handler_is_not_handed_the_same_message_again(bus: Bus) -> None:
    spec = ConsumerSpec("test-slow", "JOURNEYS", ["engage.journeys.>"], concurrency=4)
    handled: list[str] = []

    async def handle(message: Msg) -> None:
        await asyncio.sleep(0.6)  # longer than the first backoff step, well inside ack wait
        handled.append(bus_pb2.JourneyEvent.FromString(message.data).id)

    task = asyncio.create_task(bus.consume(spec, handle))
    for number in range(6):
        await bus.publish("engage.journeys.acme", journey_event(f"s{number}"), f"s{number}", "acme")
    await eventually(lambda: asyncio.sleep(0, len(handled) >= 6))
    await asyncio.sleep(1.0)  # room for a wrong redelivery to show
    task.cancel()

    assert sorted(handled) == [f"s{number}" for number in range(6)]


async def test_outbox_rows_are_published_once_committed_then_deleted(
    bus: Bus, tmp_path: Path
) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(
            SQLModel.metadata.create_all,
            tables=[OutboxMessage.__table__],  # type: ignore[attr-defined]
        )
    sessions = db.session_factory(engine)
    relay = OutboxRelay(sessions, bus)
    async with db.transaction(sessions) as session:
        enqueue(session, "engage.journeys.acme", journey_event("o1"), "o1", "acme")
    with pytest.raises(RuntimeError):
        async with db.transaction(sessions) as session:
            enqueue(session, "engage.journeys.acme", journey_event("o2"), "o2", "acme")
            raise RuntimeError("rolled back: its message must never go out")

    assert await relay.publish_pending() == 1
    assert await relay.publish_pending() == 0
    async with sessions() as session:
        assert (await session.exec(select(OutboxMessage))).all() == []
    stored = await bus.js.get_msg("JOURNEYS", 1)
    assert bus_pb2.JourneyEvent.FromString(stored.data or b"").id == "o1"
    assert (await bus.js.stream_info("JOURNEYS")).state.messages == 1
    await engine.dispose()
