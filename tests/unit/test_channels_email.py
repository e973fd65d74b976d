"""The MIME message the email adapter sends."""

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from services.channels.adapters.email import (
    OutgoingEmail,
    address_is_valid,
    build_message,
    message_id_for,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def outgoing(**changes: str) -> OutgoingEmail:
    values = {
        "sender": "Engage <no-reply@engage.example>",
        "recipient": "ada@example.com",
        "subject": "Hello Ada",
        "text_body": "Hi Ada",
        "html_body": "<p>Hi Ada</p>",
        "idempotency_key": "campaign-1:u1",
        "unsubscribe_url": "https://engage.example/unsubscribe/acme/abc",
        **changes,
    }
    return OutgoingEmail(**values)


def round_trip(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_headers_of_a_marketing_email() -> None:
    message = round_trip(build_message(outgoing(), NOW))
    assert message["From"] == "Engage <no-reply@engage.example>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Hello Ada"
    assert message["Date"] == "Sat, 01 Mar 2025 09:30:00 +0000"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Unsubscribe"] == "<https://engage.example/unsubscribe/acme/abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_message_id_is_deterministic_per_idempotency_key() -> None:
    first = build_message(outgoing(), NOW)["Message-ID"]
    again = build_message(outgoing(), datetime.now(UTC))["Message-ID"]
    other = build_message(outgoing(idempotency_key="campaign-1:u2"), NOW)["Message-ID"]
    assert first == again == message_id_for("campaign-1:u1", "no-reply@engage.example")
    assert first != other
    assert first.startswith("<") and first.endswith("@engage.example>")


async def test_text_and_html_make_multipart_alternative() -> None:
    message = round_trip(build_message(outgoing(), NOW))
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = message.get_body(("html",))
    assert html is not None and "<p>Hi Ada</p>" in html.get_content()


async def test_single_part_when_only_one_body() -> None:
    html_only = round_trip(build_message(outgoing(text_body=""), NOW))
    assert html_only.get_content_type() == "text/html"
    text_only = round_trip(build_message(outgoing(html_body=""), NOW))
    assert text_only.get_content_type() == "text/plain"


async def test_transactional_email_has_no_unsubscribe_headers() -> None:
    message = build_message(outgoing(unsubscribe_url=""), NOW)
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message


async def test_non_ascii_subject_and_body_survive_encoding() -> None:
    message = round_trip(build_message(outgoing(subject="こんにちは Ada", text_body="é"), NOW))
    assert message["Subject"] == "こんにちは Ada"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "é"


async def test_address_validation() -> None:
    assert address_is_valid("ada@example.com")
    for bad in ["", "ada", "ada@localhost", "Ada <ada@example.com>", "a b@example.com"]:
        assert not address_is_valid(bad), bad


@pytest.mark.parametrize(
    "bad", [outgoing(sender="not an address"), outgoing(subject="a\nBcc: x@example.com")]
)
async def test_sender_and_headers_that_cannot_be_carried_are_refused(bad: OutgoingEmail) -> None:
    with pytest.raises(ValueError):
        build_message(bad, NOW)
