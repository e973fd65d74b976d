"""Segment evaluation cost: PreviewSegment over 100k and 1M profiles on PostgreSQL, and the
real-time re-evaluation per event with 50 live segments.

Creates (and drops) its own PostgreSQL databases. Profiles and events are generated in SQL
(`generate_series`), then:
1. PreviewSegment (count + sample of 10) of a story-1 rule — drug type is a pill, prescription
   confirmed in the last 18 days, no payment since — through the real servicer, in-process;
2. 50 segments (traits, counted and filtered events, `in_segment`, negations) over a few
   thousand profiles; batches of events are applied and the real-time re-evaluation timed.
Prints the figures with the machine they were measured on.

    .venv/bin/python bench/segments.py [--postgres postgresql://postgres@127.0.0.1:5432]
"""

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from engage.principal import Principal, current_principal
from engage.v1 import bus_pb2, common_pb2, segment_pb2
from engage_cli.rules_yaml import from_yaml
from services.segments import realtime
from services.segments.event_applier import EventApplier
from services.segments.segments_api import SegmentApi

WORKSPACE = "bench"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
STORY_1 = """
all:
  - {trait: drug_type, equals: pill}
  - {event: prescription_confirmed, within: 18d}
  - not: {event: payment_received}
"""

# Profile g: a pill user when g % 3 = 0; prescription confirmed g % 40 days ago when g is even;
# paid when g % 5 = 0; two page views each (noise the rule must skip).
PROFILES_SQL = """
INSERT INTO profiles (id, workspace, user_id, traits, trait_times, time_zone, locale,
                      created_at, updated_at, trait_dates, sample_bucket)
SELECT lpad(g::text, 10, '0'), :ws, 'u' || g,
       json_build_object('drug_type', CASE WHEN g % 3 = 0 THEN 'pill' ELSE 'patch' END,
                         'plan', CASE WHEN g % 4 = 0 THEN 'pro' ELSE 'free' END)::text,
       '{}', '', '', :now, :now, '{}', g % 10000
FROM generate_series(:low, :high) AS g
"""
EVENTS_SQL = """
INSERT INTO profile_events (workspace, message_id, profile_id, type, event, timestamp, payload,
                            properties)
SELECT :ws, e.name || '-' || g || '-' || e.n, lpad(g::text, 10, '0'), 1, e.name,
       :now - make_interval(days => (g + e.n) % 40), '\\x'::bytea, '{}'
FROM generate_series(:low, :high) AS g
CROSS JOIN LATERAL (VALUES ('prescription_confirmed', 0, g % 2 = 0),
                           ('payment_received', 1, g % 5 = 0),
                           ('page_viewed', 2, true), ('page_viewed', 3, true)) AS e(name, n, keep)
WHERE e.keep
"""


