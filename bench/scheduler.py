"""The scheduler: trigger → send latency, idle and under load, durable timers fired per second
and a campaign's broadcast in recipients per second, each beside the raw ceiling of its parts
measured in the same run.

Starts its own nats-server, segments (whose WorkspaceService gives the scheduler each
workspace's messaging policy, without which it sends nothing), the scheduler and ingest, as
bench/pipeline.py does, on SQLite or, with --postgres, on PostgreSQL databases of their own
(dropped at the end); the services read a clock this bench moves (ENGAGE_CLOCK_OFFSET_FILE) and
the scheduler looks for due timers every 0.1 s. Every send request is seen as it crosses the
wire, by a core NATS subscription on `engage.sends.>` in this process.
1. latency: an active journey sends one email on `probe`; --probes new users each send `probe`
   in a gRPC Track call, one after the other (the next 20 ms after the last one's send was
   seen), each timed from Track's answer to its send request on the wire. First idle, then
   beside --background-rate events/s of other TRACK events (Batch calls of 100 among 50,000
   users), whose accepted rate is printed. Ceiling, measured beside each: the bare bus, a core
   NATS publish to a subscriber, and the two hops Engage makes without gRPC or a database: a
   JetStream publish acknowledged, fetched by a pull consumer (in this process, 64 at a time
   as the scheduler fetches), published again and seen by the subscriber.
2. timers: --timers users enter a journey of send `first`, wait 1 day, send `second` (Batch
   calls of 500), timed until every `first` send is seen; then the clock moves on a day
   (`engage.clock.move_clock`) and the time until the last `second` send is seen is timed.
   Ceiling: the same database server's raw write rate, as many rows of an enrollment's width
   inserted, updated and deleted, 500 a transaction, through SQLAlchemy Core as the scheduler
   writes (`engage.db.insert_many`, an executemany update, a delete by ids) in a scratch
   database (SQLite: a file beside); and JetStream's rate of acknowledged publishes, 200 at
   once as the outbox relay makes them, into a scratch stream. Each is divided by the rows a
   step writes (as the code stands) and the messages it published (counted on the wire).
3. broadcast: --recipients users are identified with the trait `plan: gold` (ingest's Batch,
   500 a call) until segments has applied them all (PreviewSegment of `{trait: plan, equals:
   gold}`) and the bus has settled (segments' membership changes relayed, the scheduler's
   consumers idle); a segment of that rule is created, then a campaign (SCHEDULED, no send time:
   due at once; email, one template), timed from its CreateCampaign call until its last send is
   seen on the wire (recipients/s), and until GetCampaign (polled every 0.1 s) answers
   `progress.audience_done` with every recipient queued. Ceiling: the parts a broadcast uses,
   each alone: ListSegmentMembers of that segment streamed to this process (members/s); the
   store's and JetStream's rates above, divided by the rows a recipient writes and the messages
   it publishes; the lowest is named.
Figures are noisy on a shared 2-core machine where this process, nats-server and the three
services run together; each line gives the share of a core each service used meanwhile.

    .venv/bin/python -m bench.scheduler [--probes 300] [--background-rate 2000]
        [--timers 10000] [--recipients 100000] [--only latency,timers,broadcast]
        [--postgres URL]
"""

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
import sqlalchemy as sa
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.ingest import cpu_seconds, machine
from bench.pipeline import Databases, Pipeline, folder
from bench.thin_path import percentile
from engage import db
from engage.bus import MSG_ID_HEADER, WORKSPACE_HEADER, Bus
from engage.clock import move_clock
from engage.outbox import RELAY_BATCH
from engage.settings import DEVELOPMENT_API_KEY
from engage.v1 import (
    bus_pb2,
    campaign_pb2,
    campaign_pb2_grpc,
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from engage_cli.rules_yaml import from_yaml
from services.scheduler.consumers import EVENTS as SCHEDULER_EVENTS
from services.scheduler.consumers import MEMBERSHIPS as SCHEDULER_MEMBERSHIPS

WORKSPACE = "demo"
PARENT = f"workspaces/{WORKSPACE}"
TEMPLATE = f"{PARENT}/templates/welcome"
METADATA = (("x-api-key", DEVELOPMENT_API_KEY),)
TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
DAY = timedelta(days=1)
PROBE_EVENT, PROBE_STEP = "probe", "email"
TIMER_EVENT = "timer_start"
PROBE_PAUSE = 0.02
PROBE_TIMEOUT = 10.0
WARM_UP_PROBES = 5
BACKGROUND_BATCH = 100
BACKGROUND_USERS = 50_000
BACKGROUND_EVENTS = ("viewed", "added_to_cart", "searched", "clicked")
ENTRY_BATCH = 500
ROWS_PER_TRANSACTION = 500
HOPS_STREAM = "BENCH_HOPS"
PUBLISH_STREAM = "BENCH_PUBLISH"
SERVICES = ("scheduler", "segments", "ingest")
TIMEOUT = 600.0
# Rows a step of the timer journey writes, as the scheduler's code stands (enrollment_store.save,
# ledger.record_sends). Entering: the enrollment, its timer and the send's ledger row. Firing:
# the enrollment updated, its timer deleted, a ledger row. The bus messages (a transaction's
# sends and journey events, bundled by outgoing.outbox_rows) share outbox rows, a few per
# thousand steps, and are left out.
ROWS_PER_ENROLLMENT = 1 + 1 + 1
ROWS_PER_TIMER = 1 + 1 + 1
# A recipient queued (campaign_store.record_chunk): its recipient row and its ledger row
# (besides the campaign's row, once per 1,000 members, and the bundled sends' outbox rows).
ROWS_PER_RECIPIENT = 1 + 1
GOLD_RULE = "{trait: plan, equals: gold}"
SEGMENT_ID = "gold"
CAMPAIGN_ID = "broadcast"
# Seconds between looks at what segments has applied, the bus, and the campaign's progress.
APPLIED_POLL = 1.0
SETTLED_POLL = 1.0
PROGRESS_POLL = 0.1

# An enrollment's width (journey_enrollments: 15 columns besides the id).
SCRATCH = sa.Table(
    "bench_rows",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    *(sa.Column(name, sa.String) for name in ("workspace", "journey_id", "profile_key")),
    *(sa.Column(name, sa.String) for name in ("enrollment_id", "user_id", "anonymous_id")),
    *(sa.Column(name, sa.String) for name in ("trigger_message_id", "step_id", "active_key")),
    *(sa.Column(name, sa.String) for name in ("awaiting_event", "last_send_key")),
    *(sa.Column(name, sa.Integer) for name in ("journey_version", "status", "position")),
    sa.Column("enrolled_at", db.INSTANT),
    sa.Column("finished_at", db.INSTANT, nullable=True),
)
SCRATCH_UPDATE = (
    sa.update(SCRATCH)
    .where(SCRATCH.c.id == sa.bindparam("p_id"))
    .values(
        status=sa.bindparam("p_status"),
        step_id=sa.bindparam("p_step_id"),
        position=sa.bindparam("p_position"),
        finished_at=sa.bindparam("p_finished_at"),
    )
)


def cpu_of(pipeline: Pipeline, service: str) -> float:
    """CPU seconds the service's process has used so far."""
    process = next(p.process for p in pipeline.processes if p.name == service)
    return cpu_seconds(process.pid) if process else 0.0


class Tap:
    """Messages as they cross the wire (a core NATS subscription): when each key (a message
    holds one or more) was first seen, and how many keys of each kind."""

    def __init__(self, read: Callable[[Msg], list[tuple[str, str]]]) -> None:
        self.read = read
        self.seen: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        # Every message, repeats included.
        self.messages = 0
        self._arrived = asyncio.Event()

    async def on_message(self, message: Msg) -> None:
        at = time.monotonic()
        self.messages += 1
        for key, kind in self.read(message):
            if key not in self.seen:
                self.seen[key] = at
                self.counts[kind] += 1
        self._arrived.set()

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds; False if it still does not after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return True

    async def first(self, key: str, timeout: float) -> float | None:
        """When `key` was first seen, waiting up to `timeout` seconds for it."""
        found = await self.until(lambda: key in self.seen, timeout)
        return self.seen[key] if found else None


def send_keys(message: Msg) -> list[tuple[str, str]]:
    """A journey's sends by user and step, a campaign's by user and campaign."""
    sends = bus_pb2.SendRequests.FromString(message.data).sends
    return [
        (f"{send.user_id}/{send.step_id or send.campaign}", send.step_id or send.campaign)
        for send in sends
    ]


def by_subject(message: Msg) -> list[tuple[str, str]]:
    return [(message.subject, message.subject)]


def last_token(message: Msg) -> list[tuple[str, str]]:
    return [(message.subject.rsplit(".", 1)[1], "hop")]


@dataclass(frozen=True)
class Latencies:
    seconds: list[float]
    missing: int

    def summary(self) -> str:
        if not self.seconds:
            return f"none seen ({self.missing} missing)"
        p50, p99 = (percentile(self.seconds, share) * 1000 for share in (0.5, 0.99))
        lost = f", {self.missing} never seen" if self.missing else ""
        worst = max(self.seconds) * 1000
        return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms{lost}"


# Sends one probe: its key on the tap and when it was acknowledged.
Fire = Callable[[], Awaitable[tuple[str, float]]]


async def probe(tap: Tap, fire: Fire, count: int) -> Latencies:
    """`count` probes one after the other, each timed from its acknowledgement to the tap."""
    waits, missing = [], 0
    for _ in range(count):
        key, acked = await fire()
        seen = await tap.first(key, PROBE_TIMEOUT)
        if seen is None:
            missing += 1
        else:
            waits.append(seen - acked)
        await asyncio.sleep(PROBE_PAUSE)
    return Latencies(waits, missing)


def track_probe(ingest: ingest_pb2_grpc.IngestServiceStub) -> Fire:
    async def fire() -> tuple[str, float]:
        user = f"probe-{uuid.uuid4().hex[:12]}"
        request = ingest_pb2.TrackRequest(user_id=user, event=PROBE_EVENT)
        await ingest.Track(request, metadata=METADATA)
        return f"{user}/{PROBE_STEP}", time.monotonic()

    return fire


def core_probe(client: NatsClient) -> Fire:
    async def fire() -> tuple[str, float]:
        key = uuid.uuid4().hex
        published = time.monotonic()
        await client.publish(f"bench.core.{key}", b"")
        return key, published

    return fire


def jetstream_probe(js: JetStreamContext) -> Fire:
    async def fire() -> tuple[str, float]:
        key = uuid.uuid4().hex
        await js.publish("bench.hops.in", key.encode())
        return key, time.monotonic()

    return fire


async def forward_hops(js: JetStreamContext) -> None:
    """The scheduler's two hops without Engage: fetch, publish again, ack; until cancelled."""
    subscription = await js.pull_subscribe("bench.hops.in", "bench-forwarder", HOPS_STREAM)
    while True:
        try:
            messages = await subscription.fetch(64, timeout=1.0)
        except TimeoutError:
            continue
        for message in messages:
            await js.publish(f"bench.hops.out.{message.data.decode()}", message.data)
            await message.ack()


class BareBus:
    """The ceiling of the latency: nats-py alone on the same nats-server."""

    def __init__(self, publisher: NatsClient, forwarder: NatsClient, tap: Tap) -> None:
        self.publisher = publisher
        self.forwarder = forwarder
        self.tap = tap

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, url: str, tap_client: NatsClient) -> AsyncIterator["BareBus"]:
        publisher, forwarder = await nats.connect(url), await nats.connect(url)
        await publisher.jetstream().add_stream(
            name=HOPS_STREAM, subjects=["bench.hops.>"], storage=api.StorageType.FILE
        )
        tap = Tap(last_token)
        for subject in ("bench.core.>", "bench.hops.out.>"):
            await tap_client.subscribe(subject, cb=tap.on_message)
        forwarding = asyncio.create_task(forward_hops(forwarder.jetstream()))
        try:
            yield cls(publisher, forwarder, tap)
        finally:
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
            await publisher.close()
            await forwarder.close()

    async def summary(self, count: int) -> str:
        core = await probe(self.tap, core_probe(self.publisher), count)
        hops = await probe(self.tap, jetstream_probe(self.publisher.jetstream()), count)
        return (
            f"ceiling, bare bus: core publish → subscriber {core.summary()}; JetStream publish "
            f"ack → pull fetch → publish → subscriber {hops.summary()}"
        )


