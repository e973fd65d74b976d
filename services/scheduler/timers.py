"""Durable time: waiting enrollments move on when their timer is due.

Timers are rows of the scheduler's database, so a scheduler that stops (or is killed) loses
none: whichever scheduler polls next fires every timer that came due meanwhile. A claim is a
transaction that locks the due timers and their enrollments (`FOR UPDATE SKIP LOCKED` on
PostgreSQL): two replicas never move the same enrollment, and a replica that dies mid-claim
lets its locks go with its connection: the lease is the claiming transaction. On SQLite one
scheduler process claims. Only timers of active journeys fire; a paused journey's wait until
it is resumed.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import Clock
from services.scheduler import enrollment_store, enrollments, journeys
from services.scheduler.enrollments import Outcome
from services.scheduler.models import JourneyRow, TimerRow

log = logging.getLogger(__name__)

# Timers fired per transaction: big enough that 10,000 due at once fire in a few seconds, small
# enough that each claim's locks are short.
TIMERS_PER_CLAIM = 500


class TimerWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        clock: Clock,
        poll_seconds: float = 0.5,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay once fired timers have committed their messages.
        self.published = published
        self.clock = clock
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Fire due timers until none is left, wait the poll interval, repeat until cancelled."""
        while True:
            try:
                while await self.fire_due() == TIMERS_PER_CLAIM:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firing timers failed; retrying at the next poll")
            await asyncio.sleep(self.poll_seconds)

    async def fire_due(self) -> int:
        """One claim: fire up to TIMERS_PER_CLAIM due timers; returns how many were due, or 0
        when another transaction held every one of their enrollments (no use asking again at
        once)."""
        now = self.clock()
        async with db.transaction(self.sessions, db.EVERY_WORKSPACE) as session:
            due = await _due_timers(session, now)
            if not due:
                return 0
            locked = await enrollment_store.lock_for_timers(
                session, (timer.enrollment_id for timer in due)
            )
            await enrollment_store.drop_stale_timers(session, due, locked)
            outcome = _fire(locked, due, now)
            await enrollment_store.save(session, outcome, now)
        if outcome.messages:
            self.published()
            log.info("timers fired", extra={"fired": len(outcome.enrollments), "due": len(due)})
        return len(due) if locked else 0


async def _due_timers(session: AsyncSession, now: datetime) -> list[TimerRow]:
    """The earliest due timers of active journeys."""
    statement = (
        select(TimerRow)
        .join(
            JourneyRow,
            sa.and_(
                col(JourneyRow.workspace) == col(TimerRow.workspace),
                col(JourneyRow.journey_id) == col(TimerRow.journey_id),
            ),
        )
        .where(col(TimerRow.due_at) <= now, JourneyRow.state == journeys.ACTIVE)
        .order_by(col(TimerRow.due_at))
        .limit(TIMERS_PER_CLAIM)
        # Replicas claim disjoint timers rather than wait for each other.
        .with_for_update(of=TimerRow, skip_locked=True)
    )
    return list((await session.exec(statement)).all())


def _fire(locked: list[enrollments.Enrollment], due: list[TimerRow], now: datetime) -> Outcome:
    """Move each locked enrollment on from its timer, where the timer is still its current one."""
    timers = {(t.workspace, t.enrollment_id): t for t in due}
    outcome = Outcome()
    for enrollment in locked:
        timer = timers[(enrollment.workspace, enrollment.enrollment_id)]
        if timer.position == enrollment.position:
            enrollments.run(enrollment, timer.resume_at, now, outcome)
    return outcome
