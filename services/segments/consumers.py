"""What the segments service does with bus messages: EVENTS batches update profiles, and the
segments that read what changed are re-evaluated for those profiles in the same transaction.

Poison never spreads. A batch that fails on its data (a value the database refuses, one that
cannot be parsed) is applied again one event at a time, each in a transaction of its own: only
an event that fails alone is dead-lettered (as an EventBatch of that one event, with the
reason), the others are applied and the message is acked. A transient failure (the database
unreachable, a timeout, a concurrent merge) fails the whole message, which the bus retries;
each event applies once (keyed by its message id), so a retry applies only what is left.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, privacy, subjects
from engage.bus import Bus, ConsumerSpec, PermanentError, receive
from engage.clock import Clock, utc_now
from engage.v1 import bus_pb2
from services.segments import data_errors, realtime
from services.segments.event_applier import EventApplier
from services.segments.traits import SummedProperties

log = logging.getLogger(__name__)

EVENTS_CONSUMER = ConsumerSpec(
    durable="segments-events", stream="EVENTS", filter_subjects=[subjects.EVENTS]
)


def is_permanent(error: BaseException) -> bool:
    """Whether the same data can never be applied: the database refused a value (a data or
    integrity error), a value could not be bound or parsed. Connection errors, timeouts and
    anything else are transient."""
    if isinstance(error, PermanentError | ValueError):
        return True
    if isinstance(error, exc.DBAPIError):
        return data_errors.refused_value(error) or data_errors.violated_constraint(error)
    # Not from the database: SQLAlchemy could not turn a value into a parameter.
    return isinstance(error, exc.StatementError) and isinstance(error.orig, TypeError | ValueError)


def reason_of(error: BaseException) -> str:
    """What failed, without the values involved: drivers and parsers quote the offending value
    in their messages, so only the kind of error and the statement's opening are kept."""
    if isinstance(error, exc.StatementError):
        cause = error.orig
        code = data_errors.sqlstate(error) if isinstance(error, exc.DBAPIError) else ""
        statement = " ".join((error.statement or "").split())[:60]
        detail = f"{type(cause).__name__}" + (f" (SQLSTATE {code})" if code else "")
        return privacy.redact(f"{type(error).__name__}: {detail} in {statement!r}")
    # A parser's message up to where it would quote the input.
    message = str(error).split(":", 1)[0].split("'", 1)[0].split('"', 1)[0].strip()
    return privacy.redact(f"{type(error).__name__}: {message}"[:300])


@dataclass
class Outcome:
    """What applying one message did."""

    applied: int = 0
    membership_changes: int = 0
    dead_lettered: int = 0

    def add(self, other: "Outcome") -> None:
        self.applied += other.applied
        self.membership_changes += other.membership_changes
        self.dead_lettered += other.dead_lettered


class EventsConsumer:
    """Applies each EventBatch in one transaction; the bus acks only after it commits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        published: Callable[[], None],
        summed: SummedProperties = frozenset(),
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.published = published
        self.summed = summed
        self.clock = clock

    async def handle(self, message: Msg) -> None:
        workspace, batch = receive(message, bus_pb2.EventBatch)
        try:
            outcome = await self._apply(workspace, batch)
        except Exception as error:
            if not is_permanent(error):
                raise
            log.warning(
                "event batch failed on its data; applying its events one at a time: %s",
                reason_of(error),
                extra={"workspace": workspace, "batch": batch.id, "events": len(batch.events)},
            )
            outcome = await self._apply_one_at_a_time(message, workspace, batch)
        log.info(
            "event batch applied",
            extra={
                "workspace": workspace,
                "batch": batch.id,
                "events": len(batch.events),
                "applied": outcome.applied,
                "membership_changes": outcome.membership_changes,
                "dead_lettered": outcome.dead_lettered,
            },
        )
        if outcome.applied:
            self.published()

    async def _apply(self, workspace: str, batch: bus_pb2.EventBatch) -> Outcome:
        async with db.transaction(self.sessions, workspace) as session:
            applier = EventApplier(session, workspace, clock=self.clock, summed=self.summed)
            applied = await applier.apply(batch)
            if not applied:
                return Outcome()
            # Same transaction: a membership never disagrees with the profile it follows.
            touched = realtime.touched_by(batch.events, applier.resolver)
            transitions = await realtime.reevaluate(session, workspace, touched, self.clock())
        return Outcome(applied, len(transitions))

    async def _apply_one_at_a_time(
        self, message: Msg, workspace: str, batch: bus_pb2.EventBatch
    ) -> Outcome:
        """Each event alone; one that still fails on its data is dead-lettered by itself."""
        total = Outcome()
        for index, event in enumerate(batch.events):
            single = bus_pb2.EventBatch(id=f"{batch.id}:{index}", workspace=workspace)
            single.events.append(event)
            if batch.HasField("occurred_at"):
                single.occurred_at.CopyFrom(batch.occurred_at)
            try:
                total.add(await self._apply(workspace, single))
            except Exception as error:
                if not is_permanent(error):
                    raise
                reason = reason_of(error)
                log.error(
                    "event dead-lettered: %s",
                    reason,
                    extra={"workspace": workspace, "batch": batch.id, "event_index": index},
                )
                await self.bus.dead_letter(
                    EVENTS_CONSUMER.durable, message, single.SerializeToString(), reason, str(index)
                )
                total.dead_lettered += 1
        return total
