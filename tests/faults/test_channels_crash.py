"""A crash of the channels service loses no send and sends nothing twice."""

from engage.bus import Bus
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import Suite, eventually
from tests.scenario import (
    create_welcome_journey,
    identify,
    journey_report,
    mails_to,
    track,
    wait_for_mail,
)


async def pending_sends(suite: Suite) -> int:
    bus = await Bus.connect(suite.nats.url, "test-observer")
    try:
        return int((await bus.js.stream_info("SENDS")).state.messages)
    finally:
        await bus.close()


async def test_killed_channels_delivers_the_pending_email_once_after_restart(
    suite: Suite, smtp_sink: SmtpSink
) -> None:
    await create_welcome_journey(suite)
    await identify(suite, "ada", "Ada", "ada@example.com")

    suite.kill("channels")
    await track(suite, "ada", "signed_up")
    await eventually(lambda: pending_sends(suite))
    assert mails_to(smtp_sink, "ada@example.com") == []

    suite.start("channels")
    mail = await wait_for_mail(smtp_sink, "ada@example.com")
    assert "Ada" in mail.message["Subject"]

    async def sent_once() -> bool:
        report = await journey_report(suite)
        return report.deliveries.sent == 1 and await pending_sends(suite) == 0

    await eventually(sent_once)
    # Restart again: the acknowledged send must not come back.
    suite.processes["channels"].stop()
    suite.start("channels")
    await identify(suite, "grace", "Grace", "grace@example.com")
    await track(suite, "grace", "signed_up")
    await wait_for_mail(smtp_sink, "grace@example.com")
    assert len(mails_to(smtp_sink, "ada@example.com")) == 1
