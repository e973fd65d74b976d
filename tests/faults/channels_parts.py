"""Channels on real parts for the fault tests: the segments and channels processes started by
the Suite harness (with settings of the test's choosing), a bus connection of the test's own,
and what to watch: the SMTP sink, the DELIVERIES stream, the SENDS work queue and the JSON log
lines channels wrote (the harness keeps each process's output in `<run_dir>/<service>.log`).
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engage import subjects
from engage.bus import Bus
from engage.v1 import (
    bus_pb2,
    common_pb2,
    profile_pb2,
    profile_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
)
from engage_cli.processes import ServiceProcess
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import WORKSPACE, Suite, auth, eventually

PARENT = f"workspaces/{WORKSPACE}"
TEMPLATE = "greeting"


async def start(suite: Suite, *services: str, **settings: str) -> None:
    """Start `services` with `ENGAGE_<NAME>` settings added (`sends_ack_wait_seconds="1"`).
    `start` blocks until ready (and makes PostgreSQL databases with asyncio.run): off the loop."""
    suite.env.update({f"ENGAGE_{name.upper()}": value for name, value in settings.items()})
    for service in services:
        await asyncio.to_thread(suite.start, service)


async def customer(suite: Suite, bus: Bus, user_id: str, email: str, first_name: str) -> None:
    """Identify a customer on the bus and wait until segments has their profile with its email."""
    event = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
    )
    event.traits.update({"email": email, "first_name": first_name})
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
    await bus.publish(
        subjects.events(WORKSPACE, user_id, 8), batch, f"{WORKSPACE}:{batch.id}", WORKSPACE
    )
    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        async def has_email() -> bool:
            profile = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=user_id), metadata=auth()
            )
            return bool(profile.traits.fields["email"].string_value == email)

        await eventually(has_email)


async def greeting_template(suite: Suite) -> None:
    """A template that greets the customer by first name in its subject and body."""
    template = template_pb2.Template(
        channel=common_pb2.CHANNEL_EMAIL,
        email=template_pb2.EmailContent(
            subject="Hello {{ profile.traits.first_name }}",
            text_body="Dear {{ profile.traits.first_name }}, this is for you.",
        ),
    )
    async with suite.channel("channels") as channel:
        await template_pb2_grpc.TemplateServiceStub(channel).CreateTemplate(
            template_pb2.CreateTemplateRequest(
                parent=PARENT, template_id=TEMPLATE, template=template
            ),
            metadata=auth(),
        )


def send_request(key: str, user_id: str) -> bus_pb2.SendRequested:
    return bus_pb2.SendRequested(
        id=key,
        workspace=WORKSPACE,
        channel=common_pb2.CHANNEL_EMAIL,
        template=f"{PARENT}/templates/{TEMPLATE}",
        user_id=user_id,
        campaign=f"{PARENT}/campaigns/spring",
    )


def copies_at(sink: SmtpSink, address: str) -> int:
    return sum(1 for mail in sink.received if address in mail.recipients)


async def deliveries_of(bus: Bus, key: str) -> list[bus_pb2.DeliveryEvent]:
    """Every delivery event of the send `key` on the DELIVERIES stream, in order."""
    info = await bus.js.stream_info("DELIVERIES")
    found: list[bus_pb2.DeliveryEvent] = []
    if info.state.messages == 0:
        return found
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        event = bus_pb2.DeliveryEvent.FromString(
            (await bus.js.get_msg("DELIVERIES", sequence)).data or b""
        )
        if event.idempotency_key == key:
            found.append(event)
    return found


async def outcome_of(bus: Bus, key: str) -> bus_pb2.DeliveryEvent:
    """The first delivery event of `key`, once there is one."""

    async def announced() -> bus_pb2.DeliveryEvent | None:
        events = await deliveries_of(bus, key)
        return events[0] if events else None

    return await eventually(announced, timeout=60)


@asynccontextmanager
async def second_channels(suite: Suite) -> AsyncIterator[ServiceProcess]:
    """Another channels process on the same database and durable consumer, as a second replica
    in production: it pulls whatever JetStream hands out while the first is busy."""
    env = {**suite.env, **suite.service_env("channels")}
    env["ENGAGE_PROFILE_SERVICE_ADDRESS"] = suite.address("segments")
    folder = suite.run_dir / "replica"
    replica = ServiceProcess("channels", env, folder, folder / "channels.log")
    replica.start()
    try:
        await asyncio.to_thread(replica.wait_ready)
        yield replica
    finally:
        await asyncio.to_thread(replica.stop)


def channels_logs(suite: Suite) -> list[Path]:
    """The log files of every channels process the test ran (restarts append to theirs)."""
    return [
        path
        for path in (suite.run_dir / "channels.log", suite.run_dir / "replica" / "channels.log")
        if path.exists()
    ]


def log_entries(suite: Suite) -> list[dict[str, Any]]:
    """The JSON log lines channels wrote, across its processes and restarts."""
    entries = []
    lines = [
        line
        for path in channels_logs(suite)
        for line in path.read_text(errors="replace").splitlines()
    ]
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def logged(suite: Suite, message: str, key: str) -> int:
    """How many times channels logged `message` about the send `key`."""
    return sum(
        1
        for entry in log_entries(suite)
        if entry.get("message") == message and entry.get("idempotency_key") == key
    )
