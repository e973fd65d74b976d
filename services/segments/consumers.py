"""What the segments service does with bus messages: EVENTS batches update profiles."""

import logging
from collections.abc import Callable

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.bus import ConsumerSpec, PermanentError, decode, workspace_of
from engage.v1 import bus_pb2
from services.segments.events import BatchApplier

log = logging.getLogger(__name__)

EVENTS_CONSUMER = ConsumerSpec(
    durable="segments-events", stream="EVENTS", filter_subjects=["engage.events.>"]
)


class EventsConsumer:
    """Applies each EventBatch in one transaction; the bus acks only after it commits."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], published: Callable[[], None]
    ) -> None:
        self.sessions = sessions
        self.published = published

    async def handle(self, message: Msg) -> None:
        batch = decode(message, bus_pb2.EventBatch)
        workspace = workspace_of(message)
        if batch.workspace and batch.workspace != workspace:
            raise PermanentError("batch workspace differs from its Engage-Workspace header")
        async with db.transaction(self.sessions) as session:
            applied = await BatchApplier(session, workspace).apply(batch)
        log.info(
            "event batch applied",
            extra={
                "workspace": workspace,
                "batch": batch.id,
                "events": len(batch.events),
                "applied": applied,
            },
        )
        if applied:
            self.published()
