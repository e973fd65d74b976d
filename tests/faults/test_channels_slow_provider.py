"""A provider slower than the sends consumer's ack wait is never sent to twice: the bus keeps
the message in progress while channels hands it over, so JetStream starts no second delivery,
not even on a second replica that stands idle with its pull request open."""

from engage.bus import Bus
from engage.v1 import bus_pb2
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.faults.channels_parts import (
    copies_at,
    customer,
    deliveries_of,
    greeting_template,
    logged,
    outcome_of,
    second_channels,
    send_request,
    start,
)
from tests.harness import Suite, eventually, publish_sends, sends_settled

ACK_WAIT_SECONDS = 1.0
# Three ack waits: without in-progress heartbeats JetStream would deliver the send again twice.
REPLY_DELAY_SECONDS = 3 * ACK_WAIT_SECONDS + 0.5


async def test_a_send_slower_than_the_ack_wait_is_delivered_and_handed_over_once(
    bare_suite: Suite, bus: Bus, smtp_sink: SmtpSink
) -> None:
    await start(bare_suite, "segments", "channels", sends_ack_wait_seconds=str(ACK_WAIT_SECONDS))
    await customer(bare_suite, bus, "ada", "ada@example.com", "Ada")
    await greeting_template(bare_suite)
    smtp_sink.delay_replies(REPLY_DELAY_SECONDS)
    slow = send_request("spring:ada:greeting", "ada")

    async with second_channels(bare_suite):
        await publish_sends(bus, slow)
        outcome = await outcome_of(bus, slow.id)
        assert outcome.kind == bus_pb2.DeliveryEvent.KIND_SENT
        # A later send, handled after the slow one finished: any further delivery of the slow
        # send is in a log by the time the work queue is empty again.
        smtp_sink.delay_replies(0)
        await customer(bare_suite, bus, "grace", "grace@example.com", "Grace")
        later = send_request("spring:grace:greeting", "grace")
        await publish_sends(bus, later)
        await outcome_of(bus, later.id)
        await eventually(lambda: sends_settled(bus))

    assert copies_at(smtp_sink, "ada@example.com") == 1
    assert logged(bare_suite, "send received", slow.id) == 1
    assert logged(bare_suite, "handing over to provider", slow.id) == 1
    assert [event.kind for event in await deliveries_of(bus, slow.id)] == [
        bus_pb2.DeliveryEvent.KIND_SENT
    ]
