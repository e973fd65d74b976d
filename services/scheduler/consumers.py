"""What the scheduler does with bus messages: events enroll profiles in journeys, end their
enrollments (goals, exit events) and resume those waiting for them."""

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime

from google.protobuf import json_format
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import subjects
from engage.bus import ConsumerSpec, receive
from engage.clock import Clock, utc_now
from engage.db import transaction
from engage.erasure import Erasure
from engage.events import event_time
from engage.outbox import OutboxRelay
from engage.v1 import bus_pb2, common_pb2
from services.scheduler import campaign_store, campaigns, enrollment_store, enrollments, store
from services.scheduler.decisions import Policy
from services.scheduler.enrollment_store import EnrollmentConflict
from services.scheduler.enrollments import (
    MembershipChange,
    Outcome,
    TrackedEvent,
    event_entries,
    membership_entries,
)
from services.scheduler.policies import WorkspacePolicies

# Reads what a batch works on, in the caller's transaction, and works out what it changes.
Apply = Callable[[AsyncSession, datetime, Callable[[], Awaitable[Policy]]], Awaitable[Outcome]]

log = logging.getLogger(__name__)

EVENTS = ConsumerSpec("scheduler-events", "EVENTS", [subjects.EVENTS])
MEMBERSHIPS = ConsumerSpec("scheduler-memberships", "PROFILES", [subjects.MEMBERSHIPS])
DELIVERIES = ConsumerSpec("scheduler-deliveries", "DELIVERIES", [subjects.DELIVERIES])
# What channels reports of a campaign's send: whether it was made.
_OUTCOMES = {
    bus_pb2.DeliveryEvent.KIND_SENT: campaign_store.SENT,
    bus_pb2.DeliveryEvent.KIND_FAILED: campaign_store.FAILED,
    bus_pb2.DeliveryEvent.KIND_SKIPPED: campaign_store.FAILED,
}
# What an A/B test's winner is chosen by: the recipient's column each engagement sets.
_ENGAGEMENTS = {
    bus_pb2.DeliveryEvent.KIND_OPENED: "opened",
    bus_pb2.DeliveryEvent.KIND_CLICKED: "clicked",
}
# Tries of one batch that met a concurrent enrollment of the same profile.
CONFLICT_ATTEMPTS = 3


