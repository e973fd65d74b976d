"""Ingest throughput: events per second accepted with JetStream's acknowledgement.

Starts its own nats-server (file storage, `sync_interval: always`, as in production) and the
ingest service process, then measures
1. the ceiling: raw nats-py JetStream publishes, 1,000 in flight, one event per message and
   one partition's share of a 500-event batch per message;
2. gRPC Batch, several concurrent callers, at batch sizes 20, 100 and 500;
3. gRPC StreamEvents, `--streams` bidi streams with several batches in flight each;
4. single events, one per request as browsers and app SDKs send them, 32 and 64 in flight:
   gRPC `Track` (`--connections` connections) beside its ceiling, the same calls to a bare
   grpc.aio server that does nothing (`bench/bare_grpc.py`), and HTTP `/v1/track` (one
   keep-alive connection per caller, through a lean client that costs the machine little);
5. HTTP `/v1/batch` (Segment's API) with aiohttp, several concurrent requests.
Requests are serialised before the clock starts, so the figures are the server's. Beside each
figure: how many events one EVENTS message carried (the grouping), and the CPU microseconds
per event spent by ingest, nats-server and the callers (this process): on a shared 2-core
machine the callers' and nats-server's CPU is taken from ingest's. Prints the machine the
figures were measured on. Ingest is stateless: `--replicas 2` runs two ingest processes on one
gRPC port and one HTTP port (SO_REUSEPORT; every caller and stream has a connection of its
own, which the kernel spreads over them), as two pods behind a Service would be.

    .venv/bin/python -m bench.ingest [--events 200000] [--seconds 10] [--concurrency 8]
        [--sizes 20,100,500] [--only raw,batch,stream,track,http-track,http] [--replicas 1]
        [--streams 1] [--connections 8]

Each figure stops at `--events` or, for the slow small batches, at `--seconds`, whichever
comes first, so the whole run stays within a couple of minutes.
"""

import argparse
import asyncio
import base64
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import grpc
import nats

from bench import bare_grpc
from engage.bus import Bus
from engage.settings import DEVELOPMENT_API_KEY
from engage.v1 import bus_pb2, common_pb2, ingest_pb2
from engage_cli.processes import NatsServer, ServiceProcess, free_port, wait_until_listening
from services.ingest.group_commit import GroupCommit
from services.ingest.publisher import EventPublisher

METADATA = (("x-api-key", DEVELOPMENT_API_KEY),)
BATCH_SIZES = (20, 100, 500)
PARTITIONS = 8
USERS = 50_000
TRACK = common_pb2.EventType.EVENT_TYPE_TRACK
_ids = itertools.count()
T = TypeVar("T")


def _template() -> common_pb2.Event:
    event = common_pb2.Event(type=TRACK, event="Product Viewed")
    event.properties.update({"sku": "sku-123", "price": 9.99, "currency": "JPY"})
    event.context.update({"ip": "203.0.113.7", "locale": "ja-JP"})
    return event


TEMPLATE = _template()


def track_event() -> common_pb2.Event:
    """A typical track event: a few properties and a little context (~150 bytes)."""
    number = next(_ids)
    event = common_pb2.Event()
    event.CopyFrom(TEMPLATE)
    event.message_id = f"bench-{number}"
    event.user_id = f"user-{number % USERS}"
    return event


def segment_call(number: int) -> dict[str, object]:
    return {
        "type": "track",
        "messageId": f"http-{number}",
        "userId": f"user-{number % USERS}",
        "event": "Product Viewed",
        "properties": {"sku": f"sku-{number % 977}", "price": 9.99, "currency": "JPY"},
        "context": {"ip": "203.0.113.7", "locale": "ja-JP"},
    }


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """Where the CPU goes: the processes of the run by role (ingest replicas, nats-server),
    and this bench process itself, the callers."""

    processes: dict[str, list[int]] = field(default_factory=dict)
    # Where the EVENTS stream is read, to count the bus messages a figure's events took.
    bus: Bus | None = None

    async def snapshot(self) -> dict[str, float]:
        used = {role: sum(map(cpu_seconds, pids)) for role, pids in self.processes.items()}
        messages = (await self.bus.js.stream_info("EVENTS")).state.messages if self.bus else 0
        return used | {"callers": time.process_time(), "messages": messages}


