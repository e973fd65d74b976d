"""A crash of channels mid-send never reaches a customer twice, counted at the SMTP sink.

SMTP has no idempotency key, so channels commits a claim before it hands a message over. Killed
while the provider holds its reply (the mail is already in), channels restarts, finds the claim
without an outcome, and records `interrupted_during_handoff` instead of sending again. Killed
after recording SENT but before its ack reached JetStream, it finds the record on the
redelivery and sends nothing.
"""

import asyncio

from engage.bus import Bus
from engage.v1 import bus_pb2, message_pb2, message_pb2_grpc
from services.channels.messages import message_id_for
from services.channels.sandboxes.smtp_sink import SmtpSink
from services.channels.sends import INTERRUPTED
from tests.faults.channels_parts import (
    PARENT,
    copies_at,
    customer,
    deliveries_of,
    greeting_template,
    logged,
    outcome_of,
    send_request,
    start,
)
from tests.harness import Suite, auth, eventually, publish_sends, sends_settled

# Small, so that redeliveries come within seconds; the SMTP timeout bounds how long a claim
# can be a handoff still under way (plus a margin), so the interrupted one is settled soon.
SETTINGS = {"sends_ack_wait_seconds": "2", "smtp_timeout_seconds": "3"}
SENT = bus_pb2.DeliveryEvent.KIND_SENT
FAILED = bus_pb2.DeliveryEvent.KIND_FAILED


async def record_of(suite: Suite, key: str) -> message_pb2.Message:
    async with suite.channel("channels") as channel:
        message: message_pb2.Message = await message_pb2_grpc.MessageServiceStub(
            channel
        ).GetMessage(
            message_pb2.GetMessageRequest(name=f"{PARENT}/messages/{message_id_for(key)}"),
            metadata=auth(),
        )
        return message


async def ada_ready_for_a_greeting(suite: Suite, bus: Bus) -> bus_pb2.SendRequested:
    """Segments and channels up, Ada known, the greeting template there: her send, unsent."""
    await start(suite, "segments", "channels", **SETTINGS)
    await customer(suite, bus, "ada", "ada@example.com", "Ada")
    await greeting_template(suite)
    return send_request("spring:ada:greeting", "ada")


async def mail_in(sink: SmtpSink, address: str) -> None:
    await eventually(lambda: copies_at(sink, address) == 1)


async def later_send_arrives(suite: Suite, bus: Bus, sink: SmtpSink) -> None:
    """The positive signal that channels has moved on: a later, different send is delivered."""
    await customer(suite, bus, "grace", "grace@example.com", "Grace")
    later = send_request("spring:grace:greeting", "grace")
    await publish_sends(bus, later)
    assert (await outcome_of(bus, later.id)).kind == SENT
    await mail_in(sink, "grace@example.com")
    await eventually(lambda: sends_settled(bus))


async def test_killed_while_the_provider_holds_its_reply_the_send_is_not_sent_again(
    bare_suite: Suite, bus: Bus, smtp_sink: SmtpSink
) -> None:
    send = await ada_ready_for_a_greeting(bare_suite, bus)
    smtp_sink.hold()

    await publish_sends(bus, send)
    await mail_in(smtp_sink, "ada@example.com")
    bare_suite.kill("channels")  # the sink has the mail; channels never heard its 250
    smtp_sink.release()
    await start(bare_suite, "channels")

    outcome = await outcome_of(bus, send.id)
    assert (outcome.kind, outcome.reason) == (FAILED, INTERRUPTED)
    await later_send_arrives(bare_suite, bus, smtp_sink)
    assert copies_at(smtp_sink, "ada@example.com") == 1
    assert [event.kind for event in await deliveries_of(bus, send.id)] == [FAILED]
    assert logged(bare_suite, "handing over to provider", send.id) == 1
    assert logged(bare_suite, "handoff was interrupted; not sent again", send.id) == 1
    record = await record_of(bare_suite, send.id)
    assert (record.state, record.reason) == (message_pb2.Message.STATE_FAILED, INTERRUPTED)


async def test_a_sent_send_published_again_is_not_sent_again(
    bare_suite: Suite, bus: Bus, smtp_sink: SmtpSink
) -> None:
    send = await ada_ready_for_a_greeting(bare_suite, bus)
    await publish_sends(bus, send)
    assert (await outcome_of(bus, send.id)).kind == SENT

    # The same send again, past JetStream's dedupe: a replay, or a publisher that retried.
    await publish_sends(bus, send, msg_id=f"{send.id}:again")

    await eventually(lambda: logged(bare_suite, "duplicate send ignored", send.id) == 1)
    await later_send_arrives(bare_suite, bus, smtp_sink)
    assert copies_at(smtp_sink, "ada@example.com") == 1
    assert [event.kind for event in await deliveries_of(bus, send.id)] == [SENT]


async def test_killed_after_recording_sent_before_the_ack_the_redelivery_sends_nothing(
    bare_suite: Suite, bus: Bus, smtp_sink: SmtpSink
) -> None:
    send = await ada_ready_for_a_greeting(bare_suite, bus)
    smtp_sink.hold()
    await publish_sends(bus, send)
    await mail_in(smtp_sink, "ada@example.com")

    # NATS goes away while the provider holds its reply, so the ack that follows the SENT
    # record cannot reach JetStream; channels is killed before NATS is back.
    nats_process = bare_suite.nats.process
    assert nats_process is not None
    nats_process.kill()
    nats_process.wait()
    smtp_sink.release()

    async def recorded_sent() -> bool:
        record = await record_of(bare_suite, send.id)
        return record.state == message_pb2.Message.STATE_SENT

    await eventually(recorded_sent)
    bare_suite.kill("channels")
    await asyncio.to_thread(bare_suite.nats.start)
    await start(bare_suite, "channels")

    await eventually(lambda: logged(bare_suite, "duplicate send ignored", send.id) == 1)
    await later_send_arrives(bare_suite, bus, smtp_sink)
    assert copies_at(smtp_sink, "ada@example.com") == 1
    assert logged(bare_suite, "handing over to provider", send.id) == 1
    assert [event.kind for event in await deliveries_of(bus, send.id)] == [SENT]
