"""The timed-segment sweeper: a segment whose rule cannot run on some stored value is logged and
skipped while every other segment of every workspace still flips (in-process on a moved clock,
on SQLite and PostgreSQL), and the real service process flips a time-based segment by itself.
"""

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db, subjects
from engage.bus import Bus
from engage.principal import Principal, current_principal
from engage.v1 import (
    bus_pb2,
    common_pb2,
    profile_pb2,
    profile_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from engage_cli.rules_yaml import from_yaml
from services.segments.event_applier import EventApplier
from services.segments.segment_store import SegmentStore
from services.segments.segments_api import SegmentApi
from services.segments.timed import TimedSweeper
from tests.harness import (
    MARKETER_KEY,
    POSTGRES_URL,
    Databases,
    MembershipFeed,
    Suite,
    auth,
    eventually,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
TRACK = common_pb2.EVENT_TYPE_TRACK
OVERDUE = "{trait: prescribed_at, before: {ago: 18d}}"
# Reads event properties as jsonb on PostgreSQL, which refuses a stored `\u0000` escape.
NOTED = "{event: noted, within: 30d, where: [{property: note, equals: hello}]}"
NOTE = "call me at jane.roe@example.com\x00"


@pytest.fixture
async def sessions(databases: Databases) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = await asyncio.to_thread(databases.url, "segments")
    engine, sessions = await db.open_database(
        url, Path(services.segments.__file__).parent / "migrations"
    )
    yield sessions
    await engine.dispose()


def event(kind: "common_pb2.EventType", user_id: str, **fields: Any) -> common_pb2.Event:
    made = common_pb2.Event(message_id=uuid.uuid4().hex, type=kind, user_id=user_id)
    made.timestamp.FromDatetime(T0)
    made.event = fields.get("name", "")
    if "traits" in fields:
        made.traits.update(fields["traits"])
    if "properties" in fields:
        made.properties.update(fields["properties"])
    return made


async def apply(
    sessions: async_sessionmaker[AsyncSession], workspace: str, *events: common_pb2.Event
) -> None:
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=workspace, events=list(events))
    async with db.transaction(sessions, workspace) as session:
        assert await EventApplier(session, workspace, clock=lambda: T0).apply(batch)


async def create(
    sessions: async_sessionmaker[AsyncSession], workspace: str, segment_id: str, rule: str
) -> None:
    current_principal.set(Principal(workspace, frozenset({"admin"})))
    request = segment_pb2.CreateSegmentRequest(
        parent=f"workspaces/{workspace}",
        segment_id=segment_id,
        segment=segment_pb2.Segment(rule=from_yaml(rule)),
    )
    await SegmentApi(sessions, lambda: None, clock=lambda: T0).CreateSegment(request, None)


async def members(
    sessions: async_sessionmaker[AsyncSession], workspace: str, segment_id: str
) -> list[str]:
    async with db.reading(sessions, workspace) as session:
        return await SegmentStore(session, workspace).members_after(segment_id, "", 100)


if POSTGRES_URL:
    # SQLite reads every value this service stores; PostgreSQL refuses some. Defined only where
    # there is a PostgreSQL, so it is never a skipped test.

    @pytest.mark.parametrize("databases", ["postgres"], indirect=True)
    async def test_a_segment_that_cannot_run_is_logged_and_the_sweep_goes_on(
        sessions: async_sessionmaker[AsyncSession],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # Sorted first, so it is swept before the segments that must still flip.
        await create(sessions, "acme", "a-noted", NOTED)
        await create(sessions, "acme", "payment-overdue", OVERDUE)
        await create(sessions, "zeta", "payment-overdue", OVERDUE)
        prescribed = {"prescribed_at": T0.isoformat()}
        await apply(sessions, "acme", event(TRACK, "u0", name="noted", properties={"note": NOTE}))
        await apply(sessions, "acme", event(IDENTIFY, "u1", traits=prescribed))
        await apply(sessions, "zeta", event(IDENTIFY, "u1", traits=prescribed))
        sweeper = TimedSweeper(sessions, lambda: None, lambda: T0 + timedelta(days=18, seconds=1))

        with caplog.at_level(logging.INFO, logger="services.segments"):
            assert await sweeper.sweep() == (2, 0)

        assert len(await members(sessions, "acme", "payment-overdue")) == 1
        assert len(await members(sessions, "zeta", "payment-overdue")) == 1
        [failed] = [
            r for r in caplog.records if r.getMessage().startswith("time sweep of a segment")
        ]
        assert (failed.levelno, failed.__dict__["workspace"], failed.__dict__["segment"]) == (
            logging.ERROR,
            "acme",
            "a-noted",
        )
        logged = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
        assert "jane.roe" not in logged and "call me" not in logged


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_a_sweep_with_nothing_to_change_does_not_wait_for_the_writer(
    databases: Databases,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLite has one writer, the event applier; a sweep only reads until it finds a change."""
    await create(sessions, "acme", "payment-overdue", OVERDUE)
    await apply(sessions, "acme", event(IDENTIFY, "u1", traits={"prescribed_at": T0.isoformat()}))
    overdue = TimedSweeper(sessions, lambda: None, lambda: T0 + timedelta(days=19))
    assert await overdue.sweep() == (1, 0)
    writer = sqlite3.connect(databases.folder / "segments.db")
    try:
        writer.execute("BEGIN IMMEDIATE")
        later = TimedSweeper(sessions, lambda: None, lambda: T0 + timedelta(days=20))
        with caplog.at_level(logging.ERROR, logger="services.segments"):
            assert await later.sweep() == (0, 0)
        assert not caplog.records
    finally:
        writer.rollback()
        writer.close()
    assert await members(sessions, "acme", "payment-overdue") != []


# --- the real service process sweeps by itself --------------------------------------------


@pytest.fixture
async def segments(bare_suite: Suite) -> AsyncIterator[segment_pb2_grpc.SegmentServiceStub]:
    bare_suite.env["ENGAGE_TIMED_SWEEP_SECONDS"] = "0.5"
    await asyncio.to_thread(bare_suite.start, "segments")
    channel = bare_suite.channel("segments")
    yield segment_pb2_grpc.SegmentServiceStub(channel)
    await channel.close()


async def test_the_service_flips_a_time_based_segment_by_itself(
    bare_suite: Suite, segments: segment_pb2_grpc.SegmentServiceStub
) -> None:
    bus = await Bus.open(bare_suite.nats.url, "test")
    try:
        await segments.CreateSegment(
            segment_pb2.CreateSegmentRequest(
                parent="workspaces/acme",
                segment_id="trial-ended",
                segment=segment_pb2.Segment(rule=from_yaml("{trait: trial_ends_at, before: now}")),
            ),
            metadata=auth(MARKETER_KEY),
        )
        changes = await MembershipFeed.watch(bus, "acme")
        ends = datetime.now(UTC) + timedelta(seconds=4)
        identify = event(IDENTIFY, "trialist", traits={"trial_ends_at": ends.isoformat()})
        identify.timestamp.FromDatetime(datetime.now(UTC))
        batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace="acme", events=[identify])
        await bus.publish(subjects.events("acme", "trialist", 8), batch, f"acme:{batch.id}", "acme")

        # Applied while the trial still runs, the identify leaves the profile out; no event
        # follows, so only the sweeper's loop can bring it in once the time has passed.
        await eventually(lambda: _profile(bare_suite, "trialist"))
        assert datetime.now(UTC) < ends, "the identify was applied too late to prove the sweep"
        entered = await changes.next(timeout=15)
        assert datetime.now(UTC) >= ends
        assert entered.change == bus_pb2.MembershipChanged.CHANGE_ENTERED
        assert entered.segment == "workspaces/acme/segments/trial-ended"
        assert entered.user_id == "trialist"
    finally:
        await bus.close()


async def _profile(suite: Suite, user_id: str) -> profile_pb2.Profile:
    channel = suite.channel("segments")
    try:
        request = profile_pb2.GetProfileRequest(user_id=user_id)
        found: profile_pb2.Profile = await profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            request, metadata=auth()
        )
        return found
    finally:
        await channel.close()
