"""Events through ingest into segments: the sustained apply rate and the lag, beside ingest's
acceptance rate in the same run, and the membership latency at a steady 2,000 events/s.

Starts its own nats-server, ingest, the scheduler (the other consumer of EVENTS) and one or
more segments replicas (each owning a share of the EVENTS partitions), on SQLite or, with
--postgres, on PostgreSQL databases of its own (dropped at the end). 50 live segments of the
kinds marketers write (bench/segments.py) are created first; then
1. latency: a steady --latency-rate events/s for --latency-seconds, among them probes (a new
   user's `probe_hit`, which one segment counts); each probe is timed from ingest's
   acknowledgement of its call to its `entered` change on the bus;
2. throughput: Batch calls of --batch-size events, as fast as ingest accepts them, for
   --seconds; every second prints what ingest has accepted, what segments has applied (rows in
   its event history) and the lag between them, then waits for segments to catch up.
Figures are noisy on a machine shared with other work; the lines say what ran beside.

    .venv/bin/python -m bench.pipeline [--replicas 1 2] [--seconds 20] [--postgres URL]
"""

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import grpc
from nats.aio.msg import Msg
from sqlalchemy.engine import make_url

from bench.segments import live_segments, machine
from engage.bus import Bus
from engage.settings import DEVELOPMENT_API_KEY
from engage.v1 import (
    bus_pb2,
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from engage_cli.processes import NatsServer, ServiceProcess
from engage_cli.rules_yaml import from_yaml

WORKSPACE = "demo"
METADATA = (("x-api-key", DEVELOPMENT_API_KEY),)
USERS = 20_000
PROBE_SEGMENT = "s-probe"
TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY


class Databases:
    """One database per service: SQLite files, or PostgreSQL databases made and dropped here."""

    def __init__(self, folder: Path, postgres: str) -> None:
        self.folder = folder
        self.postgres = postgres
        self.made: list[str] = []

    async def url(self, service: str) -> str:
        if not self.postgres:
            return f"sqlite+aiosqlite:///{self.folder / service}.db"
        name = f"engage_bench_{service}_{uuid.uuid4().hex[:8]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        url = make_url(self.postgres).set(drivername="postgresql+asyncpg", database=name)
        return url.render_as_string(hide_password=False)

    async def applied(self, url: str) -> int:
        """Events in the segments history: max(rowid) on SQLite (constant time), the insert
        counter of the statistics collector on PostgreSQL (a count would scan)."""
        if not self.postgres:
            path = make_url(url).database or ""
            return await asyncio.to_thread(_sqlite_max_rowid, path)
        connection = await asyncpg.connect(_plain(url))
        try:
            found = await connection.fetchval(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'profile_events'"
            )
            return int(found or 0)
        finally:
            await connection.close()

    async def drop_all(self) -> None:
        for name in self.made:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(_plain(self.postgres))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_max_rowid(path: str) -> int:
    connection = sqlite3.connect(path, timeout=10)
    try:
        return int(connection.execute("SELECT max(rowid) FROM profile_events").fetchone()[0] or 0)
    finally:
        connection.close()


class Pipeline:
    """nats-server, ingest, scheduler and the segments replicas, as processes."""

    def __init__(self, root: Path, databases: Databases, replicas: int) -> None:
        self.root = root
        self.databases = databases
        self.replicas = replicas
        self.nats = NatsServer(root / "nats")
        self.processes: list[ServiceProcess] = []
        self.segments_url = ""

    async def start(self) -> None:
        self.nats.start()
        common = {
            "ENGAGE_NATS_URL": self.nats.url,
            "ENGAGE_GRPC_PORT": "0",
            "ENGAGE_HTTP_PORT": "0",
            "ENGAGE_VAR_DIR": str(self.root),
            "ENGAGE_LOG_LEVEL": "WARNING",
        }
        self.segments_url = await self.databases.url("segments")
        for index in range(self.replicas):
            env = {
                **common,
                "ENGAGE_DATABASE_URL": self.segments_url,
                "ENGAGE_REPLICA_INDEX": str(index),
                "ENGAGE_REPLICA_COUNT": str(self.replicas),
            }
            self._spawn("segments", env, f"segments-{index}")
        await asyncio.to_thread(self._ready)
        scheduler = {
            **common,
            "ENGAGE_DATABASE_URL": await self.databases.url("scheduler"),
            "ENGAGE_PROFILE_SERVICE_ADDRESS": self.processes[0].address,
        }
        self._spawn("scheduler", scheduler, "scheduler")
        self._spawn("ingest", common, "ingest")
        await asyncio.to_thread(self._ready)

    def _spawn(self, service: str, env: dict[str, str], label: str) -> None:
        folder = self.root / label
        process = ServiceProcess(service, env, folder, folder / f"{service}.log")
        process.start()
        self.processes.append(process)

    def _ready(self) -> None:
        for process in self.processes:
            if not process.address:
                process.wait_ready()

    def address(self, service: str) -> str:
        return next(p.address for p in self.processes if p.name == service)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.nats.stop()


async def create_segments(channel: grpc.aio.Channel) -> None:
    stub = segment_pb2_grpc.SegmentServiceStub(channel)
    rules = [*live_segments()[:49], (PROBE_SEGMENT, "{event: probe_hit}")]
    for segment_id, rule in rules:
        request = segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{WORKSPACE}",
            segment_id=segment_id,
            segment=segment_pb2.Segment(rule=from_yaml(rule)),
        )
        await stub.CreateSegment(request, metadata=METADATA)


