"""The demo: one customer signs up and gets a welcome email, through all five services.

Identify (ingest) → profile (segments) → `signed_up` (ingest) → journey "welcome" (scheduler)
→ send → email rendered with the profile's name and sent over SMTP (channels) → `sent` counted
for the journey (reporting).
"""

import asyncio
import email
import email.policy
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.struct_pb2 import Struct

from engage.auth import API_KEY_HEADER
from engage.v1 import (
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    reporting_pb2,
    reporting_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
)

T = TypeVar("T")
WORKSPACE = "demo"
TEMPLATE = f"workspaces/{WORKSPACE}/templates/welcome"
JOURNEY = f"workspaces/{WORKSPACE}/journeys/welcome"


async def play(addresses: dict[str, str], api_key: str, mail_dir: Path) -> bool:
    """Run the demo against a running suite; print each step; True if the email arrived."""
    metadata = ((API_KEY_HEADER, api_key),)
    user_id = f"demo-{uuid.uuid4().hex[:8]}"
    address = f"{user_id}@example.com"
    channels = {name: grpc.aio.insecure_channel(addr) for name, addr in addresses.items()}
    try:
        await ensure_welcome_journey(channels, metadata)
        print(f"1. journey {JOURNEY}: on `signed_up`, send the welcome email")

        traits = Struct()
        traits.update({"first_name": "Ada", "last_name": "Lovelace", "email": address})
        ingest = ingest_pb2_grpc.IngestServiceStub(channels["ingest"])
        await ingest.Identify(
            ingest_pb2.IdentifyRequest(user_id=user_id, traits=traits), metadata=metadata
        )
        profiles = profile_pb2_grpc.ProfileServiceStub(channels["segments"])
        profile = await _poll(
            lambda: profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=user_id), metadata=metadata
            )
        )
        print(f"2. identified {user_id}: profile {profile.name}")

        started = time.monotonic()
        await ingest.Track(
            ingest_pb2.TrackRequest(user_id=user_id, event="signed_up"), metadata=metadata
        )
        print(f"3. tracked `signed_up` for {user_id}")

        mail = await _poll(lambda: asyncio.to_thread(_find_mail, mail_dir, address))
        print(f"4. email in the inbox after {time.monotonic() - started:.2f}s: {mail['Subject']!r}")

        reporting = reporting_pb2_grpc.ReportingServiceStub(channels["reporting"])
        request = reporting_pb2.GetJourneyReportRequest(name=f"{JOURNEY}/report")
        report = await _poll(lambda: _sent_report(reporting, request, metadata))
        print(
            f"5. report: {report.enrolled_count} enrolled, {report.deliveries.sent} sent "
            "(every demo run adds one)"
        )
        return True
    finally:
        for channel in channels.values():
            await channel.close()


async def ensure_welcome_journey(
    channels: dict[str, grpc.aio.Channel], metadata: tuple[tuple[str, str], ...]
) -> None:
    templates = template_pb2_grpc.TemplateServiceStub(channels["channels"])
    template = template_pb2.Template(
        display_name="Welcome",
        channel=common_pb2.Channel.CHANNEL_EMAIL,
        email=template_pb2.EmailContent(
            subject="Welcome to Engage, {{ profile.traits.first_name }}!",
            text_body="Hello {{ profile.traits.first_name }},\n\nthank you for signing up.\n",
            html_body=(
                "<p>Hello {{ profile.traits.first_name }},</p><p>thank you for signing up.</p>"
            ),
        ),
    )
    await _create_once(
        templates.CreateTemplate(
            template_pb2.CreateTemplateRequest(
                parent=f"workspaces/{WORKSPACE}", template_id="welcome", template=template
            ),
            metadata=metadata,
        )
    )
    journeys = journey_pb2_grpc.JourneyServiceStub(channels["scheduler"])
    journey = journey_pb2.Journey(
        display_name="Welcome",
        state=journey_pb2.Journey.State.STATE_ACTIVE,
        trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event="signed_up")),
        steps=[
            journey_pb2.JourneyStep(
                id="welcome-email",
                send=journey_pb2.SendStep(
                    channel=common_pb2.Channel.CHANNEL_EMAIL, template=TEMPLATE
                ),
            )
        ],
    )
    await _create_once(
        journeys.CreateJourney(
            journey_pb2.CreateJourneyRequest(
                parent=f"workspaces/{WORKSPACE}", journey_id="welcome", journey=journey
            ),
            metadata=metadata,
        )
    )


async def _create_once(call: Awaitable[object]) -> None:
    """Create a resource unless an earlier demo run already did."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def _sent_report(
    reporting: reporting_pb2_grpc.ReportingServiceStub,
    request: reporting_pb2.GetJourneyReportRequest,
    metadata: tuple[tuple[str, str], ...],
) -> reporting_pb2.JourneyReport | None:
    report = await reporting.GetJourneyReport(request, metadata=metadata)
    return report if report.deliveries.sent > 0 else None


def _find_mail(mail_dir: Path, recipient: str) -> email.message.EmailMessage | None:
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if recipient in str(message["To"]):
            assert isinstance(message, email.message.EmailMessage)
            return message
    return None


async def _poll(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("the demo step did not complete in time; see var/run/*.log")
        await asyncio.sleep(0.05)
