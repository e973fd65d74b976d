"""Writing message records, the one row per idempotency key that makes a send happen at most
once. After the first insert every write is a compare-and-set on the version the writer read,
so two workers holding the same send (a redelivery, or one key published twice) never both
decide what happened to it.
"""

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, outbox, subjects
from engage.v1 import bus_pb2
from services.channels.messages import SENDING
from services.channels.models import MessageRow


class RecordChanged(Exception):
    """Another worker wrote the record since it was read (or inserted the same key first)."""


@dataclass(frozen=True)
class Version:
    """What a compare-and-set checks: still SENDING, the same number of handoffs, and a claim
    held (or not) as when read."""

    handoffs: int
    claimed: bool


def version_of(record: MessageRow) -> Version | None:
    """The record's version as stored; None for a record not inserted yet."""
    if record.id is None:
        return None
    return Version(record.handoffs, record.handoff_time is not None)


async def save(
    sessions: async_sessionmaker[AsyncSession],
    record: MessageRow,
    expected: Version | None,
    event: bus_pb2.DeliveryEvent | None = None,
) -> None:
    """Insert `record` (`expected` None) or update it if it is still at `expected`, with `event`
    queued in the outbox in the same transaction. Raises RecordChanged when another worker
    got there first."""
    try:
        async with db.transaction(sessions, record.workspace) as session:
            if expected is None:
                session.add(record)
            elif not await _compare_and_set(session, record, expected):
                raise RecordChanged(record.idempotency_key)
            if event is not None:
                subject = subjects.deliveries(record.workspace, record.channel)
                outbox.enqueue(session, subject, event, event.id, record.workspace)
    except IntegrityError as error:
        raise RecordChanged(record.idempotency_key) from error


async def _compare_and_set(session: AsyncSession, record: MessageRow, expected: Version) -> bool:
    claim = col(MessageRow.handoff_time)
    statement = (
        update(MessageRow)
        .where(
            col(MessageRow.id) == record.id,
            col(MessageRow.state) == SENDING,
            col(MessageRow.handoffs) == expected.handoffs,
            claim.is_not(None) if expected.claimed else claim.is_(None),
        )
        .values(
            state=record.state,
            reason=record.reason,
            profile=record.profile,
            recipient=record.recipient,
            provider_message_id=record.provider_message_id,
            send_time=record.send_time,
            handoff_time=record.handoff_time,
            handoffs=record.handoffs,
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0) == 1