def background_batch(rng: random.Random) -> ingest_pb2.BatchRequest:
    """TRACK events no journey is triggered by, of many users (ingest gives message ids)."""
    events = [
        common_pb2.Event(
            type=TRACK,
            event=rng.choice(BACKGROUND_EVENTS),
            user_id=f"user-{rng.randrange(BACKGROUND_USERS)}",
        )
        for _ in range(BACKGROUND_BATCH)
    ]
    return ingest_pb2.BatchRequest(events=events)


class Load:
    """Batch calls of other events at a steady rate, and what ingest accepted of them."""

    def __init__(self, ingest: ingest_pb2_grpc.IngestServiceStub, rate: float) -> None:
        self.ingest = ingest
        self.rate = rate
        self.accepted = 0
        self.started = self.stopped = time.monotonic()

    async def send(self) -> None:
        rng = random.Random(5)
        pace = BACKGROUND_BATCH / self.rate
        self.started = time.monotonic()
        async with asyncio.TaskGroup() as calls:
            for number in itertools.count(1):
                calls.create_task(self._call(background_batch(rng)))
                await asyncio.sleep(max(0.0, self.started + number * pace - time.monotonic()))

    async def _call(self, request: ingest_pb2.BatchRequest) -> None:
        answer = await self.ingest.Batch(request, metadata=METADATA)
        self.accepted += answer.accepted_count

    @property
    def achieved(self) -> float:
        return self.accepted / max(self.stopped - self.started, 1e-9)


