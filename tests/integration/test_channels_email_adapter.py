"""The SMTP adapter against the real sink: how each provider answer is classified, with
reasons that carry the reply codes and never the server's text (which quotes the address)."""

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from engage_cli.processes import free_port
from services.channels.adapters import (
    PermanentSendError,
    SendError,
    TransientSendError,
    UncertainSendError,
)
from services.channels.adapters.email import OutgoingEmail, SmtpEmailAdapter, build_message
from services.channels.sandboxes.smtp_sink import SmtpSink


def mail_to(address: str) -> EmailMessage:
    email = OutgoingEmail(
        sender="Engage <no-reply@engage.example>",
        recipient=address,
        subject="Hello Ada",
        text_body="Hi Ada",
        html_body="",
        idempotency_key=f"campaign-1:{address}",
    )
    return build_message(email, datetime.now(UTC))


async def test_an_accepted_message_returns_its_message_id(smtp_sink: SmtpSink) -> None:
    message = mail_to("ada@example.com")
    provider_id = await SmtpEmailAdapter("127.0.0.1", smtp_sink.port).send(message)
    assert provider_id == message["Message-ID"]
    assert [mail.recipients for mail in smtp_sink.received] == [["ada@example.com"]]


@pytest.mark.parametrize(
    ("address", "error", "reason"),
    [
        ("reject-ada@example.com", PermanentSendError, "smtp 550 5.1.1: recipient refused"),
        ("defer-ada@example.com", TransientSendError, "smtp 451 4.3.0: recipient refused"),
        ("spam-ada@example.com", PermanentSendError, "smtp 554 5.7.1: message refused"),
    ],
)
async def test_refusals_are_classified_by_code_without_the_servers_text(
    smtp_sink: SmtpSink, address: str, error: type[SendError], reason: str
) -> None:
    with pytest.raises(SendError) as raised:
        await SmtpEmailAdapter("127.0.0.1", smtp_sink.port).send(mail_to(address))
    assert type(raised.value) is error
    assert raised.value.reason == reason


async def test_no_server_is_transient() -> None:
    with pytest.raises(TransientSendError) as raised:
        await SmtpEmailAdapter("127.0.0.1", free_port(), timeout=2).send(mail_to("a@b.example"))
    assert raised.value.reason.startswith("smtp unavailable")


async def test_a_reply_that_never_comes_after_the_message_went_out_is_uncertain(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.hold()
    try:
        with pytest.raises(UncertainSendError):
            await SmtpEmailAdapter("127.0.0.1", smtp_sink.port, timeout=0.5).send(
                mail_to("ada@example.com")
            )
    finally:
        smtp_sink.release()
    # The server has it: sending again could reach the person twice.
    assert len(smtp_sink.received) == 1
