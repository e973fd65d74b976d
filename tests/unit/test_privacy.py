"""What reaches a log line or a dead-letter header carries no address or phone number."""

import io
import json
import logging

import pytest

from engage.privacy import redact
from engage.telemetry import JsonFormatter


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("550 5.1.1 <ann.lee+promo@mail.example.co.jp>: mailbox unavailable", "550 5.1.1"),
        ("SMS to +81 90-1234-5678 refused", "SMS to"),
        ("SMS to 090-1234-5678 refused", "refused"),
    ],
)
def test_addresses_and_phone_numbers_are_masked(text: str, kept: str) -> None:
    masked = redact(text)
    assert kept in masked
    assert "@" not in masked
    assert "1234" not in masked


def test_ids_codes_and_dates_are_left_alone() -> None:
    text = "batch 3f2a9c on 2026-12-01 at 09:00, 550 after 3 tries, profile 12345"
    assert redact(text) == text


def test_the_json_log_formatter_masks_messages_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test-privacy")
    logger.addHandler(handler)
    try:
        raise ValueError("refused ann@example.com")
    except ValueError:
        logger.exception("send failed for %s", "ann@example.com", extra={"to": "ann@example.com"})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "ann@example.com" not in line
    assert json.loads(line)["to"] == "[email]"