@contextlib.asynccontextmanager
async def loaded(ingest: ingest_pb2_grpc.IngestServiceStub, rate: float) -> AsyncIterator[Load]:
    load = Load(ingest, rate)
    sending = asyncio.create_task(load.send())
    try:
        yield load
    finally:
        load.stopped = time.monotonic()
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending


def timer_entry(number: int) -> common_pb2.Event:
    """A new user's trigger of the timer journey."""
    return common_pb2.Event(type=TRACK, event=TIMER_EVENT, user_id=f"timer-{number}")


def gold_member(number: int) -> common_pb2.Event:
    """A new user identified with the trait the broadcast's segment holds."""
    event = common_pb2.Event(type=IDENTIFY, user_id=f"member-{number:06}")
    event.traits.update({"plan": "gold"})
    return event


async def polled(check: Callable[[], Awaitable[bool]], pause: float, timeout: float) -> bool:
    """Whether `check()` holds within `timeout` seconds, looked at every `pause` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() + pause > deadline:
            return False
        await asyncio.sleep(pause)
    return True


def send_step(step_id: str) -> journey_pb2.JourneyStep:
    send = journey_pb2.SendStep(channel=common_pb2.CHANNEL_EMAIL, template=TEMPLATE)
    return journey_pb2.JourneyStep(id=step_id, send=send)


def wait_step(step_id: str, duration: timedelta) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id)
    step.wait.duration.FromTimedelta(duration)
    return step


async def create_journey(
    journeys: journey_pb2_grpc.JourneyServiceStub,
    journey_id: str,
    event: str,
    steps: list[journey_pb2.JourneyStep],
) -> None:
    journey = journey_pb2.Journey(
        display_name=journey_id,
        state=journey_pb2.Journey.STATE_ACTIVE,
        trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event=event)),
        steps=steps,
    )
    request = journey_pb2.CreateJourneyRequest(
        parent=PARENT, journey_id=journey_id, journey=journey
    )
    await journeys.CreateJourney(request, metadata=METADATA)


class CoreShares:
    """The share of a core each service has used since the meter started."""

    def __init__(self, pipeline: Pipeline, services: tuple[str, ...] = SERVICES) -> None:
        self.pipeline = pipeline
        self.used = {service: cpu_of(pipeline, service) for service in services}
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def shares(self) -> str:
        elapsed = self.elapsed()
        used = {name: cpu_of(self.pipeline, name) - cpu for name, cpu in self.used.items()}
        shares = ", ".join(f"{name} {cpu / elapsed:.0%}" for name, cpu in used.items())
        return f"CPU of a core: {shares}"


@dataclass(frozen=True)
class Ceiling:
    """The parts' raw rates: the store's row writes and JetStream's acknowledged publishes."""

    store: str
    row_writes: float
    publishes: float

    def rates(self, rows: int, publishes: float) -> tuple[float, float]:
        """What the store alone and JetStream alone allow of a step that writes `rows` rows and
        publishes `publishes` messages, per second."""
        return self.row_writes / rows, self.publishes / publishes if publishes else math.inf

    def of(self, rows: int, publishes: float, what: str) -> str:
        """The ceiling of a `what` that writes `rows` rows and publishes `publishes` messages."""
        store, bus = self.rates(rows, publishes)
        return (
            f"the store alone {self.row_writes:,.0f} row writes/s, {rows} per {what}: "
            f"{store:,.0f}/s; JetStream alone {self.publishes:,.0f} publishes/s, "
            f"{publishes:.3f} messages per {what} on the wire: {bus:,.0f}/s"
        )


