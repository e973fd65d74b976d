"""Trigger → inbox: how long from a `signed_up` Track call to the welcome email in the inbox.

Starts its own nats-server, SMTP sink and the five services (SQLite, as `engage up` does), then
1. sends sign-ups one at a time and times each from the Track call to the email's arrival;
2. sends a burst in one Batch call and times the whole burst through to the last email.
Prints the figures with the machine they were measured on.

    .venv/bin/python bench/thin_path.py [--sequential 50] [--burst 300]
"""

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf.struct_pb2 import Struct

from engage.settings import DEVELOPMENT_API_KEY
from engage.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc, profile_pb2, profile_pb2_grpc
from engage_cli.demo import ensure_welcome_journey
from engage_cli.processes import LocalSuite, NatsServer
from services.channels.sandboxes.smtp_sink import SmtpSink

METADATA = (("x-api-key", DEVELOPMENT_API_KEY),)
TRACK = common_pb2.EventType.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EventType.EVENT_TYPE_IDENTIFY


def identify_event(user_id: str) -> common_pb2.Event:
    traits = Struct()
    traits.update({"first_name": "Ada", "email": f"{user_id}@example.com"})
    return common_pb2.Event(type=IDENTIFY, user_id=user_id, traits=traits)


async def identify_all(stubs: dict[str, object], users: list[str]) -> None:
    ingest, profiles = stubs["ingest"], stubs["profiles"]
    assert isinstance(ingest, ingest_pb2_grpc.IngestServiceStub)
    assert isinstance(profiles, profile_pb2_grpc.ProfileServiceStub)
    for start in range(0, len(users), 500):
        events = [identify_event(user) for user in users[start : start + 500]]
        await ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=METADATA)
    last = profile_pb2.GetProfileRequest(user_id=users[-1])
    while True:
        try:
            await profiles.GetProfile(last, metadata=METADATA)
            return
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.05)


async def arrival_of(sink: SmtpSink, address: str, seen_from: int = 0) -> float:
    while True:
        for mail in sink.received[seen_from:]:
            if address in mail.recipients:
                return mail.arrived_at
        await asyncio.sleep(0.001)


async def sequential(
    sink: SmtpSink, ingest: ingest_pb2_grpc.IngestServiceStub, users: list[str]
) -> list[float]:
    latencies = []
    for user in users:
        seen = len(sink.received)
        started = time.monotonic()
        await ingest.Track(
            ingest_pb2.TrackRequest(user_id=user, event="signed_up"), metadata=METADATA
        )
        arrived = await arrival_of(sink, f"{user}@example.com", seen)
        latencies.append(arrived - started)
    return latencies


async def burst(
    sink: SmtpSink, ingest: ingest_pb2_grpc.IngestServiceStub, users: list[str]
) -> float:
    expected = len(sink.received) + len(users)
    started = time.monotonic()
    for start in range(0, len(users), 500):
        events = [
            common_pb2.Event(type=TRACK, user_id=user, event="signed_up")
            for user in users[start : start + 500]
        ]
        await ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=METADATA)
    while True:
        if len(sink.received) >= expected:
            return sink.received[expected - 1].arrived_at - started
        await asyncio.sleep(0.005)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(
    suite: LocalSuite, sink: SmtpSink, sequential_count: int, burst_count: int
) -> None:
    channels = {name: grpc.aio.insecure_channel(suite.address(name)) for name in suite.processes}
    ingest = ingest_pb2_grpc.IngestServiceStub(channels["ingest"])
    stubs = {
        "ingest": ingest,
        "profiles": profile_pb2_grpc.ProfileServiceStub(channels["segments"]),
    }
    await ensure_welcome_journey(channels, METADATA)
    one_by_one = [f"seq-{i}" for i in range(sequential_count)]
    together = [f"burst-{i}" for i in range(burst_count)]
    await identify_all(stubs, one_by_one + together)

    latencies = await sequential(sink, ingest, one_by_one)
    print(f"trigger → inbox, one at a time ({len(latencies)} sign-ups):")
    for label, share in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]:
        print(f"  {label} {percentile(latencies, share) * 1000:7.1f} ms")
    print(
        f"  max {max(latencies) * 1000:7.1f} ms   mean {statistics.mean(latencies) * 1000:.1f} ms"
    )

    elapsed = await burst(sink, ingest, together)
    print(f"burst of {burst_count} sign-ups in one Batch: last email after {elapsed:.2f} s")
    print(f"  {burst_count / elapsed:.0f} emails/s end to end (one SMTP connection per send)")
    for channel in channels.values():
        await channel.close()


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        nats = NatsServer(root / "nats")
        sink = SmtpSink()
        nats.start()
        sink.start()
        suite = LocalSuite(
            root,
            {
                "ENGAGE_NATS_URL": nats.url,
                "ENGAGE_GRPC_PORT": "0",
                "ENGAGE_VAR_DIR": str(root),
                "ENGAGE_SMTP_PORT": str(sink.port),
                "ENGAGE_LOG_LEVEL": "WARNING",
            },
        )
        try:
            suite.start_all()
            asyncio.run(measure(suite, sink, args.sequential, args.burst))
        finally:
            suite.stop_all()
            sink.stop()
            nats.stop()


if __name__ == "__main__":
    main()
