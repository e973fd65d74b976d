"""What the scheduler does with bus messages: events enroll profiles in journeys, end their
enrollments (goals, exit events) and resume those waiting for them."""

import logging
from collections import defaultdict
from collections.abc import Callable

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import subjects
from engage.bus import ConsumerSpec, receive
from engage.clock import Clock, utc_now
from engage.db import transaction
from engage.erasure import Erasure
from engage.outbox import OutboxRelay
from engage.v1 import bus_pb2, common_pb2
from services.scheduler import enrollment_store, enrollments, store
from services.scheduler.enrollment_store import EnrollmentConflict
from services.scheduler.enrollments import Outcome, TrackedEvent

log = logging.getLogger(__name__)

EVENTS = ConsumerSpec("scheduler-events", "EVENTS", [subjects.EVENTS])
# Tries of one batch that met a concurrent enrollment of the same profile.
CONFLICT_ATTEMPTS = 3


class EventConsumer:
    """Applies TRACK events to journeys (see `enrollments.handle_events`).

    One transaction per bus message: the enrollments and the messages announcing them (through
    the outbox) commit together, and a redelivered batch finds its enrollments already there.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        relay: OutboxRelay,
        timers_set: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.relay = relay
        # Wakes the timer worker: a step that reads the profile is a timer due at once.
        self.timers_set = timers_set
        self.clock = clock

    async def handle(self, message: Msg) -> None:
        workspace, batch = receive(message, bus_pb2.EventBatch)
        await self._handle_events(workspace, [batch])

    async def handle_together(self, messages: list[Msg]) -> None:
        """The messages of one fetch in one transaction per workspace: at the rate events
        arrive, a transaction per message would cost more than everything else here."""
        by_workspace: dict[str, list[bus_pb2.EventBatch]] = defaultdict(list)
        for message in messages:
            workspace, batch = receive(message, bus_pb2.EventBatch)
            by_workspace[workspace].append(batch)
        for workspace, batches in by_workspace.items():
            await self._handle_events(workspace, batches)

    async def _handle_events(self, workspace: str, batches: list[bus_pb2.EventBatch]) -> None:
        tracked = [
            TrackedEvent(event.message_id, event.event, event.user_id, event.anonymous_id)
            for batch in batches
            for event in batch.events
            if event.type == common_pb2.EVENT_TYPE_TRACK and event.event
        ]
        if not tracked:
            return
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                outcome = await self._apply(workspace, tracked)
                break
            except EnrollmentConflict:
                # Another replica entered one of these profiles at the same moment: read again.
                if attempt == CONFLICT_ATTEMPTS:
                    raise
        if any(e.timer is not None and e.timer.needs_profile for e in outcome.enrollments):
            self.timers_set()
        if outcome.messages:
            self.relay.notify()
            log.info(
                "journeys moved",
                extra={
                    "workspace": workspace,
                    "batch_ids": [batch.id for batch in batches],
                    "enrollment_ids": [e.enrollment_id for e in outcome.enrollments],
                },
            )

    async def _apply(self, workspace: str, tracked: list[TrackedEvent]) -> Outcome:
        now = self.clock()
        async with transaction(self.sessions, workspace) as session:
            triggered = await store.active_journeys_triggered_by(
                session, {event.event for event in tracked}
            )
            plan = enrollments.EventBatchPlan(
                workspace=workspace,
                journeys=triggered,
                active=await enrollment_store.active_of_profiles(
                    session, (event.profile_key for event in tracked)
                ),
                last_entered=await enrollment_store.last_entered(session, triggered, tracked),
                stored_ids=await enrollment_store.stored_ids(
                    session, enrollment_store.candidate_ids(workspace, triggered, tracked)
                ),
                now=now,
            )
            outcome = enrollments.handle_events(plan, tracked)
            await enrollment_store.save(session, outcome, now)
        return outcome


class ErasureConsumer:
    """GDPR erasure of a profile's enrollments (see `store.erase_person`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def erase(self, erasure: Erasure) -> int:
        async with transaction(self.sessions, erasure.workspace) as session:
            return await store.erase_person(session, erasure)