class Bench:
    """The running services, the stubs and the taps that the figures share."""

    def __init__(self, pipeline: Pipeline, clock_file: Path, bus: Bus) -> None:
        self.pipeline = pipeline
        self.clock_file = clock_file
        self.bus = bus
        self.channels = {
            name: grpc.aio.insecure_channel(pipeline.address(name))
            for name in ("ingest", "scheduler", "segments")
        }
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channels["ingest"])
        self.journeys = journey_pb2_grpc.JourneyServiceStub(self.channels["scheduler"])
        self.campaigns = campaign_pb2_grpc.CampaignServiceStub(self.channels["scheduler"])
        self.segments = segment_pb2_grpc.SegmentServiceStub(self.channels["segments"])
        self.sends = Tap(send_keys)
        self.journey_events = Tap(by_subject)
        # What `settled` saw last.
        self._last_bus_state: list[int] = []

    async def listen(self) -> None:
        await self.bus.client.subscribe("engage.sends.>", cb=self.sends.on_message)
        await self.bus.client.subscribe("engage.journeys.>", cb=self.journey_events.on_message)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    def log_tail(self, lines: int = 5) -> str:
        log = self.pipeline.root / "scheduler" / "scheduler.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(none)"

    def published(self) -> int:
        """Messages the scheduler has published so far (sends and journey events)."""
        return self.sends.messages + self.journey_events.messages

    async def latency(self, probes: int, rate: float) -> None:
        await create_journey(self.journeys, "probe", PROBE_EVENT, [send_step(PROBE_STEP)])
        engage = track_probe(self.ingest)
        if not (await probe(self.sends, engage, WARM_UP_PROBES)).seconds:
            raise RuntimeError(f"no probe was sent; the scheduler's log ends:\n{self.log_tail()}")
        async with BareBus.running(self.pipeline.nats.url, self.bus.client) as bare:
            meter = CoreShares(self.pipeline)
            idle = await probe(self.sends, engage, probes)
            print(f"trigger → send, idle, {probes} probes: {idle.summary()} ", end="")
            print(f"({meter.shares()}) | {await bare.summary(probes)}", flush=True)
            async with loaded(self.ingest, rate) as load:
                meter = CoreShares(self.pipeline)
                busy = await probe(self.sends, engage, probes)
                shares = meter.shares()
                ceiling = await bare.summary(probes)
        print(
            f"trigger → send, beside {rate:,.0f} events/s of others (ingest accepted "
            f"{load.achieved:,.0f} events/s, {load.accepted:,} in all), {probes} probes: "
            f"{busy.summary()} ({shares}) | {ceiling}",
            flush=True,
        )

    async def timers(self, count: int, ceiling: Ceiling) -> None:
        steps = [send_step("first"), wait_step("wait", DAY), send_step("second")]
        await create_journey(self.journeys, "timers", TIMER_EVENT, steps)
        meter, published = CoreShares(self.pipeline), self.published()
        await self.batch_in(count, timer_entry)
        entered = await self.sends.until(lambda: self.sends.counts["first"] >= count, TIMEOUT)
        line = self.rate_line("enrolled, first send seen", "first", meter, entered)
        per_enrollment = (self.published() - published) / count
        print(f"{line} | ceiling: {ceiling.of(ROWS_PER_ENROLLMENT, per_enrollment, 'enrollment')}")
        move_clock(self.clock_file, DAY)
        meter, published = CoreShares(self.pipeline), self.published()
        fired = await self.sends.until(lambda: self.sends.counts["second"] >= count, TIMEOUT)
        line = self.rate_line("timers due at once fired", "second", meter, fired)
        per_timer = (self.published() - published) / count
        print(f"{line} | ceiling: {ceiling.of(ROWS_PER_TIMER, per_timer, 'timer')}", flush=True)

    async def broadcast(self, recipients: int, ceiling: Ceiling) -> None:
        segment = await self.gold_segment(recipients)
        campaign = campaign_pb2.Campaign(
            display_name="Broadcast",
            state=campaign_pb2.Campaign.STATE_SCHEDULED,
            segment=segment,
            channel=common_pb2.CHANNEL_EMAIL,
            template=TEMPLATE,
        )
        request = campaign_pb2.CreateCampaignRequest(
            parent=PARENT, campaign_id=CAMPAIGN_ID, campaign=campaign
        )
        meter, published = CoreShares(self.pipeline), self.published()
        started = time.monotonic()
        made = await self.campaigns.CreateCampaign(request, metadata=METADATA)
        created = time.monotonic() - started
        progress = asyncio.create_task(self.progress_done(made.name, recipients, started))
        queued = await self.sends.until(lambda: self.sends.counts[made.name] >= recipients, TIMEOUT)
        shares = meter.shares()
        done, last_progress = await progress
        seen = sorted(
            at - started for key, at in self.sends.seen.items() if key.endswith(made.name)
        )
        if not seen:
            raise RuntimeError(
                f"no send of the campaign was seen; the log ends:\n{self.log_tail()}"
            )
        if done is None:
            progress_line = f"progress not done after {TIMEOUT:.0f} s: {last_progress}"
        else:
            by_then = sum(1 for at in seen if at <= done)
            progress_line = (
                f"progress.audience_done, queued {last_progress.queued:,} at {done:.2f} s, "
                f"when {by_then:,} sends had been seen"
            )
        short = "" if queued else " (gave up waiting)"
        per_recipient = (self.published() - published) / len(seen)
        print(
            f"broadcast: {len(seen):,} of {recipients:,} recipients queued (every send seen) "
            f"{seen[-1]:.2f} s after CreateCampaign was called{short}: "
            f"{len(seen) / seen[-1]:,.0f} recipients/s (CreateCampaign answered in "
            f"{created * 1000:.0f} ms, first send seen at {seen[0]:.2f} s; {progress_line}) "
            f"({shares}) | ceiling: "
            + await self.broadcast_ceiling(segment, ceiling, per_recipient),
            flush=True,
        )

    async def broadcast_ceiling(self, segment: str, ceiling: Ceiling, per_recipient: float) -> str:
        """The parts a broadcast uses, each alone: the segment listed, the rows a recipient
        writes, the `per_recipient` messages it publishes; which is lowest, and all three one
        after the other."""
        meter = CoreShares(self.pipeline, ("segments",))
        listed, seconds = await self.listing(segment)
        store, bus = ceiling.rates(ROWS_PER_RECIPIENT, per_recipient)
        parts = {"ListSegmentMembers": listed / seconds, "the store": store, "JetStream": bus}
        lowest = min(parts, key=parts.__getitem__)
        in_series = 1 / sum(1 / rate for rate in parts.values())
        return (
            f"ListSegmentMembers alone {listed:,} members in {seconds:.2f} s: "
            f"{parts['ListSegmentMembers']:,.0f} members/s ({meter.shares()}); "
            f"{ceiling.of(ROWS_PER_RECIPIENT, per_recipient, 'recipient')}; lowest: {lowest}; "
            f"the three one after the other: {in_series:,.0f}/s"
        )

    async def gold_segment(self, count: int) -> str:
        """`count` new users identified with `plan: gold`, applied by segments, the bus settled,
        and a segment of them, each step timed; returns the segment's name."""
        started = time.monotonic()
        await self.batch_in(count, gold_member)
        identified = time.monotonic() - started
        rule = from_yaml(GOLD_RULE)
        preview = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=rule)

        async def applied() -> bool:
            answer = await self.segments.PreviewSegment(preview, metadata=METADATA)
            return bool(answer.member_count >= count)

        if not await polled(applied, APPLIED_POLL, TIMEOUT):
            raise RuntimeError(f"segments did not apply {count:,} identifies in {TIMEOUT:.0f} s")
        applied_at = time.monotonic() - started
        await self.settle()
        settled_at = time.monotonic() - started
        request = segment_pb2.CreateSegmentRequest(
            parent=PARENT, segment_id=SEGMENT_ID, segment=segment_pb2.Segment(rule=rule)
        )
        made = await self.segments.CreateSegment(request, metadata=METADATA)
        created = time.monotonic() - started - settled_at
        await self.settle()
        print(
            f"broadcast setup: {count:,} users identified through ingest in {identified:.1f} s; "
            f"all applied by segments at {applied_at:.1f} s, the bus settled at "
            f"{settled_at:.1f} s; CreateSegment of {made.member_count:,} members took "
            f"{created:.1f} s, its membership changes relayed and consumed by "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        return str(made.name)

    async def settle(self) -> None:
        """Wait until the streams the scheduler reads (events, memberships) stay as they were
        for a look (SETTLED_POLL apart) and its consumers of them have nothing pending."""
        self._last_bus_state = []
        if not await polled(self.settled, SETTLED_POLL, TIMEOUT):
            raise RuntimeError(f"the bus did not settle in {TIMEOUT:.0f} s")

    async def settled(self) -> bool:
        """Whether the bus is as it was at the last look, with nothing pending."""
        js = self.bus.client.jetstream()
        state: list[int] = []
        for spec in (SCHEDULER_EVENTS, SCHEDULER_MEMBERSHIPS):
            stream = await js.stream_info(spec.stream)
            consumer = await js.consumer_info(spec.stream, spec.durable)
            state += [stream.state.last_seq, consumer.num_pending or 0]
            state.append(consumer.num_ack_pending or 0)
        quiet = state == self._last_bus_state and not any(state[1::3]) and not any(state[2::3])
        self._last_bus_state = state
        return quiet

    async def progress_done(
        self, name: str, recipients: int, started: float
    ) -> tuple[float | None, campaign_pb2.CampaignProgress]:
        """Seconds from `started` until GetCampaign (every 0.1 s) first answers the audience
        gone through with every recipient queued (None: not within TIMEOUT), and the progress
        it answered last."""
        request = campaign_pb2.GetCampaignRequest(name=name)
        progress = campaign_pb2.CampaignProgress()

        async def done() -> bool:
            campaign = await self.campaigns.GetCampaign(request, metadata=METADATA)
            progress.CopyFrom(campaign.progress)
            return progress.audience_done and progress.queued >= recipients

        if await polled(done, PROGRESS_POLL, TIMEOUT):
            return time.monotonic() - started, progress
        return None, progress

    async def listing(self, segment: str) -> tuple[int, float]:
        """The segment's members streamed by ListSegmentMembers to this process alone: how many
        and in how many seconds."""
        request = segment_pb2.ListSegmentMembersRequest(segment=segment)
        started, members = time.monotonic(), 0
        async for chunk in self.segments.ListSegmentMembers(request, metadata=METADATA):
            members += len(chunk.members)
        return members, time.monotonic() - started

    async def ceiling(self, scratch_url: str, count: int) -> Ceiling:
        store, row_writes = await store_ceiling(scratch_url, count)
        publishes = await publish_ceiling(self.pipeline.nats.url, 3 * count)
        return Ceiling(store, row_writes, publishes)

    async def batch_in(self, count: int, event: Callable[[int], common_pb2.Event]) -> None:
        """Events 0 to `count` - 1 (`event(number)`), in Batch calls of 500."""
        for start in range(0, count, ENTRY_BATCH):
            events = [event(number) for number in range(start, min(count, start + ENTRY_BATCH))]
            await self.ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=METADATA)

    def rate_line(self, what: str, step: str, meter: CoreShares, complete: bool) -> str:
        seen, elapsed = self.sends.counts[step], meter.elapsed()
        short = "" if complete else " (gave up waiting)"
        return (
            f"timers: {seen:,} {what} in {elapsed:.2f} s{short}: {seen / elapsed:,.0f}/s "
            f"({meter.shares()})"
        )


