"""Transactional outbox: a service writes its state and the bus messages that announce it in one
transaction; a relay publishes them afterwards (with their `Nats-Msg-Id`, so a relay that crashes
between publish and delete causes no duplicate) and deletes what JetStream acknowledged.
"""

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf.message import Message as ProtoMessage
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, telemetry
from engage.bus import MSG_ID_HEADER, WORKSPACE_HEADER, Bus
from engage.clock import utc_now

log = logging.getLogger(__name__)

RELAY_BATCH = 200


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    subject: str
    workspace: str
    msg_id: str
    payload: bytes
    # JSON object of extra headers (trace context).
    headers: str
    created_at: datetime


def create_outbox_table() -> None:
    """Migration step shared by every service that publishes through an outbox."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("workspace", sa.String, nullable=False),
        sa.Column("msg_id", sa.String, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def outbox_row(
    subject: str, workspace: str, payload: ProtoMessage, msg_id: str, now: datetime
) -> dict[str, Any]:
    """A bus message as an outbox row, for writers that insert many in one statement."""
    return {
        "subject": subject,
        "workspace": workspace,
        "msg_id": msg_id,
        "payload": payload.SerializeToString(),
        "headers": json.dumps(telemetry.inject_headers()),
        "created_at": now,
    }


def enqueue(
    session: AsyncSession, subject: str, payload: ProtoMessage, msg_id: str, workspace: str
) -> None:
    """Add a bus message to the caller's transaction; it is published once that commits."""
    session.add(
        OutboxMessage(
            subject=subject,
            workspace=workspace,
            msg_id=msg_id,
            payload=payload.SerializeToString(),
            headers=json.dumps(telemetry.inject_headers()),
            created_at=utc_now(),
        )
    )


class OutboxRelay:
    """Publishes committed outbox rows in order and deletes them once acknowledged."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self.sessions = sessions
        self.bus = bus
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Call after committing outbox rows, so they go out without waiting for the poll."""
        self._wake.set()

    async def run(self, idle_poll_seconds: float = 0.25, retry_seconds: float = 1.0) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except Exception as error:
                # NATS or the database is away: the rows stay and go out once it is back.
                log.warning("outbox not relayed, will retry: %s", type(error).__name__)
                await asyncio.sleep(retry_seconds)
                continue
            if published:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle_poll_seconds)

    async def publish_pending(self) -> int:
        """Publish up to one batch of pending rows and delete the ones JetStream acknowledged;
        returns how many went out. A row whose publish failed stays for the next pass."""
        async with db.reading(self.sessions, db.EVERY_WORKSPACE) as session:
            rows = (
                await session.exec(
                    select(OutboxMessage).order_by(col(OutboxMessage.id)).limit(RELAY_BATCH)
                )
            ).all()
        if not rows:
            return 0
        outcomes = await asyncio.gather(
            *(self._publish(row) for row in rows), return_exceptions=True
        )
        acknowledged = [
            row.id for row, outcome in zip(rows, outcomes, strict=True) if outcome is None
        ]
        if acknowledged:
            async with db.transaction(self.sessions, db.EVERY_WORKSPACE) as session:
                await session.exec(
                    delete(OutboxMessage).where(col(OutboxMessage.id).in_(acknowledged))
                )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]
        return len(acknowledged)

    async def _publish(self, row: OutboxMessage) -> None:
        headers = json.loads(row.headers)
        headers.update({MSG_ID_HEADER: row.msg_id, WORKSPACE_HEADER: row.workspace})
        await self.bus.publish_raw(row.subject, row.payload, headers)
