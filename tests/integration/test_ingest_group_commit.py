"""Single events grouped into one JetStream message per partition (`group_commit`), against a
real nats-server: every caller answered once its event is stored, order kept per profile,
repeats stored once, and the number waiting bounded."""

import asyncio
from collections import defaultdict

import pytest

from engage.bus import Bus
from engage.errors import Unavailable
from engage.v1 import bus_pb2, common_pb2
from engage_cli.processes import NatsServer
from services.ingest.group_commit import GroupCommit
from services.ingest.publisher import EventPublisher

WORKSPACE = "acme"
PARTITIONS = 8


def track(message_id: str, user_id: str) -> common_pb2.Event:
    event = common_pb2.Event(
        type=common_pb2.EVENT_TYPE_TRACK, message_id=message_id, user_id=user_id, event="viewed"
    )
    event.timestamp.GetCurrentTime()
    return event


async def stored(bus: Bus) -> tuple[list[common_pb2.Event], int]:
    """The events on the EVENTS stream in stream order, and how many messages held them."""
    state = (await bus.js.stream_info("EVENTS")).state
    events: list[common_pb2.Event] = []
    for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        raw = await bus.js.get_msg("EVENTS", sequence)
        events.extend(bus_pb2.EventBatch.FromString(raw.data or b"").events)
    return events, state.messages


@pytest.fixture
def singles(bus: Bus) -> GroupCommit:
    return GroupCommit(EventPublisher(bus, PARTITIONS))


async def test_concurrent_single_events_are_all_stored_in_fewer_messages_and_answered(
    singles: GroupCommit, bus: Bus
) -> None:
    events = [track(f"m-{n}", f"u-{n % 40}") for n in range(400)]

    answers = await asyncio.gather(*(singles.publish(WORKSPACE, event) for event in events))

    assert answers == [False] * 400
    kept, messages = await stored(bus)
    assert sorted(event.message_id for event in kept) == sorted(e.message_id for e in events)
    # Grouped: the 400 calls arrived together, so they did not take a message each.
    assert messages <= 2 * PARTITIONS


async def test_each_profiles_events_are_stored_in_the_order_they_arrived(
    singles: GroupCommit, bus: Bus
) -> None:
    sent: dict[str, list[str]] = defaultdict(list)
    calls = []
    for round_ in range(3):
        for n in range(600):  # 600 events a profile: more than one group of its partition
            user = f"u-{n % 3}"
            event = track(f"m-{round_}-{n}", user)
            sent[user].append(event.message_id)
            calls.append(singles.publish(WORKSPACE, event))
    await asyncio.gather(*calls)

    kept, _ = await stored(bus)
    order: dict[str, list[str]] = defaultdict(list)
    for event in kept:
        order[event.user_id].append(event.message_id)
    assert order == sent


async def test_a_repeated_message_id_is_stored_once_whether_concurrent_or_later(
    singles: GroupCommit, bus: Bus
) -> None:
    first, same_time = await asyncio.gather(
        singles.publish(WORKSPACE, track("m-dup", "u-1")),
        singles.publish(WORKSPACE, track("m-dup", "u-1")),
    )
    later = await singles.publish(WORKSPACE, track("m-dup", "u-1"))

    assert (first, same_time, later) == (False, True, True)
    kept, _ = await stored(bus)
    assert [event.message_id for event in kept] == ["m-dup"]


async def test_events_beyond_the_waiting_limit_are_refused_and_the_others_stored(
    bus: Bus,
) -> None:
    singles = GroupCommit(EventPublisher(bus, PARTITIONS), max_waiting=5)
    events = [track(f"m-{n}", f"u-{n}") for n in range(8)]

    answers = await asyncio.gather(
        *(singles.publish(WORKSPACE, event) for event in events), return_exceptions=True
    )

    assert answers[:5] == [False] * 5
    assert all(isinstance(answer, Unavailable) for answer in answers[5:])
    kept, _ = await stored(bus)
    assert sorted(event.message_id for event in kept) == [f"m-{n}" for n in range(5)]
    # Refusals make room again: the limit counts waiting events, not events ever sent.
    assert await singles.publish(WORKSPACE, track("m-after", "u-1")) is False


async def test_events_refused_while_the_bus_is_away_are_not_stored(
    bus: Bus, nats_server: NatsServer
) -> None:
    singles = GroupCommit(EventPublisher(bus, PARTITIONS))
    await bus.client.close()

    answers = await asyncio.gather(
        *(singles.publish(WORKSPACE, track(f"m-{n}", f"u-{n}")) for n in range(20)),
        return_exceptions=True,
    )

    assert all(isinstance(answer, Unavailable) for answer in answers), answers
    reader = await Bus.connect(nats_server.url, "test-reader")
    try:
        kept, _ = await stored(reader)
    finally:
        await reader.close()
    assert kept == []
