"""What happens to one `SendRequested`: decide, render, send, record — at most once.

Each send carries an idempotency key, and the `messages` table holds one record per key. Once a
record is final (SENT, SKIPPED or FAILED) a repeat of the send changes nothing. Before the
provider is called, the worker commits a claim on the record (`handoff_time`); the outcome
replaces it, in one transaction with its delivery event (through the outbox).

A claim without an outcome means a worker was cut off while handing the message over: it may
have reached the provider, and SMTP has no idempotency key to ask. So a redelivery that finds
one does not send again: once the claim is older than any handoff can last, it records FAILED
with reason `interrupted_during_handoff` (and a `failed` delivery event), for support to see.
At most once, by choice: a customer missing one message is better than receiving it twice.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from google.protobuf import json_format
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import Clock, as_utc, utc_now
from engage.profiles import ProfileDirectory, ProfileView
from engage.resources import is_valid_id, name_of, read_name
from engage.v1 import bus_pb2, common_pb2
from services.channels import records
from services.channels.adapters import (
    ChannelAdapter,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)
from services.channels.adapters.email import (
    InvalidEmail,
    OutgoingEmail,
    address_is_valid,
    build_message,
)
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
from services.channels.rendering import TemplateProblem, profile_context, render_email
from services.channels.templates import COLLECTION as TEMPLATES
from services.channels.templates import TemplateStore

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted_during_handoff"
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
    # Longer than any handoff to the provider can last (the adapter's own deadline plus a
    # margin for clocks): a claim older than this was cut off, not still under way.
    handoff_limit: timedelta = timedelta(seconds=35)


def template_id_of(reference: str, workspace: str) -> str | None:
    """The id in a template reference (`welcome` or `workspaces/{w}/templates/welcome`); None
    for anything else, or for a template of another workspace."""
    if is_valid_id(reference):
        return reference
    name = read_name(reference, TEMPLATES)
    return name.id if name and name.workspace == workspace else None


class SendProcessor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        templates: TemplateStore,
        profiles: ProfileDirectory,
        email: ChannelAdapter[EmailMessage],
        options: EmailOptions,
        notify: Callable[[], None],
        clock: Clock = utc_now,
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
        async with db.reading(self.sessions, workspace) as session:
            existing = await find_by_key(session, send.id)
        if existing and existing.state in FINAL_STATES:
            log.info("duplicate send ignored", extra={**context, "state": existing.state})
            return existing.state
        if existing and existing.handoff_time is not None:
            claimed_at = as_utc(existing.handoff_time)
            return await self._settle_open_claim(existing, send, claimed_at, final_attempt)
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
        except InvalidEmail as error:
            # A rendered From or Subject the email headers refuse (e.g. a line break).
            return await self._finish(record, send, SKIPPED, f"invalid_message: {error}")
        record.recipient = address
        return await self._hand_over(record, send, mail, final_attempt)

    async def _hand_over(
        self, record: MessageRow, send: bus_pb2.SendRequested, mail: EmailMessage, final: bool
    ) -> str:
        """Claim the record, give the message to the provider, record what it answered."""
        await self._claim(record)
        context = {"workspace": record.workspace, "idempotency_key": record.idempotency_key}
        log.info("handing over to provider", extra={**context, "handoff": record.handoffs})
        try:
            record.provider_message_id = await self.email.send(mail)
        except PermanentSendError as error:
            return await self._finish(record, send, FAILED, error.reason)
        except UncertainSendError as error:
            log.warning("handoff cut off; not sent again", extra={**context, "error": error.reason})
            return await self._finish(record, send, FAILED, INTERRUPTED)
        except TransientSendError as error:
            if final:
                return await self._finish(record, send, FAILED, error.reason)
            await self._release(record)
            raise RetryLater(error.reason) from error
        record.send_time = self.clock()
        state = await self._finish(record, send, SENT, "")
        log.info("sent", extra={**context, "message_id": record.message_id})
        return state

    async def _settle_open_claim(
        self,
        record: MessageRow,
        send: bus_pb2.SendRequested,
        claimed_at: datetime,
        final_attempt: bool,
    ) -> str:
        """A claim without an outcome: still under way elsewhere (wait), or cut off (record it,
        never hand the message over again)."""
        age = self.clock() - claimed_at
        if age < self.options.handoff_limit and not final_attempt:
            raise RetryLater("handoff under way elsewhere")
        log.warning(
            "handoff was interrupted; not sent again",
            extra={
                "workspace": record.workspace,
                "idempotency_key": record.idempotency_key,
                "handoffs": record.handoffs,
            },
        )
        return await self._finish(record, send, FAILED, INTERRUPTED)

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

    async def _claim(self, record: MessageRow) -> None:
        """Commit the claim before the provider is called: whoever finds it later knows the
        message may be out."""
        expected = records.version_of(record)
        record.state = SENDING
        record.handoff_time = self.clock()
        record.handoffs += 1
        try:
            await records.save(self.sessions, record, expected)
        except records.RecordChanged as error:
            raise RetryLater("concurrent send of the same key") from error

    async def _release(self, record: MessageRow) -> None:
        """The provider said it did not take the message: a later attempt may send it."""
        expected = records.version_of(record)
        record.handoff_time = None
        try:
            await records.save(self.sessions, record, expected)
        except records.RecordChanged as error:
            raise RetryLater("concurrent send of the same key") from error

    async def _finish(
        self, record: MessageRow, send: bus_pb2.SendRequested, state: str, reason: str
    ) -> str:
        """Make the record final and announce it, in one transaction."""
        expected = records.version_of(record)
        record.state = state
        record.reason = reason
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
        event.occurred_at.FromDatetime(self.clock())
        try:
            await records.save(self.sessions, record, expected, event)
        except records.RecordChanged as error:
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
