"""Failed sends leave no personal data in channels' logs or in dead-letter headers, even when
the provider's refusal quotes the address and the subject (as real SMTP servers do)."""

from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.faults.channels_parts import (
    channels_logs,
    customer,
    deliveries_of,
    greeting_template,
    logged,
    outcome_of,
    send_request,
    start,
)
from tests.harness import Suite, dead_letters, eventually, publish_sends

# user id → (address, first name). The sink refuses each address in its own way.
PEOPLE = {
    "u-refused": ("reject-zebediah.quux@example.com", "Zebediah"),  # 550 at RCPT
    "u-spam": ("spam-xanthippe.vole@example.org", "Xanthippe"),  # 554 after DATA
    "u-deferred": ("defer-quentin.marsh@example.net", "Quentin"),  # 451 at RCPT, retried
}
PERSONAL = [value for person in PEOPLE.values() for value in person] + ["Quux", "Vole", "Marsh"]


async def dead_letter_headers(bus: Bus) -> list[dict[str, str]]:
    return [dict(stored.headers or {}) for stored in await dead_letters(bus)]


def poison_send() -> bus_pb2.SendRequested:
    """A send that can never be handled (its payload names another workspace than its
    header), carrying the person's address and name in its data: it is dead-lettered."""
    send = bus_pb2.SendRequested(
        id="spring:u-refused:poison",
        workspace="globex",
        channel=common_pb2.CHANNEL_EMAIL,
        user_id="u-refused",
    )
    send.data.update({"email": PEOPLE["u-refused"][0], "name": "Zebediah Quux"})
    return send


async def test_failed_sends_leave_no_address_or_name_in_logs_or_dead_letters(
    bare_suite: Suite, bus: Bus, smtp_sink: SmtpSink
) -> None:
    await start(bare_suite, "segments", "channels")
    for user_id, (address, first_name) in PEOPLE.items():
        await customer(bare_suite, bus, user_id, address, first_name)
    await greeting_template(bare_suite)
    sends = {user_id: send_request(f"spring:{user_id}:greeting", user_id) for user_id in PEOPLE}

    for send in sends.values():
        await publish_sends(bus, send)
    await publish_sends(bus, poison_send(), msg_id="poison")

    refused = await outcome_of(bus, sends["u-refused"].id)
    assert (refused.kind, refused.reason) == (
        bus_pb2.DeliveryEvent.KIND_FAILED,
        "smtp 550 5.1.1: recipient refused",
    )
    spam = await outcome_of(bus, sends["u-spam"].id)
    assert (spam.kind, spam.reason) == (
        bus_pb2.DeliveryEvent.KIND_FAILED,
        "smtp 554 5.7.1: message refused",
    )
    deferred = sends["u-deferred"].id
    # Delivered a second time: the first attempt's 451 was logged as a retry by then.
    await eventually(lambda: logged(bare_suite, "send received", deferred) >= 2)
    headers = await eventually(lambda: dead_letter_headers(bus))
    assert headers[0]["Engage-Consumer"] == "channels-sends"
    assert smtp_sink.received == []

    logs = "\n".join(path.read_text(errors="replace") for path in channels_logs(bare_suite))
    assert "smtp 550 5.1.1: recipient refused" in logs
    assert "smtp 451 4.3.0: recipient refused" in logs
    assert "dead-lettered" in logs
    for value in PERSONAL:
        assert value.lower() not in logs.lower(), f"{value!r} is in channels' log"
        for header in headers:
            assert value.lower() not in repr(header).lower(), f"{value!r} in a dead letter"
    events = [event for send in sends.values() for event in await deliveries_of(bus, send.id)]
    for value in PERSONAL:
        assert all(value.lower() not in event.reason.lower() for event in events)
