"""What the scheduler does with bus messages: trigger events enroll profiles in journeys."""

import logging
from collections import defaultdict

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import subjects
from engage.bus import ConsumerSpec, receive
from engage.clock import Clock, utc_now
from engage.db import transaction
from engage.erasure import Erasure
from engage.outbox import OutboxRelay, enqueue
from engage.v1 import bus_pb2, common_pb2
from services.scheduler import journeys, store
from services.scheduler.journeys import TrackedEvent

log = logging.getLogger(__name__)

EVENTS = ConsumerSpec("scheduler-events", "EVENTS", [subjects.EVENTS])


class EventConsumer:
    """Enrolls the profiles of TRACK events in the active journeys they trigger.

    One transaction per bus message: the enrollments and the messages announcing them (through
    the outbox) commit together, and a redelivered batch finds its enrollments already there.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        relay: OutboxRelay,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.relay = relay
        self.clock = clock

    async def handle(self, message: Msg) -> None:
        workspace, batch = receive(message, bus_pb2.EventBatch)
        await self._enroll(workspace, [batch])

    async def handle_together(self, messages: list[Msg]) -> None:
        """The messages of one fetch in one transaction per workspace: at the rate events
        arrive, a transaction per message would cost more than everything else here."""
        by_workspace: dict[str, list[bus_pb2.EventBatch]] = defaultdict(list)
        for message in messages:
            workspace, batch = receive(message, bus_pb2.EventBatch)
            by_workspace[workspace].append(batch)
        for workspace, batches in by_workspace.items():
            await self._enroll(workspace, batches)

    async def _enroll(self, workspace: str, batches: list[bus_pb2.EventBatch]) -> None:
        tracked = [
            TrackedEvent(event.event, event.user_id, event.anonymous_id)
            for batch in batches
            for event in batch.events
            if event.type == common_pb2.EVENT_TYPE_TRACK and event.event
        ]
        if not tracked:
            return
        now = self.clock()
        async with transaction(self.sessions, workspace) as session:
            active = await store.active_journeys_triggered_by(
                session, {event.event for event in tracked}
            )
            planned = journeys.plan_enrollments(workspace, tracked, active)
            created = await store.enroll(session, workspace, planned, now)
            for enrollment in created:
                for outgoing in journeys.enrollment_messages(workspace, enrollment, now):
                    enqueue(session, outgoing.subject, outgoing.payload, outgoing.msg_id, workspace)
        if created:
            self.relay.notify()
            log.info(
                "enrolled",
                extra={
                    "workspace": workspace,
                    "batch_ids": [batch.id for batch in batches],
                    "enrollment_ids": [enrollment.enrollment_id for enrollment in created],
                },
            )


class ErasureConsumer:
    """GDPR erasure of a profile's enrollments (see `store.erase_person`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def erase(self, erasure: Erasure) -> int:
        async with transaction(self.sessions, erasure.workspace) as session:
            return await store.erase_person(session, erasure)