CPU = CpuMeter()


@dataclass(frozen=True)
class Figure:
    rate: float
    # CPU microseconds per event, by role.
    cpu_us: dict[str, float]
    events_per_message: float


async def timed(seconds: float, run: Callable[[float], Awaitable[int]]) -> Figure:
    """Events per second of `run`, which gets a deadline and returns the events it got done,
    and the CPU each process spent per event meanwhile."""
    before = await CPU.snapshot()
    started = time.perf_counter()
    done = await run(started + seconds)
    elapsed = time.perf_counter() - started
    after = await CPU.snapshot()
    cpu = {role: (after[role] - before[role]) * 1e6 / max(done, 1) for role in after}
    messages = after["messages"] - before["messages"]
    return Figure(done / elapsed, cpu, done / messages if messages else 0.0)


def until(deadline: float, items: Iterable[T]) -> Iterator[T]:
    for item in items:
        if time.perf_counter() > deadline:
            return
        yield item


def identity(data: bytes) -> bytes:
    return data


def open_channels(address: str, count: int) -> list[grpc.aio.Channel]:
    """`count` channels on connections of their own, so the kernel spreads them over the
    replicas listening on the port (gRPC servers set SO_REUSEPORT)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(address, options=options) for _ in range(count)]


async def raw_jetstream(url: str, total: int, seconds: float, events_per_message: int) -> Figure:
    """nats-py JetStream publishes, 1,000 in flight, each message `events_per_message` events."""
    client = await nats.connect(url)
    js = client.jetstream(publish_async_max_pending=1000)
    payload = bus_pb2.EventBatch(
        id="raw", workspace="bench", events=[track_event() for _ in range(events_per_message)]
    ).SerializeToString()
    prefix = next(_ids)

    async def run(deadline: float) -> int:
        sent = 0
        for number in until(deadline, range(total // events_per_message)):
            await js.publish_async(
                f"engage.events.bench.{number % PARTITIONS}",
                payload,
                headers={"Nats-Msg-Id": f"raw-{prefix}-{number}"},
            )
            sent += events_per_message
        await js.publish_async_completed()
        return sent

    try:
        return await timed(seconds, run)
    finally:
        await client.close()


async def grouped_publish(url: str, total: int, seconds: float, in_flight: int) -> Figure:
    """Ingest's group commit driven directly, without a front door: `in_flight` callers each
    publishing one event after the other, answered once JetStream stored it."""
    bus = await Bus.connect(url, "bench-grouped")
    singles = GroupCommit(EventPublisher(bus, PARTITIONS))
    events = [track_event() for _ in range(total)]

    async def run(deadline: float) -> int:
        pending = until(deadline, events)

        async def caller() -> int:
            done = 0
            for event in pending:
                await singles.publish("bench", event)
                done += 1
            return done

        return sum(await asyncio.gather(*(caller() for _ in range(in_flight))))

    try:
        return await timed(seconds, run)
    finally:
        await bus.close()


def batch_requests(total: int, size: int) -> list[bytes]:
    return [
        ingest_pb2.BatchRequest(events=[track_event() for _ in range(size)]).SerializeToString()
        for _ in range(total // size)
    ]


async def grpc_batch(address: str, total: int, seconds: float, size: int, callers: int) -> Figure:
    """`callers` concurrent Batch callers, each on a connection of its own."""
    requests = batch_requests(total, size)
    channels = open_channels(address, callers)
    calls = [
        channel.unary_unary(
            "/engage.v1.IngestService/Batch",
            request_serializer=identity,
            response_deserializer=ingest_pb2.BatchResponse.FromString,
        )
        for channel in channels
    ]

    async def run(deadline: float) -> int:
        pending = until(deadline, requests)

        async def caller(call: grpc.aio.UnaryUnaryMultiCallable) -> int:
            done = 0
            for request in pending:
                answer = await call(request, metadata=METADATA)
                assert answer.accepted_count == size, answer
                done += size
            return done

        return sum(await asyncio.gather(*(caller(call) for call in calls)))

    try:
        return await timed(seconds, run)
    finally:
        for channel in channels:
            await channel.close()


async def grpc_stream(
    address: str, total: int, seconds: float, size: int, in_flight: int, streams: int
) -> Figure:
    """`streams` StreamEvents streams, each on a connection of its own, sharing the requests."""
    requests = [
        ingest_pb2.StreamEventsRequest(
            batch_id=str(number), events=ingest_pb2.BatchRequest.FromString(request).events
        ).SerializeToString()
        for number, request in enumerate(batch_requests(total, size))
    ]
    channels = open_channels(address, streams)
    share = iter(requests)

    async def one_stream(channel: grpc.aio.Channel, deadline: float) -> int:
        open_stream = channel.stream_stream(
            "/engage.v1.IngestService/StreamEvents",
            request_serializer=identity,
            response_deserializer=ingest_pb2.StreamEventsResponse.FromString,
        )
        stream = open_stream(metadata=METADATA)
        window = asyncio.Semaphore(in_flight)
        written = 0

        async def write() -> None:
            nonlocal written
            for request in until(deadline, share):
                await window.acquire()
                await stream.write(request)
                written += 1
            await stream.done_writing()

        async def read() -> int:
            done = 0
            while (answer := await stream.read()) is not grpc.aio.EOF:
                assert isinstance(answer, ingest_pb2.StreamEventsResponse)
                assert answer.accepted_count == size, answer
                done += size
                window.release()
            return done

        _, done = await asyncio.gather(write(), read())
        assert done == written * size
        return done

    async def run(deadline: float) -> int:
        return sum(await asyncio.gather(*(one_stream(c, deadline) for c in channels)))

    try:
        return await timed(seconds, run)
    finally:
        for channel in channels:
            await channel.close()


async def http_batch(address: str, total: int, seconds: float, size: int, callers: int) -> Figure:
    numbers = itertools.count(next(_ids) * 1_000_000)
    bodies = [
        json.dumps({"batch": [segment_call(next(numbers)) for _ in range(size)]}).encode()
        for _ in range(total // size)
    ]
    credentials = base64.b64encode(f"{DEVELOPMENT_API_KEY}:".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(f"http://{address}") as session:

        async def run(deadline: float) -> int:
            pending = until(deadline, bodies)

            async def caller() -> int:
                done = 0
                for body in pending:
                    async with session.post("/v1/batch", data=body, headers=headers) as response:
                        answer = await response.json()
                        assert response.status == 200 and "errors" not in answer, answer
                    done += size
                return done

            return sum(await asyncio.gather(*(caller() for _ in range(callers))))

        return await timed(seconds, run)


def track_requests(total: int) -> list[bytes]:
    """Serialised single-event TrackRequests, as an app SDK sends one call per event."""
    requests = []
    for _ in range(total):
        event = track_event()
        requests.append(
            ingest_pb2.TrackRequest(
                message_id=event.message_id,
                user_id=event.user_id,
                event=event.event,
                properties=event.properties,
                context=event.context,
            ).SerializeToString()
        )
    return requests


async def grpc_single(
    address: str,
    total: int,
    seconds: float,
    in_flight: int,
    connections: int,
    method: str = "/engage.v1.IngestService/Track",
) -> Figure:
    """`in_flight` concurrent Track calls (or calls of another unary `method` with the same
    requests), spread over `connections` connections."""
    requests = track_requests(total)
    channels = open_channels(address, connections)
    calls = [
        channel.unary_unary(method, request_serializer=identity, response_deserializer=identity)
        for channel in channels
    ]

    async def run(deadline: float) -> int:
        pending = until(deadline, requests)

        async def caller(call: grpc.aio.UnaryUnaryMultiCallable) -> int:
            done = 0
            for request in pending:
                await call(request, metadata=METADATA)
                done += 1
            return done

        callers = (caller(calls[number % connections]) for number in range(in_flight))
        return sum(await asyncio.gather(*callers))

    try:
        return await timed(seconds, run)
    finally:
        for channel in channels:
            await channel.close()


class KeepAliveConnection(asyncio.Protocol):
    """A lean HTTP/1.1 keep-alive client: one request at a time on one connection, as an SDK
    sends. aiohttp's client costs this shared machine more CPU per request than the server
    does; this one costs a fraction, so the figure is the server's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.answer: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        head_end = self.received.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None:
            return
        head = bytes(self.received[:head_end]).lower()
        length_at = head.index(b"content-length:") + len(b"content-length:")
        length = int(head[length_at : head.index(b"\r\n", length_at)])
        if len(self.received) >= head_end + 4 + length:
            response = bytes(self.received[: head_end + 4 + length])
            del self.received[: head_end + 4 + length]
            self.answer.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("connection closed"))

    async def post(self, request: bytes) -> bytes:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer


