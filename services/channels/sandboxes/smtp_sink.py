"""A local SMTP server that keeps every message it accepts, as `.eml` files and in memory.

The email sink of `engage up` and of the tests: the email adapter talks real SMTP to it. Like
real servers, its refusals quote the address they refuse. Tests can make it slow: it keeps a
message as soon as the message is in, and then answers DATA after `reply_delay_seconds`, or
only once `release()` follows a `hold()` (a provider that has the mail but has not said so).
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)


def _free_port() -> int:
    """A loopback port nothing listens on: aiosmtpd's controller cannot bind port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
SPAM_PREFIX = "spam"  # 554 after DATA: the message itself refused (a permanent failure)


class KeepingHandler:
    """aiosmtpd handler: parse, keep, answer 250 (or 550 / 451 / 554 for the test addresses)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.received: list[ReceivedMail] = []
        self._numbers = itertools.count(1)
        self.reply_delay_seconds = 0.0
        # Cleared by `hold()`: DATA replies wait until it is set again.
        self.replying = threading.Event()
        self.replying.set()

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
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local_part.startswith(DEFERRED_PREFIX):
            return f"451 4.3.0 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        recipients = [str(r) for r in envelope.rcpt_tos]
        spam = [r for r in recipients if r.partition("@")[0].lower().startswith(SPAM_PREFIX)]
        if spam:
            return f"554 5.7.1 Message to <{spam[0]}> refused as spam: {parsed['Subject']}"
        mail = ReceivedMail(str(envelope.mail_from), recipients, parsed, time.monotonic())
        self.received.append(mail)
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{next(self._numbers):06d}.eml").write_bytes(raw)
        log.info("mail kept", extra={"recipients": len(mail.recipients)})
        await asyncio.sleep(self.reply_delay_seconds)
        if not self.replying.is_set():
            await asyncio.to_thread(self.replying.wait)
        return "250 Message accepted for delivery"


class SmtpSink:
    """Runs the keeping handler on a loopback port in a background thread."""

    def __init__(self, folder: Path | None = None, port: int = 0) -> None:
        self.handler = KeepingHandler(folder)
        # aiosmtpd's controller cannot bind port 0: it connects to its port to check it is up.
        self.port = port or _free_port()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="engage-sink"
        )

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def delay_replies(self, seconds: float) -> None:
        """Answer each DATA `seconds` after the message is in (and kept)."""
        self.handler.reply_delay_seconds = seconds

    def hold(self) -> None:
        """Keep what arrives, but answer no DATA until `release()`."""
        self.handler.replying.clear()

    def release(self) -> None:
        self.handler.replying.set()

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m services.channels.sandboxes.smtp_sink`: the sink as its own process, until
    SIGTERM or SIGINT (how `engage up` runs it)."""
    parser = argparse.ArgumentParser(description="A local SMTP server that keeps what it gets.")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--mail-dir", type=Path, help="keep each message here as a .eml file")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    sink = SmtpSink(args.mail_dir, args.port)
    sink.start()
    try:
        stop.wait()
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