class JourneyBatches:
    """Runs a batch against journeys in one transaction per workspace: the enrollments and the
    messages announcing them (through the outbox) commit together, and a redelivered batch
    finds its enrollments already there."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        relay: OutboxRelay,
        timers_set: Callable[[], None],
        policies: WorkspacePolicies,
        event_partitions: int,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.relay = relay
        # EVENTS' partitions, for the identifies of update-trait steps.
        self.event_partitions = event_partitions
        self.policies = policies
        # Wakes the timer worker: a step that reads the profile is a timer due at once.
        self.timers_set = timers_set
        self.clock = clock

    async def run(self, workspace: str, batch_ids: list[str], apply: Apply) -> None:
        def policy() -> Awaitable[Policy]:
            return self.policies.policy(workspace)

        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                now = self.clock()
                async with transaction(self.sessions, workspace) as session:
                    outcome = await apply(session, now, policy)
                    await enrollment_store.save(session, outcome, now, self.event_partitions)
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
                    "batch_ids": batch_ids,
                    "enrollment_ids": [e.enrollment_id for e in outcome.enrollments],
                },
            )


class EventConsumer:
    """Applies TRACK events to journeys (see `enrollments.handle_events`)."""

    def __init__(self, batches: JourneyBatches) -> None:
        self.batches = batches

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
        tracks = [
            event
            for batch in batches
            for event in batch.events
            if event.type == common_pb2.EVENT_TYPE_TRACK and event.event
        ]
        tracked = [
            TrackedEvent(
                event.message_id,
                event.event,
                event.user_id,
                event.anonymous_id,
                json_format.MessageToJson(event.properties, indent=None),
            )
            for event in tracks
        ]
        if not tracked:
            return

        async def apply(
            session: AsyncSession, now: datetime, policy: Callable[[], Awaitable[Policy]]
        ) -> Outcome:
            journeys = await store.active_journeys_triggered_by(
                session, {event.event for event in tracked}
            )
            entries = [entry for event in tracked for entry in event_entries(journeys, event)]
            keys = (event.profile_key for event in tracked)
            plan = await enrollment_store.load_plan(
                session, workspace, journeys, entries, keys, now, policy
            )
            done = [(e.user_id, e.event, event_time(e, now)) for e in tracks if e.user_id]
            await campaign_store.record_conversions(session, workspace, done)
            return enrollments.handle_events(plan, tracked)

        await self.batches.run(workspace, [batch.id for batch in batches], apply)


class MembershipConsumer:
    """Enrolls profiles entering or leaving segments in the journeys those changes trigger."""

    def __init__(self, batches: JourneyBatches) -> None:
        self.batches = batches

    async def handle(self, message: Msg) -> None:
        workspace, batch = receive(message, bus_pb2.MembershipChanges)
        changes = [
            MembershipChange(
                change.id,
                change.segment,
                change.user_id,
                change.change == bus_pb2.MembershipChanged.CHANGE_ENTERED,
            )
            for change in batch.changes
        ]
        if not changes:
            return

        async def apply(
            session: AsyncSession, now: datetime, policy: Callable[[], Awaitable[Policy]]
        ) -> Outcome:
            journeys = await store.active_journeys_triggered_by_segments(
                session, {change.segment for change in changes}
            )
            entries = [e for change in changes for e in membership_entries(journeys, change)]
            keys = (entry.profile_key for entry in entries)
            plan = await enrollment_store.load_plan(
                session, workspace, journeys, entries, keys, now, policy
            )
            return enrollments.handle_memberships(plan, changes)

        await self.batches.run(workspace, [batch.id], apply)


class DeliveryConsumer:
    """What channels reports of the scheduler's sends. Of a journey's send: the event its
    enrollment may wait for (`opened:<step>`, see `enrollments.delivery_event`). Of a
    campaign's: what became of each queued send (and who opened or clicked, which an A/B
    test's winner is chosen by); a campaign completes once every recipient is accounted for."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        batches: JourneyBatches,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.batches = batches
        self.clock = clock

    async def handle(self, message: Msg) -> None:
        workspace, event = receive(message, bus_pb2.DeliveryEvent)
        if event.journey:
            await self._to_journey(workspace, event)
        else:
            await self._to_campaign(workspace, event)

    async def _to_journey(self, workspace: str, delivery: bus_pb2.DeliveryEvent) -> None:
        kind = bus_pb2.DeliveryEvent.Kind.Name(delivery.kind).removeprefix("KIND_").lower()
        event = enrollments.delivery_event(
            kind, delivery.idempotency_key, delivery.user_id, delivery.id
        )
        if event is None or not event.user_id:
            return

        async def apply(
            session: AsyncSession, now: datetime, policy: Callable[[], Awaitable[Policy]]
        ) -> Outcome:
            plan = await enrollment_store.load_plan(
                session, workspace, [], [], [event.profile_key], now, policy
            )
            return enrollments.handle_events(plan, [event])

        await self.batches.run(workspace, [delivery.id], apply)

    async def _to_campaign(self, workspace: str, event: bus_pb2.DeliveryEvent) -> None:
        outcome, engagement = _OUTCOMES.get(event.kind), _ENGAGEMENTS.get(event.kind)
        if not event.campaign or (outcome is None and engagement is None):
            return
        campaign_id = event.campaign.rsplit("/", 1)[-1]
        async with transaction(self.sessions, workspace) as session:
            if engagement is not None:
                key = event.idempotency_key
                await campaign_store.record_engagement(session, campaign_id, key, engagement)
                return
            assert outcome is not None
            row = await campaign_store.record_outcomes(
                session, campaign_id, {event.idempotency_key: outcome}, self.clock()
            )
        if row is not None and row.state == campaigns.COMPLETED:
            log.info("campaign completed", extra={"workspace": workspace, "campaign": campaign_id})


class ErasureConsumer:
    """GDPR erasure of a profile's enrollments (see `store.erase_person`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def erase(self, erasure: Erasure) -> int:
        async with transaction(self.sessions, erasure.workspace) as session:
            return await store.erase_person(session, erasure)
