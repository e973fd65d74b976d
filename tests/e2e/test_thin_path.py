"""One customer event through all five services, ending as one email in a real SMTP inbox."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from engage.v1 import ingest_pb2, ingest_pb2_grpc, reporting_pb2, reporting_pb2_grpc
from engage_cli.processes import SERVICES
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import INGEST_KEY, Suite, auth, stored_events
from tests.scenario import (
    JOURNEY,
    create_welcome_journey,
    identify,
    mails_to,
    report_once_sent,
    track,
    wait_for_mail,
)

EXPECTED_SERVICES = {
    "ingest": {"engage.v1.IngestService"},
    "segments": {"engage.v1.ProfileService"},
    "scheduler": {"engage.v1.JourneyService"},
    "channels": {"engage.v1.TemplateService", "engage.v1.MessageService"},
    "reporting": {"engage.v1.ReportingService"},
}


async def test_signed_up_customer_gets_one_welcome_email_by_name(
    suite: Suite, smtp_sink: SmtpSink
) -> None:
    await create_welcome_journey(suite)
    await identify(suite, "ada", "Ada", "ada@example.com")

    await track(suite, "ada", "signed_up", message_id="signup-1")
    mail = await wait_for_mail(smtp_sink, "ada@example.com")

    assert mail.message["Subject"] == "Welcome, Ada"
    assert "Hello Ada" in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    report = await report_once_sent(suite, sent=1)
    assert (report.enrolled_count, report.deliveries.sent) == (1, 1)


async def test_ingest_drops_an_event_sent_again_under_the_same_message_id(suite: Suite) -> None:
    async with suite.channel("ingest") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        request = ingest_pb2.TrackRequest(message_id="signup-1", user_id="ada", event="signed_up")
        first = await ingest.Track(request, metadata=auth(INGEST_KEY))
        again = await ingest.Track(request, metadata=auth(INGEST_KEY))

    # Ingest answers once JetStream holds the event: what the stream holds now is final.
    stored = [event for event in await stored_events(suite) if event.message_id == "signup-1"]
    assert len(stored) == 1
    assert (first.duplicate, again.duplicate) == (False, True)


async def test_a_second_sign_up_is_not_welcomed_again(suite: Suite, smtp_sink: SmtpSink) -> None:
    await create_welcome_journey(suite)
    await identify(suite, "ada", "Ada", "ada@example.com")
    await track(suite, "ada", "signed_up", message_id="signup-1")
    await wait_for_mail(smtp_sink, "ada@example.com")

    # A new message id, so ingest passes it on: the journey's enrollment key absorbs it.
    await track(suite, "ada", "signed_up", message_id="signup-2")
    # A second customer's email shows the pipeline has moved past Ada's repeat.
    await identify(suite, "grace", "Grace", "grace@example.com")
    await track(suite, "grace", "signed_up")
    await wait_for_mail(smtp_sink, "grace@example.com")
    report = await report_once_sent(suite, sent=2)

    assert len(mails_to(smtp_sink, "ada@example.com")) == 1
    assert (report.enrolled_count, report.deliveries.sent) == (2, 2)


async def test_every_service_is_healthy_and_lists_its_services(suite: Suite) -> None:
    for name in SERVICES:
        async with suite.channel(name) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ["", *EXPECTED_SERVICES[name]]:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, (name, service)

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            listed = set()
            async for answer in reflection.ServerReflectionInfo(iter([request])):
                listed |= {s.name for s in answer.list_services_response.service}
            assert EXPECTED_SERVICES[name] <= listed, name
            assert "grpc.health.v1.Health" in listed


async def test_engage_calls_need_a_key_but_health_does_not(suite: Suite) -> None:
    async with suite.channel("reporting") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reporting = reporting_pb2_grpc.ReportingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await reporting.GetJourneyReport(
                reporting_pb2.GetJourneyReportRequest(name=f"{JOURNEY}/report")
            )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
