"""The bus on a real nats-server: idempotent declaration, retries, dead letters.

The outbox relay has tests of its own: test_outbox.py."""

import asyncio

from nats.aio.msg import Msg
from nats.js import api

from engage import subjects
from engage.bus import Bus, ConsumerSpec, PermanentError
from engage.v1 import bus_pb2
from tests.harness import dead_letters, eventually


def journey_event(event_id: str) -> bus_pb2.JourneyEvent:
    return bus_pb2.JourneyEvent(id=event_id, workspace="acme", journey="j")


async def settled(bus: Bus, spec: ConsumerSpec, messages: int) -> api.ConsumerInfo | None:
    """The consumer's state once the first `messages` messages of its stream are all
    acknowledged (nothing pending), else None."""
    info = await bus.js.consumer_info(spec.stream, spec.durable)
    done = info.ack_floor.stream_seq >= messages and info.num_ack_pending == 0
    return info if done else None


async def test_declaring_streams_again_changes_nothing(bus: Bus) -> None:
    await bus.js.publish(subjects.journeys("acme"), b"kept", headers={"Nats-Msg-Id": "x"})
    await bus.declare_streams()

    assert (await bus.js.stream_info("JOURNEYS")).state.messages == 1


async def test_failing_message_is_retried_then_parked_with_its_error(bus: Bus) -> None:
    spec = ConsumerSpec("test-always-fails", "JOURNEYS", [subjects.JOURNEYS], [0.05], 3)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        raise RuntimeError("database is down")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish(subjects.journeys("acme"), journey_event("e1"), "e1", "acme")
    await eventually(lambda: len(attempts) == 3)
    [parked] = await eventually(lambda: dead_letters(bus, spec.durable))
    task.cancel()

    assert attempts == [1, 2, 3]
    assert bus_pb2.JourneyEvent.FromString(parked.data or b"").id == "e1"
    assert parked.headers is not None
    assert parked.headers["Engage-Error"] == "RuntimeError: database is down"
    assert parked.headers["Engage-Original-Subject"] == subjects.journeys("acme")


async def test_permanent_error_is_parked_without_retrying(bus: Bus) -> None:
    spec = ConsumerSpec("test-poison", "JOURNEYS", [subjects.JOURNEYS], [0.05], 5)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        raise PermanentError("undecodable")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish(subjects.journeys("acme"), journey_event("e2"), "e2", "acme")
    await eventually(lambda: dead_letters(bus, spec.durable))
    task.cancel()

    assert attempts == [1]


async def test_transient_failure_is_retried_until_it_succeeds(bus: Bus) -> None:
    spec = ConsumerSpec("test-flaky", "JOURNEYS", [subjects.JOURNEYS], [0.05], 5)
    attempts: list[int] = []

    async def handle(message: Msg) -> None:
        attempts.append(message.metadata.num_delivered)
        if len(attempts) < 2:
            raise ConnectionError("try again")

    task = asyncio.create_task(bus.consume(spec, handle))
    await bus.publish(subjects.journeys("acme"), journey_event("e3"), "e3", "acme")
    # Once acknowledged, the message can never come again: count the deliveries then.
    info = await eventually(lambda: settled(bus, spec, messages=1))
    task.cancel()

    assert attempts == [1, 2]
    assert info.delivered is not None
    assert info.delivered.consumer_seq == 2
    assert await dead_letters(bus, spec.durable) == []


async def test_slow_handler_is_not_handed_the_same_message_again(bus: Bus) -> None:
    spec = ConsumerSpec("test-slow", "JOURNEYS", [subjects.JOURNEYS], concurrency=4)
    handled: list[str] = []

    async def handle(message: Msg) -> None:
        handled.append(bus_pb2.JourneyEvent.FromString(message.data).id)
        await asyncio.sleep(0.6)  # longer than the first backoff step, well inside ack wait

    task = asyncio.create_task(bus.consume(spec, handle))
    for number in range(6):
        await bus.publish(
            subjects.journeys("acme"), journey_event(f"s{number}"), f"s{number}", "acme"
        )
    # Every message acknowledged: none can come again, and the server counted every delivery.
    info = await eventually(lambda: settled(bus, spec, messages=6))
    task.cancel()

    assert sorted(handled) == [f"s{number}" for number in range(6)]
    assert info.delivered is not None
    assert info.delivered.consumer_seq == 6


async def test_a_handler_slower_than_the_ack_wait_keeps_its_message(bus: Bus) -> None:
    # Two replicas on one durable: the idle one would take a message whose ack wait ran out.
    spec = ConsumerSpec("test-slower", "JOURNEYS", [subjects.JOURNEYS], ack_wait_seconds=1.0)
    handled: list[str] = []

    async def handle(message: Msg) -> None:
        handled.append(bus_pb2.JourneyEvent.FromString(message.data).id)
        await asyncio.sleep(2.5)  # the work: two and a half ack waits

    replicas = [asyncio.create_task(bus.consume(spec, handle)) for _ in range(2)]
    await bus.publish(subjects.journeys("acme"), journey_event("slow"), "slow", "acme")
    info = await eventually(lambda: settled(bus, spec, messages=1))
    for replica in replicas:
        replica.cancel()

    assert handled == ["slow"]
    assert info.delivered is not None
    assert info.delivered.consumer_seq == 1
