"""What happens to one `SendRequested`: decide, render, send, record — exactly once in effect.

Each send carries an idempotency key. The `messages` table holds one record per key; once a
record is final (SENT, SKIPPED or FAILED) a repeat of the send changes nothing. The record goes to
SENDING and is committed *before* the provider is called, and to SENT together with its delivery
event (through the outbox) right after. The one window left: a crash after the provider accepted
the mail and before SENT commits. The redelivered send then finds SENDING and sends again — the
same Message-ID, so mail systems that dedupe on it show one message. Closing that window needs a
provider-side idempotency key, which SMTP does not have.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from google.protobuf import json_format
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, outbox
from engage.resources import name_of
from engage.v1 import bus_pb2, common_pb2
from services.channels.adapters import ChannelAdapter, PermanentSendError, TransientSendError
from services.channels.adapters.email import OutgoingEmail, address_is_valid, build_message
from services.channels.messages import COLLECTION as MESSAGES
from services.channels.messages import (
    FAILED,
    FINAL_STATES,
    SENDING,
    SENT,
    SKIPPED,
    find_by_key,
    message_id_for,
)
from services.channels.models import MessageRow
from services.channels.profiles import ProfileDirectory, ProfileView
from services.channels.rendering import TemplateProblem, profile_context, render_email
from services.channels.templates import COLLECTION as TEMPLATES
from services.channels.templates import TemplateStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_EVENT_KIND: dict[str, bus_pb2.DeliveryEvent.Kind] = {
    SENT: bus_pb2.DeliveryEvent.KIND_SENT,
    SKIPPED: bus_pb2.DeliveryEvent.KIND_SKIPPED,
    FAILED: bus_pb2.DeliveryEvent.KIND_FAILED,
}


class RetryLater(Exception):
    """Not possible yet (no profile or address yet, provider busy): the bus redelivers."""


@dataclass(frozen=True)
class EmailOptions:
    default_sender: str
    # Base of the links in mail (unsubscribe); the HTTP side serves them.
    public_url: str


def channel_token(channel: int) -> str:
    """`CHANNEL_EMAIL` → `email`, the last token of delivery subjects."""
    return common_pb2.Channel.Name(channel).removeprefix("CHANNEL_").lower()


def deliveries_subject(workspace: str, channel: int) -> str:
    return f"engage.deliveries.{workspace}.{channel_token(channel)}"


def template_id_of(reference: str, workspace: str) -> str | None:
    """The id in a template reference (`welcome` or `workspaces/{w}/templates/welcome`)."""
    parts = reference.split("/")
    if len(parts) == 1 and reference:
        return reference
    if len(parts) == 4 and parts[:1] + parts[2:3] == ["workspaces", TEMPLATES]:
        return parts[3] if parts[1] == workspace else None
    return None


class SendProcessor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        templates: TemplateStore,
        profiles: ProfileDirectory,
        email: ChannelAdapter[EmailMessage],
        options: EmailOptions,
        notify: Callable[[], None],
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.templates = templates
        self.profiles = profiles
        self.email = email
        self.options = options
        self.notify = notify
        self.clock = clock

    async def process(
        self, send: bus_pb2.SendRequested, workspace: str, final_attempt: bool
    ) -> str:
        """Handle one send; returns the record's state. Raises RetryLater to be redelivered."""
        context = {"workspace": workspace, "idempotency_key": send.id}
        async with self.sessions() as session:
            existing = await find_by_key(session, workspace, send.id)
        if existing and existing.state in FINAL_STATES:
            log.info("duplicate send ignored", extra={**context, "state": existing.state})
            return existing.state
        template_id = template_id_of(send.template, workspace)
        record = existing or self._new_record(send, workspace, template_id)
        if send.channel not in (common_pb2.CHANNEL_UNSPECIFIED, common_pb2.CHANNEL_EMAIL):
            return await self._finish(record, send, SKIPPED, "channel_not_supported")

        template = await self.templates.find(workspace, template_id) if template_id else None
        if template is None:
            return await self._finish(record, send, SKIPPED, "template_not_found")

        profile = await self.profiles.find(workspace, send.user_id, send.anonymous_id)
        if profile is None:
            return await self._not_yet(record, send, "profile_not_found", final_attempt)
        record.profile = profile.name
        address = str(profile.traits.get("email", "")).strip()
        if not address_is_valid(address):
            return await self._not_yet(record, send, "no_address", final_attempt)

        try:
            rendered = render_email(template.email, self._template_context(send, profile, record))
        except TemplateProblem as problem:
            return await self._finish(record, send, SKIPPED, f"render_failed: {problem}")
        outgoing = OutgoingEmail(
            sender=rendered.sender or self.options.default_sender,
            recipient=address,
            subject=rendered.subject,
            text_body=rendered.text_body,
            html_body=rendered.html_body,
            idempotency_key=send.id,
            unsubscribe_url="" if send.transactional else self._unsubscribe_url(record),
        )
        try:
            mail = build_message(outgoing, self.clock())
        except ValueError as error:
            # A rendered From or Subject the email headers refuse (e.g. a line break).
            return await self._finish(record, send, SKIPPED, f"invalid_message: {error}"[:300])
        record.recipient = address
        await self._mark_sending(record)
        try:
            record.provider_message_id = await self.email.send(mail)
        except PermanentSendError as error:
            return await self._finish(record, send, FAILED, error.reason)
        except TransientSendError as error:
            if final_attempt:
                return await self._finish(record, send, FAILED, error.reason)
            raise RetryLater(error.reason) from error
        record.send_time = self.clock()
        state = await self._finish(record, send, SENT, "")
        log.info("sent", extra={**context, "message_id": record.message_id})
        return state

    def _new_record(
        self, send: bus_pb2.SendRequested, workspace: str, template_id: str | None
    ) -> MessageRow:
        return MessageRow(
            workspace=workspace,
            message_id=message_id_for(send.id),
            idempotency_key=send.id,
            channel=send.channel or common_pb2.CHANNEL_EMAIL,
            state=SENDING,
            user_id=send.user_id,
            profile="",
            template=name_of(TEMPLATES, template_id, workspace) if template_id else send.template,
            recipient="",
            reason="",
            journey=send.journey,
            journey_version=send.journey_version,
            step_id=send.step_id,
            campaign=send.campaign,
            provider_message_id="",
            create_time=self.clock(),
        )

    def _template_context(
        self, send: bus_pb2.SendRequested, profile: ProfileView, record: MessageRow
    ) -> dict[str, Any]:
        data = json_format.MessageToDict(send.data) if send.HasField("data") else {}
        extra = {} if send.transactional else {"unsubscribe_url": self._unsubscribe_url(record)}
        return profile_context(profile.user_id or send.user_id, profile.traits, data, **extra)

    def _unsubscribe_url(self, record: MessageRow) -> str:
        # TODO(channels): sign the link (HMAC) once the HTTP unsubscribe endpoint exists.
        base = self.options.public_url.rstrip("/")
        return f"{base}/unsubscribe/{record.workspace}/{record.message_id}"

    async def _not_yet(
        self, record: MessageRow, send: bus_pb2.SendRequested, reason: str, final_attempt: bool
    ) -> str:
        """The profile may still be on its way from segments: retry, and give up at the end."""
        if final_attempt:
            return await self._finish(record, send, SKIPPED, reason)
        raise RetryLater(reason)

    async def _mark_sending(self, record: MessageRow) -> None:
        # `record` is the row itself: `add` inserts it when new and otherwise re-attaches the
        # detached row, so each write is one INSERT or UPDATE with no re-read of the row.
        record.state = SENDING
        try:
            async with db.transaction(self.sessions) as session:
                session.add(record)
        except IntegrityError as error:
            # Another consumer inserted the same key just now; the redelivery will see it.
            raise RetryLater("concurrent send of the same key") from error

    async def _finish(
        self, record: MessageRow, send: bus_pb2.SendRequested, state: str, reason: str
    ) -> str:
        """Make the record final and announce it, in one transaction."""
        record.state = state
        record.reason = reason
        now = self.clock()
        event = bus_pb2.DeliveryEvent(
            id=f"{record.idempotency_key}:{state.lower()}",
            workspace=record.workspace,
            kind=_EVENT_KIND[state],
            channel=common_pb2.Channel.Name(record.channel),
            message=name_of(MESSAGES, record.message_id, record.workspace),
            idempotency_key=record.idempotency_key,
            user_id=send.user_id,
            journey=send.journey,
            journey_version=send.journey_version,
            step_id=send.step_id,
            campaign=send.campaign,
            reason=reason,
        )
        event.occurred_at.FromDatetime(now)
        try:
            async with db.transaction(self.sessions) as session:
                session.add(record)
                outbox.enqueue(
                    session,
                    deliveries_subject(record.workspace, record.channel),
                    event,
                    event.id,
                    record.workspace,
                )
        except IntegrityError as error:
            raise RetryLater("concurrent send of the same key") from error
        self.notify()
        if state != SENT:
            log.info(
                "send not delivered",
                extra={
                    "workspace": record.workspace,
                    "idempotency_key": record.idempotency_key,
                    "state": state,
                    "reason": reason,
                },
            )
        return state
