"""Email over SMTP (aiosmtplib): a standards-correct MIME message with a deterministic
Message-ID and RFC 8058 one-click unsubscribe headers on non-transactional mail.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from services.channels.adapters import PermanentSendError, TransientSendError


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


def build_message(email: OutgoingEmail, now: datetime) -> EmailMessage:
    """The MIME message: text, HTML, or multipart/alternative when there are both.

    Raises ValueError for a sender or header the message cannot carry.
    """
    if not address_is_valid(parseaddr(email.sender)[1]):
        raise ValueError("the sender is not `Name <address>` or an address")
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = email.recipient
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id_for(email.idempotency_key, email.sender)
    if email.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
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


class SmtpEmailAdapter:
    """Sends each message over its own SMTP connection (STARTTLS when the server offers it)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> str:
        try:
            await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            reason = f"smtp {codes[0] if codes else 550}: recipient refused"
            if codes and all(code >= 500 for code in codes):
                raise PermanentSendError(reason) from error
            raise TransientSendError(reason) from error
        except aiosmtplib.SMTPResponseException as error:
            reason = f"smtp {error.code}: {error.message}"[:300]
            if error.code >= 500:
                raise PermanentSendError(reason) from error
            raise TransientSendError(reason) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise TransientSendError(f"smtp unavailable: {type(error).__name__}") from error
        return str(message["Message-ID"])
