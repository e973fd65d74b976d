"""A local SMTP server that keeps every message it accepts, as `.eml` files and in memory.

The email sink of `engage up` and of the tests: the email adapter talks real SMTP to it.
"""

import email
import email.policy
import itertools
import logging
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


class KeepingHandler:
    """aiosmtpd handler: parse, keep, answer 250."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.received: list[ReceivedMail] = []
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], parsed)
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