class Database:
    """A PostgreSQL database of the bench's own, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"engage_bench_segments_{uuid.uuid4().hex[:8]}"

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(f"{self.server}/postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def create(self) -> str:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        url = make_url(f"{self.server}/{self.name}").set(drivername="postgresql+asyncpg")
        return url.render_as_string(hide_password=False)

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def generate(sessions: async_sessionmaker[AsyncSession], low: int, high: int) -> float:
    started = time.perf_counter()
    params = {"ws": WORKSPACE, "now": NOW, "low": low, "high": high}
    async with db.transaction(sessions, WORKSPACE) as session:
        connection = await session.connection()
        await connection.execute(sa.text(PROFILES_SQL).bindparams(**params))
        await connection.execute(sa.text(EVENTS_SQL).bindparams(**params))
    await analyze(sessions)
    return time.perf_counter() - started


async def analyze(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with db.transaction(sessions, WORKSPACE) as session:
        await (await session.connection()).execute(sa.text("ANALYZE"))


async def preview(api: SegmentApi, runs: int) -> tuple[list[float], int]:
    request = segment_pb2.PreviewSegmentRequest(
        parent=f"workspaces/{WORKSPACE}", rule=from_yaml(STORY_1), sample_size=10
    )
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        answer = await api.PreviewSegment(request, None)
        times.append(time.perf_counter() - started)
        count = answer.member_count
    return times, count


def live_segments() -> list[tuple[str, str]]:
    """50 rules of the kinds marketers write, reading overlapping traits and events."""
    made: list[tuple[str, str]] = []
    for i in range(50):
        kind = i % 5
        if kind == 0:
            rule = f"{{trait: plan, equals: plan-{i % 7}}}"
        elif kind == 1:
            rule = f"{{event: action-{i % 10}, at_least: 2, within: 7d}}"
        elif kind == 2:
            rule = f"all: [{{trait: country, in: [JP, US, c-{i}]}}, not: {{event: purchase}}]"
        elif kind == 3:
            rule = f"any: [{{in_segment: s-{i - 3:02}}}, {{trait: score, greater_than: {i}}}]"
        else:
            rule = (
                "{event: viewed, within: 30d, "
                f"where: [{{property: category, equals: cat-{i % 8}}}]}}"
            )
        made.append((f"s-{i:02}", rule))
    return made


def batch_of(size: int, seq: int, profiles: int) -> bus_pb2.EventBatch:
    """`size` events on `size` different profiles: views, actions and identifies."""
    events = []
    for n in range(size):
        user = f"rt-{(seq * size + n) % profiles}"
        event = common_pb2.Event(message_id=uuid.uuid4().hex, user_id=user)
        event.timestamp.FromDatetime(NOW)
        if n % 3 == 0:
            event.type, event.event = common_pb2.EVENT_TYPE_TRACK, "viewed"
            event.properties.update({"category": f"cat-{n % 8}"})
        elif n % 3 == 1:
            event.type, event.event = common_pb2.EVENT_TYPE_TRACK, f"action-{n % 10}"
        else:
            event.type = common_pb2.EVENT_TYPE_IDENTIFY
            event.traits.update({"score": n % 60, "plan": f"plan-{n % 7}", "country": "JP"})
        events.append(event)
    return bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=events)


async def realtime_cost(
    sessions: async_sessionmaker[AsyncSession], batches: int, size: int
) -> tuple[float, float, int]:
    """(µs per event re-evaluating, µs per event applying, membership changes)."""
    api = SegmentApi(sessions, lambda: None, clock=lambda: NOW)
    for segment_id, rule in live_segments():
        request = segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{WORKSPACE}",
            segment_id=segment_id,
            segment=segment_pb2.Segment(rule=from_yaml(rule)),
        )
        await api.CreateSegment(request, None)
    profiles = 2000
    for seq in range(profiles // size):  # every profile exists and has some history first
        await apply_and_evaluate(sessions, batch_of(size, seq, profiles))
    # Steady state: autovacuum keeps statistics current in production; without them, the
    # generic plan PostgreSQL picks after five runs of a prepared statement misses the index.
    await analyze(sessions)
    evaluating = applying = 0.0
    changes = 0
    for seq in range(batches):
        spent = await apply_and_evaluate(sessions, batch_of(size, seq + 7, profiles))
        applying, evaluating, changes = (
            applying + spent[0],
            evaluating + spent[1],
            changes + spent[2],
        )
    events = batches * size
    return evaluating / events * 1e6, applying / events * 1e6, changes


async def apply_and_evaluate(
    sessions: async_sessionmaker[AsyncSession], batch: bus_pb2.EventBatch
) -> tuple[float, float, int]:
    async with db.transaction(sessions, WORKSPACE) as session:
        started = time.perf_counter()
        applier = EventApplier(session, WORKSPACE, clock=lambda: NOW)
        await applier.apply(batch)
        applied = time.perf_counter()
        transitions = await realtime.reevaluate_applied(session, applier, NOW)
        evaluated = time.perf_counter()
    return applied - started, evaluated - applied, len(transitions)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


async def main(server: str, runs: int, batches: int, size: int) -> None:
    print(f"machine: {machine()}")
    current_principal.set(Principal(WORKSPACE, frozenset({"admin"})))
    database = Database(server)
    engine, sessions = await db.open_database(await database.create(), MIGRATIONS)
    try:
        api = SegmentApi(sessions, lambda: None, clock=lambda: NOW)
        low = 1
        for total in (100_000, 1_000_000):
            spent = await generate(sessions, low, total)
            low = total + 1
            await preview(api, 1)  # warm the cache
            times, count = await preview(api, runs)
            print(
                f"PreviewSegment over {total:>9,} profiles: median "
                f"{statistics.median(times) * 1000:7.1f} ms, max {max(times) * 1000:7.1f} ms "
                f"({count:,} members; rows generated in {spent:.1f} s)"
            )
    finally:
        await engine.dispose()
        await database.drop()
    database = Database(server)
    engine, sessions = await db.open_database(await database.create(), MIGRATIONS)
    try:
        evaluating, applying, changes = await realtime_cost(sessions, batches, size)
        print(
            f"real-time with 50 segments: {evaluating:.0f} µs/event re-evaluating "
            f"(+{applying:.0f} µs/event applying the batch), batches of {size}, "
            f"{batches * size} events, {changes} membership changes"
        )
    finally:
        await engine.dispose()
        await database.drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=100)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.postgres, arguments.runs, arguments.batches, arguments.batch_size))
