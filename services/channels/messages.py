"""Message records: one per idempotency key, read through MessageService."""

import hashlib

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging
from engage.clock import timestamp
from engage.erasure import Erasure
from engage.errors import NotFound
from engage.resources import name_of
from engage.v1 import common_pb2, message_pb2
from services.channels.models import MessageRow

COLLECTION = "messages"
SENDING, SENT, SKIPPED, FAILED = "SENDING", "SENT", "SKIPPED", "FAILED"
FINAL_STATES = frozenset({SENT, SKIPPED, FAILED})


def message_id_for(idempotency_key: str) -> str:
    """The record's resource id, derived from the key so a send's name is known in advance."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def mask_address(address: str) -> str:
    """`a***@example.com`: enough for support to recognise, not to harvest."""
    if not address:
        return ""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{address[:2]}***"


def to_proto(row: MessageRow, reveal_recipient: bool) -> message_pb2.Message:
    message = message_pb2.Message(
        name=name_of(COLLECTION, row.message_id, row.workspace),
        idempotency_key=row.idempotency_key,
        channel=common_pb2.Channel.Name(row.channel),
        state=f"STATE_{row.state}",
        profile=row.profile,
        template=row.template,
        recipient=row.recipient if reveal_recipient else mask_address(row.recipient),
        reason=row.reason,
        journey=row.journey,
    )
    message.create_time.CopyFrom(timestamp(row.create_time))
    if row.send_time:
        message.send_time.CopyFrom(timestamp(row.send_time))
    return message


async def find_by_key(session: AsyncSession, key: str) -> MessageRow | None:
    """The record of an idempotency key in the session's workspace."""
    query = select(MessageRow).where(col(MessageRow.idempotency_key) == key)
    return (await session.exec(query)).first()


class MessageStore:
    """Reading message records; the send path writes them (see `records.py`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, workspace: str, message_id: str) -> MessageRow:
        query = select(MessageRow).where(col(MessageRow.message_id) == message_id)
        async with db.reading(self.sessions, workspace) as session:
            row = (await session.exec(query)).first()
        if row is None:
            raise NotFound(f"message {message_id!r} not found")
        return row

    async def list(
        self, workspace: str, size: int, token: str, profile: str = ""
    ) -> tuple[list[MessageRow], str]:
        """Newest first; only those to `profile` when given."""
        before = paging.decode_token(token, scope=profile)
        query = select(MessageRow).order_by(col(MessageRow.id).desc()).limit(size + 1)
        if before is not None:
            query = query.where(col(MessageRow.id) < before)
        if profile:
            query = query.where(col(MessageRow.profile) == profile)
        async with db.reading(self.sessions, workspace) as session:
            rows = list((await session.exec(query)).all())
        return paging.page_of(rows, size, lambda row: row.id, scope=profile)


async def erase_person(sessions: async_sessionmaker[AsyncSession], erasure: Erasure) -> int:
    """GDPR erasure: anonymise, not delete, the person's message records.

    A record is what makes a send happen at most once: a replayed `SendRequested` with the same
    idempotency key finds it final and changes nothing. Deleting it would let a replay reach
    the person again, so the row keeps its key, state, template, journey and times (none of
    them personal: keys are built from journey, version, a one-way enrollment digest and step)
    and loses every personal field: user id, profile name, recipient address, provider id.
    Matched by user id and by profile name, so a profile without a user id is erased too (its
    records carry the profile name once channels resolved it). Idempotent.
    """
    who = [col(MessageRow.profile) == erasure.profile]
    if erasure.user_id:
        who.append(col(MessageRow.user_id) == erasure.user_id)
    statement = (
        update(MessageRow)
        .where(or_(*who))
        .values(user_id="", profile="", recipient="", provider_message_id="")
        .execution_options(synchronize_session=False)
    )
    async with db.transaction(sessions, erasure.workspace) as session:
        result = await session.exec(statement)
    return int(result.rowcount or 0)