async def publish_ceiling(url: str, count: int) -> float:
    """JetStream publishes per second as the outbox relay makes them: RELAY_BATCH at once,
    each awaiting its acknowledgement, into a scratch stream of the same nats-server."""
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name=PUBLISH_STREAM, subjects=["bench.publish.>"])
    payload = bytes(200)
    started = time.perf_counter()
    for start in range(0, count, RELAY_BATCH):
        numbers = range(start, min(count, start + RELAY_BATCH))
        await asyncio.gather(*(publish_one(js, number, payload) for number in numbers))
    elapsed = time.perf_counter() - started
    await js.delete_stream(PUBLISH_STREAM)
    await client.close()
    return count / elapsed


async def publish_one(js: JetStreamContext, number: int, payload: bytes) -> None:
    headers = {MSG_ID_HEADER: f"bench-{number}", WORKSPACE_HEADER: WORKSPACE}
    await js.publish(f"bench.publish.{number % 8}", payload, headers=headers)


def scratch_row(number: int, now: datetime) -> dict[str, Any]:
    text = f"{number:032x}"
    strings = [column.name for column in SCRATCH.columns if isinstance(column.type, sa.String)]
    return {
        "id": number,
        **dict.fromkeys(strings, text),
        **dict.fromkeys(("journey_version", "status", "position"), 1),
        "enrolled_at": now,
        "finished_at": None,
    }


