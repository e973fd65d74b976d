"""Email over SMTP (aiosmtplib): a standards-correct MIME message with a deterministic
Message-ID and RFC 8058 one-click unsubscribe headers on non-transactional mail.
"""

import asyncio
import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib
from aiosmtplib.response import SMTPResponse

from services.channels.adapters import (
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    recipient: str
    subject: str
    text_body: str
    html_body: str
    # The send's idempotency key: the Message-ID derives from it, so a resend is recognisable.
    idempotency_key: str
    # Set for marketing mail (RFC 8058 one-click); empty for transactional mail.
    unsubscribe_url: str = ""


def message_id_for(idempotency_key: str, sender: str) -> str:
    """`<hash@domain>`: the same key always gives the same Message-ID."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "engage"
    return f"<{digest}@{domain}>"


class InvalidEmail(ValueError):
    """The rendered values make no valid message; the text names the header, never the value."""


def build_message(email: OutgoingEmail, now: datetime) -> EmailMessage:
    """The MIME message: text, HTML, or multipart/alternative when there are both.

    Raises InvalidEmail for a sender or header the message cannot carry.
    """
    if not address_is_valid(parseaddr(email.sender)[1]):
        raise InvalidEmail("the sender is not `Name <address>` or an address")
    message = EmailMessage()
    headers = {
        "From": email.sender,
        "To": email.recipient,
        "Subject": email.subject,
        "Date": format_datetime(now),
        "Message-ID": message_id_for(email.idempotency_key, email.sender),
    }
    if email.unsubscribe_url:
        headers["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for header, value in headers.items():
        try:
            message[header] = value
        except (ValueError, IndexError) as error:
            # The library's own text may quote the value, which can hold a name or an address.
            raise InvalidEmail(f"the {header} header cannot carry the rendered value") from error
    if email.text_body or not email.html_body:
        message.set_content(email.text_body)
        if email.html_body:
            message.add_alternative(email.html_body, subtype="html")
    else:
        message.set_content(email.html_body, subtype="html")
    return message


def address_is_valid(value: str) -> bool:
    """Whether `value` is one plain address (`a@b.c`) the email headers accept."""
    name, address = parseaddr(value)
    if name or not address or address != value.strip():
        return False
    local, _, domain = address.rpartition("@")
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        return False
    return bool(local) and "." in domain


class _HandoffTrackingSmtp(aiosmtplib.SMTP):
    """An SMTP client that remembers whether the message itself started to go out (DATA)."""

    handing_over = False

    async def data(self, *args: Any, **kwargs: Any) -> SMTPResponse:
        self.handing_over = True
        return await super().data(*args, **kwargs)


def smtp_reason(code: int, message: str, what: str) -> str:
    """`smtp 550 5.1.1: recipient refused`: the reply code and enhanced status code only.
    Servers quote the address they refuse in their text, so the text is left out."""
    enhanced = _ENHANCED_STATUS.match(message.strip())
    return f"smtp {code}{' ' + enhanced.group(0) if enhanced else ''}: {what}"


QUIT_TIMEOUT_SECONDS = 2.0
_ENHANCED_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\b")


class SmtpEmailAdapter:
    """Sends each message over its own SMTP connection (STARTTLS when the server offers it).

    `timeout` bounds the whole handoff, connection to reply, so the sends consumer can keep its
    ack wait above it. A failure before the message itself went out is transient or permanent
    by its reply code; a connection lost or timed out while the message went out is uncertain.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> str:
        client = _HandoffTrackingSmtp(hostname=self.host, port=self.port, timeout=self.timeout)
        try:
            await self._hand_over(client, message)
        finally:
            client.close()
        return str(message["Message-ID"])

    async def _hand_over(self, client: _HandoffTrackingSmtp, message: EmailMessage) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await client.connect()
                await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            reason = smtp_reason(
                codes[0] if codes else 550,
                error.recipients[0].message if error.recipients else "",
                "recipient refused",
            )
            if codes and all(code >= 500 for code in codes):
                raise PermanentSendError(reason) from error
            raise TransientSendError(reason) from error
        except aiosmtplib.SMTPResponseException as error:
            reason = smtp_reason(
                error.code, error.message, "message refused" if client.handing_over else "refused"
            )
            if error.code >= 500:
                raise PermanentSendError(reason) from error
            raise TransientSendError(reason) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            kind = type(error).__name__
            if client.handing_over:
                raise UncertainSendError(f"smtp handoff cut off: {kind}") from error
            raise TransientSendError(f"smtp unavailable: {kind}") from error
        # Accepted: a QUIT that fails now changes nothing about the message.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            async with asyncio.timeout(QUIT_TIMEOUT_SECONDS):
                await client.quit()
