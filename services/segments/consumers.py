"""What the segments service does with bus messages: EVENTS batches update profiles, and the
segments that read what changed are re-evaluated for those profiles in the same transaction."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.bus import ConsumerSpec, PermanentError, decode, workspace_of
from engage.v1 import bus_pb2
from services.segments import realtime
from services.segments.events import BatchApplier
from services.segments.traits import SummedProperties

log = logging.getLogger(__name__)

EVENTS_CONSUMER = ConsumerSpec(
    durable="segments-events", stream="EVENTS", filter_subjects=["engage.events.>"]
)


class EventsConsumer:
    """Applies each EventBatch in one transaction; the bus acks only after it commits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        summed: SummedProperties = frozenset(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.published = published
        self.summed = summed
        self.clock = clock

    async def handle(self, message: Msg) -> None:
        batch = decode(message, bus_pb2.EventBatch)
        workspace = workspace_of(message)
        if batch.workspace and batch.workspace != workspace:
            raise PermanentError("batch workspace differs from its Engage-Workspace header")
        async with db.transaction(self.sessions) as session:
            applier = BatchApplier(session, workspace, clock=self.clock, summed=self.summed)
            applied = await applier.apply(batch)
            transitions = []
            if applied:
                # Same transaction: a membership never disagrees with the profile it follows.
                touched = realtime.touched_by(batch.events, applier.resolver)
                transitions = await realtime.reevaluate(session, workspace, touched, self.clock())
        log.info(
            "event batch applied",
            extra={
                "workspace": workspace,
                "batch": batch.id,
                "events": len(batch.events),
                "applied": applied,
                "membership_changes": len(transitions),
            },
        )
        if applied:
            self.published()
