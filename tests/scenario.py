"""The thin path as a user drives it: a welcome journey, a customer, a sign-up."""

from google.protobuf.struct_pb2 import Struct

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
from services.channels.sandboxes.smtp_sink import ReceivedMail, SmtpSink
from tests.harness import INGEST_KEY, MARKETER_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth, eventually

JOURNEY = f"workspaces/{WORKSPACE}/journeys/welcome"


async def create_welcome_journey(suite: Suite) -> None:
    """A template greeting by first name, and an active journey sending it on `signed_up`."""
    async with suite.channel("channels") as channel:
        await template_pb2_grpc.TemplateServiceStub(channel).CreateTemplate(
            template_pb2.CreateTemplateRequest(
                parent=f"workspaces/{WORKSPACE}",
                template_id="welcome",
                template=template_pb2.Template(
                    channel=common_pb2.Channel.CHANNEL_EMAIL,
                    email=template_pb2.EmailContent(
                        subject="Welcome, {{ profile.traits.first_name }}",
                        text_body="Hello {{ profile.traits.first_name }}, welcome aboard.",
                    ),
                ),
            ),
            metadata=auth(MARKETER_KEY),
        )
    send = journey_pb2.SendStep(
        channel=common_pb2.Channel.CHANNEL_EMAIL,
        template=f"workspaces/{WORKSPACE}/templates/welcome",
    )
    async with suite.channel("scheduler") as channel:
        await journey_pb2_grpc.JourneyServiceStub(channel).CreateJourney(
            journey_pb2.CreateJourneyRequest(
                parent=f"workspaces/{WORKSPACE}",
                journey_id="welcome",
                journey=journey_pb2.Journey(
                    state=journey_pb2.Journey.State.STATE_ACTIVE,
                    trigger=journey_pb2.JourneyTrigger(
                        event=journey_pb2.EventTrigger(event="signed_up")
                    ),
                    steps=[journey_pb2.JourneyStep(id="welcome-email", send=send)],
                ),
            ),
            metadata=auth(MARKETER_KEY),
        )


async def identify(suite: Suite, user_id: str, first_name: str, email: str) -> None:
    """Identify a customer and wait until the segments service knows their profile."""
    traits = Struct()
    traits.update({"first_name": first_name, "email": email})
    async with suite.channel("ingest") as channel:
        await ingest_pb2_grpc.IngestServiceStub(channel).Identify(
            ingest_pb2.IdentifyRequest(user_id=user_id, traits=traits), metadata=auth(INGEST_KEY)
        )
    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        await eventually(
            lambda: profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=user_id), metadata=auth(SUPPORT_KEY)
            )
        )


async def track(suite: Suite, user_id: str, event: str, message_id: str = "") -> None:
    async with suite.channel("ingest") as channel:
        await ingest_pb2_grpc.IngestServiceStub(channel).Track(
            ingest_pb2.TrackRequest(message_id=message_id, user_id=user_id, event=event),
            metadata=auth(INGEST_KEY),
        )


def mails_to(sink: SmtpSink, address: str) -> list[ReceivedMail]:
    return [mail for mail in sink.received if address in mail.recipients]


async def journey_report(suite: Suite) -> reporting_pb2.JourneyReport:
    async with suite.channel("reporting") as channel:
        report: reporting_pb2.JourneyReport = await reporting_pb2_grpc.ReportingServiceStub(
            channel
        ).GetJourneyReport(
            reporting_pb2.GetJourneyReportRequest(name=f"{JOURNEY}/report"),
            metadata=auth(SUPPORT_KEY),
        )
        return report


async def wait_for_mail(sink: SmtpSink, address: str) -> ReceivedMail:
    async def arrived() -> ReceivedMail | None:
        found = mails_to(sink, address)
        return found[0] if found else None

    return await eventually(arrived)


async def report_once_sent(suite: Suite, sent: int) -> reporting_pb2.JourneyReport:
    """The journey's report, as soon as it counts `sent` enrollments and emails sent.

    Enrollments and deliveries reach reporting on two streams, so wait for both counts.
    """

    async def counted() -> reporting_pb2.JourneyReport | None:
        report = await journey_report(suite)
        done = report.enrolled_count >= sent and report.deliveries.sent >= sent
        return report if done else None

    return await eventually(counted)
