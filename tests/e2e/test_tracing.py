"""One trace runs from the ingested event to the provider call, across gRPC and NATS."""

import json

from engage.v1 import ingest_pb2, ingest_pb2_grpc
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import INGEST_KEY, Suite, auth, eventually
from tests.scenario import create_welcome_journey, identify, wait_for_mail

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def trace_ids_of(suite: Suite, service: str, message: str) -> set[str]:
    lines = (json.loads(line) for line in suite.log(service).splitlines() if line.startswith("{"))
    return {line.get("trace_id", "") for line in lines if line["message"] == message}


async def test_the_callers_trace_reaches_the_email_send(suite: Suite, smtp_sink: SmtpSink) -> None:
    await create_welcome_journey(suite)
    await identify(suite, "ada", "Ada", "ada@example.com")

    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    async with suite.channel("ingest") as channel:
        await ingest_pb2_grpc.IngestServiceStub(channel).Track(
            ingest_pb2.TrackRequest(user_id="ada", event="signed_up"),
            metadata=(*auth(INGEST_KEY), ("traceparent", traceparent)),
        )
    await wait_for_mail(smtp_sink, "ada@example.com")

    async def logged_send() -> set[str]:
        return trace_ids_of(suite, "channels", "sent")

    # ingest → EVENTS → scheduler → outbox → SENDS → channels → SMTP, one trace throughout.
    assert await eventually(logged_send) == {TRACE_ID}
    assert trace_ids_of(suite, "scheduler", "journeys moved") == {TRACE_ID}
