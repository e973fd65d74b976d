"""Real time re-evaluates only the segments an event can change (a view of another category, a
trait change that flips none of a segment's conditions, leave it alone). Whatever it skips, the
memberships it keeps must be exactly those the rules give when evaluated in SQL over the whole
history: checked after every batch of seeded random events, on SQLite and PostgreSQL.
"""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from engage.principal import Principal, current_principal
from engage.v1 import bus_pb2, common_pb2, segment_pb2
from engage_cli.rules_yaml import from_yaml
from services.segments import realtime, rules_sql
from services.segments.batch import compiled
from services.segments.event_applier import EventApplier
from services.segments.models import MEMBERSHIPS
from services.segments.segment_store import SegmentStore
from services.segments.segments_api import SegmentApi
from tests.harness import Databases

WORKSPACE = "acme"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
USERS = [f"u{n}" for n in range(8)]
# Created in this order: a segment may read the ones before it.
SEGMENTS = {
    "pro": "{trait: plan, equals: pro}",
    "high-score": "{trait: score, greater_than: 40}",
    "tokyo": "{trait: address.city, equals: Tokyo}",
    "vip": "{trait: tags, contains: vip}",
    "shoes-twice": (
        "{event: viewed, at_least: 2, within: 20d, where: [{property: category, equals: shoes}]}"
    ),
    "at-most-one-bag": "{event: viewed, at_most: 1, where: [{property: category, equals: bags}]}",
    "no-big-order": "not: {event: purchase, where: [{property: amount, greater_than: 100}]}",
    "pro-shoes": "all: [{in_segment: pro}, {in_segment: shoes-twice}]",
    "tokyo-or-low": "any: [{in_segment: tokyo}, {trait: score, less_than: 10}]",
    "not-pro-shoes": "not: {in_segment: pro-shoes}",
}


@pytest.fixture
async def sessions(databases: Databases) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = await asyncio.to_thread(databases.url, "segments")
    engine, sessions = await db.open_database(
        url, Path(services.segments.__file__).parent / "migrations"
    )
    current_principal.set(Principal(WORKSPACE, frozenset({"admin"})))
    api = SegmentApi(sessions, lambda: None, clock=lambda: NOW)
    for segment_id, rule in SEGMENTS.items():
        request = segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{WORKSPACE}",
            segment_id=segment_id,
            segment=segment_pb2.Segment(rule=from_yaml(rule)),
        )
        await api.CreateSegment(request, None)
    yield sessions
    await engine.dispose()


def random_event(rng: random.Random) -> common_pb2.Event:
    event = common_pb2.Event(message_id=uuid.uuid4().hex, user_id=rng.choice(USERS))
    event.timestamp.FromDatetime(NOW - timedelta(days=rng.randrange(30)))
    roll = rng.random()
    if roll < 0.4:
        event.type, event.event = common_pb2.EVENT_TYPE_TRACK, "viewed"
        event.properties.update({"category": rng.choice(["shoes", "bags", "hats"])})
    elif roll < 0.55:
        event.type, event.event = common_pb2.EVENT_TYPE_TRACK, "purchase"
        event.properties.update({"amount": rng.choice([20, 100, 150, "180"])})
    else:
        event.type = common_pb2.EVENT_TYPE_IDENTIFY
        event.traits.update(random_traits(rng))
    return event


def random_traits(rng: random.Random) -> dict[str, Any]:
    choices: dict[str, list[Any]] = {
        "plan": ["pro", "free", None],
        "score": [5, 40, 41, "55", None],
        "address": [{"city": "Tokyo"}, {"city": "Osaka"}, None],
        "tags": [["vip", "new"], ["new"], "vip", None],
    }
    picked = rng.sample(sorted(choices), rng.randrange(1, 4))
    return {key: rng.choice(choices[key]) for key in picked}


async def stored_members(session: AsyncSession, segment_id: str) -> set[str]:
    rows = await session.exec(
        select(MEMBERSHIPS.c.profile_id).where(
            MEMBERSHIPS.c.workspace == WORKSPACE, MEMBERSHIPS.c.segment_id == segment_id
        )
    )
    return set(rows.all())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_real_time_memberships_equal_sql_after_every_batch(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rng = random.Random(seed)
    for round_number in range(12):
        events = [random_event(rng) for _ in range(rng.randrange(1, 15))]
        batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=events)
        async with db.transaction(sessions, WORKSPACE) as session:
            applier = EventApplier(session, WORKSPACE, clock=lambda: NOW)
            assert await applier.apply(batch) == len(events)
            await realtime.reevaluate_applied(session, applier, NOW)
        async with db.reading(sessions, WORKSPACE) as session:
            for segment in await SegmentStore(session, WORKSPACE).all():
                rule = compiled(segment).rule
                expected = set(await rules_sql.member_ids(session, WORKSPACE, rule, NOW))
                found = await stored_members(session, segment.id)
                assert found == expected, (round_number, segment.id)
