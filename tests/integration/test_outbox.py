"""The outbox relay on real parts: a row leaves the outbox only once JetStream acknowledged it,
and committed rows go out on the relay's own poll, whoever committed them."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, subjects
from engage.bus import Bus
from engage.outbox import OutboxMessage, OutboxRelay, create_outbox_table, enqueue
from engage.v1 import bus_pb2
from engage_cli.processes import NatsServer
from tests.harness import Databases, eventually

WORKSPACE = "acme"
SUBJECT = subjects.journeys(WORKSPACE)


@pytest.fixture
async def database_url(databases: Databases) -> str:
    """A fresh database (SQLite, and PostgreSQL when configured) holding an outbox table."""
    url = await asyncio.to_thread(databases.url, "outbox")
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate_outbox)
    await engine.dispose()
    return url


def migrate_outbox(connection: Connection) -> None:
    """The outbox migration step every publishing service's Alembic history runs."""
    with Operations.context(MigrationContext.configure(connection)):
        create_outbox_table()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    yield db.session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def relay_task(
    sessions: async_sessionmaker[AsyncSession], bus: Bus
) -> AsyncIterator[tuple[OutboxRelay, "asyncio.Task[None]"]]:
    """The real relay loop, running as the services run it."""
    relay = OutboxRelay(sessions, bus)
    task = asyncio.create_task(relay.run(idle_poll_seconds=0.2, retry_seconds=0.2))
    yield relay, task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def journey_event(event_id: str) -> bus_pb2.JourneyEvent:
    return bus_pb2.JourneyEvent(id=event_id, workspace=WORKSPACE, journey="j")


async def commit_row(sessions: async_sessionmaker[AsyncSession], event_id: str) -> None:
    async with db.transaction(sessions, WORKSPACE) as session:
        enqueue(session, SUBJECT, journey_event(event_id), event_id, WORKSPACE)


async def rows_left(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with db.reading(sessions, db.EVERY_WORKSPACE) as session:
        return (await session.exec(select(func.count()).select_from(OutboxMessage))).one()


async def outbox_is_empty(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return await rows_left(sessions) == 0


async def stored_on_subject(bus: Bus, event_id: str) -> int:
    """How many messages the JOURNEYS stream holds for SUBJECT carrying `event_id`."""
    info = await bus.js.stream_info("JOURNEYS", subjects_filter=SUBJECT)
    if info.state.messages == 0:
        return 0
    found = 0
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await bus.js.get_msg("JOURNEYS", sequence)
        if stored.subject == SUBJECT and (
            bus_pb2.JourneyEvent.FromString(stored.data or b"").id == event_id
        ):
            found += 1
    return found


async def test_a_row_stays_until_jetstream_acknowledges_it_then_goes_out_once(
    nats_server: NatsServer,
    sessions: async_sessionmaker[AsyncSession],
    bus: Bus,
    relay_task: tuple[OutboxRelay, "asyncio.Task[None]"],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="engage.outbox")
    relay, task = relay_task
    await asyncio.to_thread(nats_server.stop)
    try:
        await commit_row(sessions, "kept-1")
        relay.notify()

        # The relay tried and said it failed (the positive sign that the row was attempted),
        # or it wrongly dropped the row: whichever comes first.
        def relay_reported_a_failure() -> bool:
            return any(
                record.name == "engage.outbox" and record.levelno == logging.WARNING
                for record in caplog.records
            )

        async def attempted() -> bool:
            return relay_reported_a_failure() or await outbox_is_empty(sessions)

        await eventually(attempted, timeout=30)
        assert await rows_left(sessions) == 1, "a row left the outbox before any acknowledgement"
        assert not task.done(), "the relay must survive NATS being away"
    finally:
        await asyncio.to_thread(nats_server.start)  # same port, same store

    await eventually(lambda: outbox_is_empty(sessions), timeout=30)
    assert await stored_on_subject(bus, "kept-1") == 1
    assert (await bus.js.stream_info("JOURNEYS", subjects_filter=SUBJECT)).state.messages == 1
    assert not task.done()


async def test_the_relay_poll_publishes_rows_committed_by_another_writer(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    bus: Bus,
    relay_task: tuple[OutboxRelay, "asyncio.Task[None]"],
) -> None:
    # Another process's engine on the same database: nothing can call this relay's notify().
    other_engine = db.create_engine(database_url)
    try:
        await commit_row(db.session_factory(other_engine), "polled-1")
    finally:
        await other_engine.dispose()

    async def published() -> bool:
        return await stored_on_subject(bus, "polled-1") == 1

    await eventually(published)
    await eventually(lambda: outbox_is_empty(sessions))
    assert await stored_on_subject(bus, "polled-1") == 1


async def test_only_committed_rows_go_out_and_each_once(
    sessions: async_sessionmaker[AsyncSession],
    bus: Bus,
    relay_task: tuple[OutboxRelay, "asyncio.Task[None]"],
) -> None:
    relay, _task = relay_task
    await commit_row(sessions, "committed-1")
    with pytest.raises(RuntimeError):
        async with db.transaction(sessions, WORKSPACE) as session:
            enqueue(session, SUBJECT, journey_event("rolled-back"), "rolled-back", WORKSPACE)
            raise RuntimeError("rolled back: its message must never go out")
    await commit_row(sessions, "committed-2")
    relay.notify()

    # An empty table: every committed row is out.
    await eventually(lambda: stored_on_subject(bus, "committed-2"))
    await eventually(lambda: outbox_is_empty(sessions))
    assert await stored_on_subject(bus, "committed-1") == 1
    assert await stored_on_subject(bus, "rolled-back") == 0
    assert (await bus.js.stream_info("JOURNEYS", subjects_filter=SUBJECT)).state.messages == 2