def update_params(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "p_id": row["id"],
        "p_status": 2,
        "p_step_id": "s",
        "p_position": 2,
        "p_finished_at": now,
    }


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await db.insert_many(session, sa.insert(SCRATCH), rows)


async def update_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    await session.exec(SCRATCH_UPDATE, params=[update_params(row, now) for row in rows])


async def delete_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.exec(sa.delete(SCRATCH).where(SCRATCH.c.id.in_([row["id"] for row in rows])))


Write = Callable[[AsyncSession, list[dict[str, Any]]], Awaitable[None]]


async def timed_writes(
    sessions: async_sessionmaker[AsyncSession], rows: list[dict[str, Any]], write: Write
) -> float:
    """Seconds `write` takes over all rows, ROWS_PER_TRANSACTION a transaction."""
    started = time.perf_counter()
    for start in range(0, len(rows), ROWS_PER_TRANSACTION):
        async with db.transaction(sessions, db.EVERY_WORKSPACE) as session:
            await write(session, rows[start : start + ROWS_PER_TRANSACTION])
    return time.perf_counter() - started


async def store_ceiling(url: str, count: int) -> tuple[str, float]:
    """The database's raw write rate: `count` rows inserted, updated, then deleted."""
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SCRATCH.metadata.create_all)
        sessions = db.session_factory(engine)
        now = datetime.now(UTC)
        rows = [scratch_row(number, now) for number in range(1, count + 1)]
        seconds = [await timed_writes(sessions, rows, w) for w in (insert_rows, update_rows)]
        seconds.append(await timed_writes(sessions, rows, delete_rows))
    finally:
        await engine.dispose()
    insert, update, delete = (f"{count / s:,.0f}/s" for s in seconds)
    row_writes = 3 * count / sum(seconds)
    return (
        f"the store alone: {count:,} rows of an enrollment's width, 500 a transaction: insert "
        f"{insert}, update {update}, delete {delete}; {row_writes:,.0f} row writes/s",
        row_writes,
    )


