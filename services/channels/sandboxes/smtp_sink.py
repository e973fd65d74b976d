"""A local SMTP server that keeps every message it accepts, as `.eml` files and in memory.

The email sink of `engage up` and of the tests: the email adapter talks real SMTP to it.
"""

import email
import email.policy
import itertools
import logging
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engage.processes import free_port

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    message: EmailMessage
    # time.monotonic() when the sink accepted it.
    arrived_at: float


# Recipients whose local part starts with these get the provider errors tests need.
REJECTED_PREFIX = "reject"  # 550: the mailbox does not exist (a permanent failure)
DEFERRED_PREFIX = "defer"  # 451: try again later (a transient failure)


class KeepingHandler:
    """aiosmtpd handler: parse, keep, answer 250 (or 550 / 451 for the test addresses)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.received: list[ReceivedMail] = []
        self._numbers = itertools.count(1)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local_part = address.partition("@")[0].lower()
        if local_part.startswith(REJECTED_PREFIX):
            return "550 5.1.1 Mailbox unavailable"
        if local_part.startswith(DEFERRED_PREFIX):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        recipients = [str(r) for r in envelope.rcpt_tos]
        mail = ReceivedMail(str(envelope.mail_from), recipients, parsed, time.monotonic())
        self.received.append(mail)
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{next(self._numbers):06d}.eml").write_bytes(raw)
        log.info("mail kept", extra={"recipients": len(mail.recipients)})
        return "250 Message accepted for delivery"


class SmtpSink:
    """Runs the keeping handler on a loopback port in a background thread."""

    def __init__(self, folder: Path | None = None, port: int = 0) -> None:
        self.handler = KeepingHandler(folder)
        # aiosmtpd's controller cannot bind port 0: it connects to its port to check it is up.
        self.port = port or free_port()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="engage-sink"
        )

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
