"""Ingest throughput: events per second accepted with JetStream's acknowledgement.

Starts its own nats-server (file storage, `sync_interval: always`, as in production) and the
ingest service process, then measures
1. the ceiling: raw nats-py JetStream publishes, 1,000 in flight, one event per message and
   one partition's share of a 500-event batch per message;
2. gRPC Batch, several concurrent callers, at batch sizes 20, 100 and 500;
3. gRPC StreamEvents, `--streams` bidi streams with several batches in flight each;
4. HTTP `/v1/batch` (Segment's API) with aiohttp, several concurrent requests.
Requests are serialised before the clock starts, so the figures are the server's. Prints the
machine the figures were measured on. Ingest is stateless: `--replicas 2` runs two ingest
processes on one port (gRPC sets SO_REUSEPORT; every caller and stream has a connection of its
own, which the kernel spreads over them), as two pods behind a Service would be.

    .venv/bin/python bench/ingest.py [--events 200000] [--seconds 10] [--concurrency 8]
        [--sizes 20,100,500] [--only raw,batch,stream,http] [--replicas 1] [--streams 1]

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
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import grpc
import nats

from engage.bus import Bus
from engage.settings import DEVELOPMENT_API_KEY
from engage.v1 import bus_pb2, common_pb2, ingest_pb2
from engage_cli.processes import NatsServer, ServiceProcess, free_port

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


async def timed(seconds: float, run: Callable[[float], Awaitable[int]]) -> float:
    """Events per second of `run`, which gets a deadline and returns the events it got done."""
    started = time.perf_counter()
    done = await run(started + seconds)
    return done / (time.perf_counter() - started)


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


async def raw_jetstream(url: str, total: int, seconds: float, events_per_message: int) -> float:
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


def batch_requests(total: int, size: int) -> list[bytes]:
    return [
        ingest_pb2.BatchRequest(events=[track_event() for _ in range(size)]).SerializeToString()
        for _ in range(total // size)
    ]


async def grpc_batch(address: str, total: int, seconds: float, size: int, callers: int) -> float:
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
) -> float:
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


async def http_batch(address: str, total: int, seconds: float, size: int, callers: int) -> float:
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


async def measure(
    nats_url: str, grpc_address: str, http_address: str, args: argparse.Namespace
) -> None:
    only = set(args.only.split(","))
    sizes = [int(size) for size in args.sizes.split(",")]
    total, seconds, concurrency = args.events, args.seconds, args.concurrency
    # Streams exist before the raw publishes, declared as ingest declares them.
    bus = await Bus.open(nats_url, "bench")
    await bus.close()
    print(f"machine: {machine()}")
    print(f"per figure: up to {total:,} events or {seconds:g} s; concurrency {concurrency}")
    print(f"ingest replicas: {args.replicas} (one port, SO_REUSEPORT)")
    print(f"{'path':<48} {'events/s':>10}")

    def show(label: str, rate: float) -> None:
        print(f"{label:<48} {rate:>10,.0f}", flush=True)

    if "raw" in only:
        for per_message in (1, 500 // PARTITIONS):
            rate = await raw_jetstream(nats_url, total, seconds, per_message)
            show(f"raw JetStream, 1,000 in flight, {per_message} events/msg", rate)
    for size in sizes:
        if "batch" in only:
            rate = await grpc_batch(grpc_address, total, seconds, size, concurrency)
            show(f"gRPC Batch, {concurrency} callers, batch {size}", rate)
        if "stream" in only:
            rate = await grpc_stream(grpc_address, total, seconds, size, concurrency, args.streams)
            label = f"{args.streams} stream(s), {concurrency} in flight each"
            show(f"gRPC StreamEvents, {label}, batch {size}", rate)
    if "http" in only:
        for size in (100, 500):
            rate = await http_batch(http_address, total, seconds, size, concurrency)
            show(f"HTTP /v1/batch, {concurrency} callers, batch {size}", rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per figure")
    parser.add_argument("--concurrency", type=int, default=8, help="callers / batches in flight")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per figure")
    parser.add_argument("--sizes", default="20,100,500", help="gRPC batch sizes")
    parser.add_argument("--only", default="raw,batch,stream,http", help="what to measure")
    parser.add_argument("--replicas", type=int, default=1, help="ingest processes on one port")
    parser.add_argument("--streams", type=int, default=1, help="StreamEvents streams at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as folder:
        root = Path(folder)
        nats_server = NatsServer(root / "nats", log_file=root / "nats.log")
        env = {
            "ENGAGE_NATS_URL": nats_server.url,
            # Replicas share one gRPC port (the kernel spreads connections); HTTP: their own.
            "ENGAGE_GRPC_PORT": str(free_port()),
            "ENGAGE_HTTP_PORT": "0",
            "ENGAGE_LOG_LEVEL": "WARNING",
            "ENGAGE_VAR_DIR": str(root / "var"),
            "ENGAGE_EVENT_PARTITIONS": str(PARTITIONS),
        }
        replicas = [
            ServiceProcess("ingest", env, root / f"ingest-{number}")
            for number in range(args.replicas)
        ]
        nats_server.start()
        try:
            for replica in replicas:
                replica.start()
                replica.wait_ready()
            first = replicas[0]
            asyncio.run(measure(nats_server.url, first.address, first.http_address, args))
        finally:
            for replica in replicas:
                replica.stop()
            nats_server.stop()


if __name__ == "__main__":
    main()