def random_event(rng: random.Random) -> common_pb2.Event:
    """Views, actions, purchases and identifies of USERS users, as a shop sends them."""
    user = f"u-{rng.randrange(USERS)}"
    roll = rng.random()
    event = common_pb2.Event(user_id=user, message_id=uuid.uuid4().hex)
    if roll < 0.45:
        event.type, event.event = TRACK, "viewed"
        event.properties.update({"category": f"cat-{rng.randrange(8)}"})
    elif roll < 0.8:
        event.type, event.event = TRACK, f"action-{rng.randrange(10)}"
    elif roll < 0.85:
        event.type, event.event = TRACK, "purchase"
    else:
        event.type = IDENTIFY
        event.traits.update(
            {"plan": f"plan-{rng.randrange(7)}", "score": rng.randrange(60), "country": "JP"}
        )
    return event


async def throughput(
    pipeline: Pipeline, ingest: ingest_pb2_grpc.IngestServiceStub, seconds: float, size: int
) -> None:
    rng = random.Random(7)
    accepted = 0
    stop_at = time.monotonic() + seconds

    async def sender() -> None:
        nonlocal accepted
        while time.monotonic() < stop_at:
            events = [random_event(rng) for _ in range(size)]
            answer = await ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=METADATA)
            accepted += answer.accepted_count

    base = await pipeline.databases.applied(pipeline.segments_url)
    started = time.monotonic()
    senders = [asyncio.create_task(sender()) for _ in range(4)]
    print(" second  ingest accepted  segments applied      lag  (events)")
    applied = 0
    while not all(task.done() for task in senders) or applied < accepted:
        await asyncio.sleep(1.0)
        applied = await pipeline.databases.applied(pipeline.segments_url) - base
        elapsed = time.monotonic() - started
        print(f" {elapsed:6.0f}  {accepted:15,}  {applied:16,}  {accepted - applied:7,}")
        if elapsed > seconds * 20 + 60:
            print(" (segments did not catch up; stopped waiting)")
            break
    caught_up = time.monotonic() - started
    await asyncio.gather(*senders)
    print(
        f"ingest accepted {accepted / seconds:,.0f} events/s for {seconds:.0f} s; segments "
        f"applied them at {applied / caught_up:,.0f} events/s sustained "
        f"(all {applied:,} applied {caught_up:.1f} s after the start)"
    )


async def latency(
    pipeline: Pipeline,
    ingest: ingest_pb2_grpc.IngestServiceStub,
    rate: float,
    seconds: float,
) -> None:
    bus = await Bus.connect(pipeline.nats.url, "bench")
    acked: dict[str, float] = {}
    entered: dict[str, float] = {}

    async def on_membership(message: Msg) -> None:
        for change in bus_pb2.MembershipChanges.FromString(message.data).changes:
            if change.segment.endswith(f"/{PROBE_SEGMENT}") and change.change == 1:
                entered.setdefault(change.user_id, time.monotonic())

    subscription = await bus.client.subscribe(f"engage.memberships.{WORKSPACE}", cb=on_membership)
    rng = random.Random(11)
    tick = 0.05  # a call every 50 ms, each of rate/20 events, one of them a probe
    per_call = max(1, int(rate * tick))
    started = time.monotonic()
    calls = []

    async def call(events: list[common_pb2.Event], probe: str) -> None:
        await ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=METADATA)
        acked[probe] = time.monotonic()

    n = 0
    while time.monotonic() - started < seconds:
        probe = f"probe-{uuid.uuid4().hex[:12]}"
        hit = common_pb2.Event(type=TRACK, event="probe_hit", user_id=probe)
        events = [random_event(rng) for _ in range(per_call - 1)] + [hit]
        calls.append(asyncio.create_task(call(events, probe)))
        n += 1
        await asyncio.sleep(max(0.0, started + n * tick - time.monotonic()))
    await asyncio.gather(*calls)
    deadline = time.monotonic() + 30
    # Polling two growing dicts against a deadline; an Event would need the same check.
    while len(entered.keys() & acked.keys()) < len(acked) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await subscription.unsubscribe()
    await bus.close()
    waits = sorted(entered[p] - acked[p] for p in acked if p in entered)
    missing = len(acked) - len(waits)
    if not waits:
        print("membership latency: no probe entered")
        return
    p50 = statistics.median(waits) * 1000
    p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))] * 1000
    print(
        f"membership latency at {per_call / tick:,.0f} events/s ({len(waits)} probes"
        f"{f', {missing} never entered' if missing else ''}): ack → entered p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms, max {waits[-1] * 1000:.0f} ms"
    )


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


async def run(replicas: int, arguments: argparse.Namespace) -> None:
    backend = "PostgreSQL" if arguments.postgres else "SQLite"
    print(f"\n== {replicas} segments replica(s), {backend}, 50 live segments ==")
    with folder() as root:
        databases = Databases(root, arguments.postgres)
        pipeline = Pipeline(root, databases, replicas)
        try:
            await pipeline.start()
            async with grpc.aio.insecure_channel(pipeline.address("segments")) as segments:
                await create_segments(segments)
            async with grpc.aio.insecure_channel(pipeline.address("ingest")) as channel:
                ingest = ingest_pb2_grpc.IngestServiceStub(channel)
                # Latency first, on an idle pipeline: after the throughput run, the
                # membership changes it made are still leaving through the outbox.
                await latency(pipeline, ingest, arguments.latency_rate, arguments.latency_seconds)
                await throughput(pipeline, ingest, arguments.seconds, arguments.batch_size)
        finally:
            await asyncio.to_thread(pipeline.stop)
            await databases.drop_all()


async def main(arguments: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    for replicas in arguments.replicas:
        await run(replicas, arguments)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default="", help="e.g. postgresql://postgres@127.0.0.1:5432")
    asyncio.run(main(parser.parse_args()))
