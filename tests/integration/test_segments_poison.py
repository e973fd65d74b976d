"""Poison never spreads: one event the segments service cannot apply, published in one bus
message among valid events of other customers, is dead-lettered alone, and every other event of
the message is applied, within seconds. On the real service process, nats-server and its
database (SQLite, and PostgreSQL when configured).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import exc

from engage import subjects
from engage.bus import Bus, PermanentError
from engage.v1 import bus_pb2, common_pb2, profile_pb2, profile_pb2_grpc
from services.segments.consumers import EVENTS_DEAD_LETTERS, is_permanent, partition_consumer
from services.segments.identity import ConcurrentMerge
from tests.harness import BACKENDS, Suite, auth, dead_letters, eventually

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
TRACK = common_pb2.EVENT_TYPE_TRACK
PERSONAL = "poisoned.person@example.com"


@dataclass
class Segments:
    bus: Bus
    profiles: profile_pb2_grpc.ProfileServiceStub
    backend: str


@pytest.fixture
async def segments(bare_suite: Suite) -> AsyncIterator[Segments]:
    await asyncio.to_thread(bare_suite.start, "segments")
    bus = await Bus.open(bare_suite.nats.url, "test")
    channel = bare_suite.channel("segments")
    try:
        yield Segments(
            bus, profile_pb2_grpc.ProfileServiceStub(channel), bare_suite.databases.backend
        )
    finally:
        await channel.close()
        await bus.close()


def event(kind: "common_pb2.EventType", user_id: str, **fields: dict[str, Any]) -> common_pb2.Event:
    made = common_pb2.Event(message_id=uuid.uuid4().hex, type=kind, user_id=user_id)
    made.timestamp.FromDatetime(T0)
    if kind == TRACK:
        made.event = "viewed"
    if "traits" in fields:
        made.traits.update(fields["traits"])
    return made


def nan_trait(user_id: str) -> common_pb2.Event:
    """An identify whose trait is NaN, which JSON cannot carry: fails on every database."""
    return event(IDENTIFY, user_id, traits={"email": PERSONAL, "score": float("nan")})


def nul_trait(user_id: str) -> common_pb2.Event:
    """An identify whose trait holds U+0000, which PostgreSQL cannot store in text or jsonb."""
    return event(IDENTIFY, user_id, traits={"nickname": f"{PERSONAL}\x00"})


POISONS: dict[str, tuple[Callable[[str], common_pb2.Event], set[str]]] = {
    "nan-trait": (nan_trait, {"sqlite", "postgres"}),
    # SQLite stores U+0000 in text; only PostgreSQL refuses it.
    "nul-trait": (nul_trait, {"postgres"}),
}


async def profile_of(stub: profile_pb2_grpc.ProfileServiceStub, user_id: str) -> Any:
    return await stub.GetProfile(profile_pb2.GetProfileRequest(user_id=user_id), metadata=auth())


# Each poison on each configured database that refuses it.
CASES = [
    (poison, backend)
    for poison, (_, refused_by) in sorted(POISONS.items())
    for backend in BACKENDS
    if backend in refused_by
]


@pytest.mark.parametrize(("poison", "databases"), CASES, indirect=["databases"])
async def test_one_poisoned_event_is_dead_lettered_alone_and_the_rest_applied(
    segments: Segments, poison: str
) -> None:
    make, _ = POISONS[poison]
    valid = [
        event(IDENTIFY, "ann", traits={"plan": "pro"}),
        event(TRACK, "bob"),
        event(IDENTIFY, "cyd", traits={"plan": "free"}),
    ]
    poisoned = make("eve")
    batch = bus_pb2.EventBatch(
        id=uuid.uuid4().hex, workspace=WORKSPACE, events=[valid[0], poisoned, *valid[1:]]
    )
    subject = subjects.events(WORKSPACE, "ann", 8)
    await segments.bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)
    durable = partition_consumer(int(subject.rsplit(".", 1)[1])).durable

    # Applied in order after the poisoned event: once it is there, the batch has been handled.
    cyd = await eventually(lambda: profile_of(segments.profiles, "cyd"), timeout=10)
    assert cyd.traits["plan"] == "free"
    ann = await profile_of(segments.profiles, "ann")
    assert ann.traits["plan"] == "pro"
    bob = await profile_of(segments.profiles, "bob")
    assert bob.event_stats["viewed"].count == 1
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await profile_of(segments.profiles, "eve")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    [parked] = await dead_letters(segments.bus, EVENTS_DEAD_LETTERS)
    alone = bus_pb2.EventBatch.FromString(parked.data or b"")
    assert alone.id == f"{batch.id}:1"
    assert alone.workspace == WORKSPACE
    assert [e.message_id for e in alone.events] == [poisoned.message_id]
    headers = parked.headers or {}
    assert headers["Engage-Consumer"] == EVENTS_DEAD_LETTERS
    assert headers["Engage-Workspace"] == WORKSPACE
    assert headers["Engage-Error"]
    assert all(PERSONAL not in value for value in headers.values())

    # The message itself was acknowledged: nothing pending, nothing redelivered.
    async def settled() -> bool:
        info = await segments.bus.js.consumer_info("EVENTS", durable)
        return bool(info.num_ack_pending == 0 and info.num_redelivered == 0)

    assert await eventually(settled, timeout=10)


def _statement_error(kind: type[exc.DBAPIError], cause: Exception) -> exc.DBAPIError:
    return kind("INSERT INTO profiles (id) VALUES ($1)", None, cause)


class _DriverError(Exception):
    """What asyncpg's adapter carries inside a bare DBAPIError: the error's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (_statement_error(exc.DataError, ValueError("refused")), True),
        (_statement_error(exc.IntegrityError, ValueError("duplicate")), True),
        (_statement_error(exc.DBAPIError, _DriverError("22P05")), True),
        (_statement_error(exc.DBAPIError, _DriverError("23505")), True),
        (_statement_error(exc.DBAPIError, _DriverError("08006")), False),
        (_statement_error(exc.DBAPIError, _DriverError("57014")), False),
        (exc.StatementError("bind", "INSERT", None, TypeError("not a str")), True),
        (ValueError("Fail to serialize NaN"), True),
        (PermanentError("undecodable"), True),
        (_statement_error(exc.OperationalError, ConnectionError("gone")), False),
        (_statement_error(exc.InterfaceError, ConnectionError("closed")), False),
        (TimeoutError(), False),
        (ConnectionRefusedError(), False),
        (ConcurrentMerge("merged meanwhile"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_errors_on_the_data_are_permanent(error: BaseException, permanent: bool) -> None:
    # Transient ones fail the whole message, which the bus retries with backoff.
    assert is_permanent(error) is permanent