async def measure(pipeline: Pipeline, clock_file: Path, arguments: argparse.Namespace) -> None:
    only = set(arguments.only.split(","))
    bus = await Bus.connect(pipeline.nats.url, "bench-tap")
    bench = Bench(pipeline, clock_file, bus)
    await bench.listen()
    try:
        if "latency" in only:
            await bench.latency(arguments.probes, arguments.background_rate)
        if only & {"timers", "broadcast"}:
            scratch = await pipeline.databases.url("scratch")
            ceiling = await bench.ceiling(scratch, arguments.timers)
            print(ceiling.store, flush=True)
            if "timers" in only:
                await bench.timers(arguments.timers, ceiling)
            if "broadcast" in only:
                await bench.broadcast(arguments.recipients, ceiling)
    finally:
        await bench.close()
        await bus.close()


async def main(arguments: argparse.Namespace) -> None:
    # SIGTERM (a `timeout`, a closed session) stops the services too, as Ctrl-C does.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    backend = "PostgreSQL" if arguments.postgres else "SQLite (WAL)"
    print(f"machine: {machine()}")
    print(f"segments, scheduler and ingest on {backend}; timers polled every 0.1 s", flush=True)
    with folder() as root:
        clock_file = root / "clock-offset"
        # The services inherit this process's environment (ServiceProcess).
        os.environ["ENGAGE_CLOCK_OFFSET_FILE"] = str(clock_file)
        os.environ["ENGAGE_TIMER_POLL_SECONDS"] = "0.1"
        databases = Databases(root, arguments.postgres)
        pipeline = Pipeline(root, databases, replicas=1)
        try:
            await pipeline.start()
            await measure(pipeline, clock_file, arguments)
        finally:
            await asyncio.to_thread(pipeline.stop)
            await databases.drop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--background-rate", type=float, default=2000.0, help="events/s")
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--only", default="latency,timers,broadcast", help="what to measure")
    parser.add_argument("--postgres", default="", help="e.g. postgresql://postgres@127.0.0.1:5432")
    try:
        asyncio.run(main(parser.parse_args()))
    except asyncio.CancelledError:
        raise SystemExit("stopped by SIGTERM; the services were stopped") from None