async def http_single(address: str, total: int, seconds: float, in_flight: int) -> Figure:
    """`in_flight` keep-alive connections posting one `/v1/track` call after the other."""
    numbers = itertools.count(next(_ids) * 1_000_000)
    credentials = base64.b64encode(f"{DEVELOPMENT_API_KEY}:".encode()).decode()
    head = (
        f"POST /v1/track HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\n"
        "Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    )
    requests = []
    for _ in range(total):
        body = json.dumps(segment_call(next(numbers))).encode()
        requests.append(head.replace("{length}", str(len(body))).encode() + body)
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(KeepAliveConnection, host, int(port)))[1]
        for _ in range(in_flight)
    ]

    async def run(deadline: float) -> int:
        pending = until(deadline, requests)

        async def caller(connection: KeepAliveConnection) -> int:
            done = 0
            for request in pending:
                response = await connection.post(request)
                assert response.startswith(b"HTTP/1.1 200"), response
                done += 1
            return done

        return sum(await asyncio.gather(*(caller(c) for c in connections)))

    try:
        return await timed(seconds, run)
    finally:
        for connection in connections:
            if connection.transport:
                connection.transport.close()


async def measure(
    nats_url: str,
    grpc_address: str,
    http_address: str,
    bare_address: str,
    args: argparse.Namespace,
) -> None:
    only = set(args.only.split(","))
    sizes = [int(size) for size in args.sizes.split(",")]
    total, seconds, concurrency = args.events, args.seconds, args.concurrency
    # Streams exist before the raw publishes, declared as ingest declares them.
    CPU.bus = await Bus.open(nats_url, "bench")
    print(f"machine: {machine()}")
    print(f"per figure: up to {total:,} events or {seconds:g} s; concurrency {concurrency}")
    print(f"ingest replicas: {args.replicas} (one port, SO_REUSEPORT)")
    roles = [*CPU.processes, "callers"]
    heading = " ".join(f"{role:>8}" for role in roles)
    print(f"{'path':<62} {'events/s':>10} {'events/msg':>10}   CPU µs/event: {heading}")

    def show(label: str, figure: Figure) -> None:
        cpu = " ".join(f"{figure.cpu_us[role]:>8,.0f}" for role in roles)
        rates = f"{figure.rate:>10,.0f} {figure.events_per_message:>10,.1f}"
        print(f"{label:<62} {rates}                 {cpu}", flush=True)

    if "raw" in only:
        for per_message in (1, 500 // PARTITIONS):
            figure = await raw_jetstream(nats_url, total, seconds, per_message)
            show(f"raw JetStream, 1,000 in flight, {per_message} events/msg", figure)
        for in_flight in (64, 1000):
            figure = await grouped_publish(nats_url, total, seconds, in_flight)
            show(f"group commit alone, {in_flight} single events in flight", figure)
    for size in sizes:
        if "batch" in only:
            figure = await grpc_batch(grpc_address, total, seconds, size, concurrency)
            show(f"gRPC Batch, {concurrency} callers, batch {size}", figure)
        if "stream" in only:
            streams = args.streams
            figure = await grpc_stream(grpc_address, total, seconds, size, concurrency, streams)
            label = f"{streams} stream(s), {concurrency} in flight each"
            show(f"gRPC StreamEvents, {label}, batch {size}", figure)
    for in_flight in (32, 64):
        if "track" in only and CPU.processes.get("bare"):
            figure = await grpc_single(
                bare_address, total, seconds, in_flight, args.connections, bare_grpc.METHOD
            )
            show(f"ceiling: bare grpc.aio unary call, {in_flight} in flight", figure)
        if "track" in only:
            figure = await grpc_single(grpc_address, total, seconds, in_flight, args.connections)
            show(f"gRPC Track, {in_flight} in flight, {args.connections} connections", figure)
        if "http-track" in only:
            figure = await http_single(http_address, total, seconds, in_flight)
            show(f"HTTP /v1/track, {in_flight} in flight", figure)
    if "http" in only:
        for size in (100, 500):
            figure = await http_batch(http_address, total, seconds, size, concurrency)
            show(f"HTTP /v1/batch, {concurrency} callers, batch {size}", figure)
    await CPU.bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per figure")
    parser.add_argument("--concurrency", type=int, default=8, help="callers / batches in flight")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per figure")
    parser.add_argument("--sizes", default="20,100,500", help="gRPC batch sizes")
    parser.add_argument(
        "--only", default="raw,batch,stream,track,http-track,http", help="what to measure"
    )
    parser.add_argument("--replicas", type=int, default=1, help="ingest processes on one port")
    parser.add_argument("--streams", type=int, default=1, help="StreamEvents streams at once")
    parser.add_argument(
        "--connections", type=int, default=8, help="gRPC connections of the single-event callers"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as folder:
        root = Path(folder)
        nats_server = NatsServer(root / "nats", log_file=root / "nats.log")
        env = {
            "ENGAGE_NATS_URL": nats_server.url,
            # Replicas share one gRPC port and one HTTP port (the kernel spreads connections).
            "ENGAGE_GRPC_PORT": str(free_port()),
            "ENGAGE_HTTP_PORT": str(free_port()),
            "ENGAGE_LOG_LEVEL": "WARNING",
            "ENGAGE_VAR_DIR": str(root / "var"),
            "ENGAGE_EVENT_PARTITIONS": str(PARTITIONS),
        }
        replicas = [
            ServiceProcess("ingest", env, root / f"ingest-{number}")
            for number in range(args.replicas)
        ]
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_grpc", str(bare_port)],
            cwd=Path(__file__).parent.parent,
        )
        nats_server.start()
        try:
            for replica in replicas:
                replica.start()
                replica.wait_ready()
            wait_until_listening("127.0.0.1", bare_port, timeout=30)
            CPU.processes = {
                "ingest": [replica.process.pid for replica in replicas if replica.process],
                "nats": [nats_server.process.pid] if nats_server.process else [],
                "bare": [bare.pid],
            }
            first = replicas[0]
            addresses = (first.address, first.http_address, f"127.0.0.1:{bare_port}")
            asyncio.run(measure(nats_server.url, *addresses, args))
        finally:
            bare.terminate()
            for replica in replicas:
                replica.stop()
            nats_server.stop()


if __name__ == "__main__":
    main()
