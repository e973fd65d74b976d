"""Durable time: waiting enrollments move on when their timer is due.

Timers are rows of the scheduler's database, so a scheduler that stops (or is killed) loses
none: whichever scheduler polls next fires every timer that came due meanwhile. A claim is a
transaction that locks the due timers and their enrollments (`FOR UPDATE SKIP LOCKED` on
PostgreSQL): two replicas never move the same enrollment, and a replica that dies mid-claim
lets its locks go with its connection: the lease is the claiming transaction. On SQLite one
scheduler process claims. Only timers of active journeys fire; a paused journey's wait until
it is resumed.

A step that reads the profile (a time of day, a date trait) is a timer due at once: before a
claim, the worker fetches the profiles those timers need from ProfileService, each with the
enrollment's trigger event applied (read-after: segments answers only once it has applied that
event), outside any transaction; a profile not ready yet sets the timer again a little later.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import Clock
from engage.polling import poll_forever
from engage.profiles import NotAppliedYet, ProfileDirectory, ProfileView
from services.scheduler import enrollment_store, enrollments, journeys, ledger
from services.scheduler.decisions import Decisions
from services.scheduler.engine import Waiting
from services.scheduler.enrollments import EXITED, Enrollment, Outcome
from services.scheduler.models import EnrollmentRow, JourneyRow, TimerRow
from services.scheduler.policies import WorkspacePolicies

log = logging.getLogger(__name__)

# Timers fired per transaction: big enough that 10,000 due at once fire in a few seconds, small
# enough that each claim's locks are short.
TIMERS_PER_CLAIM = 500
# Profiles fetched at once before a claim.
PROFILE_FETCHES_IN_FLIGHT = 32
# A profile whose trigger is not applied yet is asked again after 0.1 s, doubling up to 5 s, for
# about three minutes; then the enrollment leaves (`profile_not_ready`) rather than decide blind.
FIRST_RETRY = timedelta(seconds=0.1)
LONGEST_RETRY = timedelta(seconds=5)
MAX_PROFILE_ATTEMPTS = 40

# What a fetch found: the profile, or that there is none (erased).
Fetched = ProfileView | None


class TimerWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        profiles: ProfileDirectory,
        policies: WorkspacePolicies,
        clock: Clock,
        event_partitions: int,
        poll_seconds: float = 0.5,
    ) -> None:
        self.sessions = sessions
        # EVENTS' partitions, for the identifies of update-trait steps.
        self.event_partitions = event_partitions
        # Wakes the outbox relay once fired timers have committed their messages.
        self.published = published
        self.profiles = profiles
        self.policies = policies
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Call after committing a timer due now, so it fires without waiting for the poll."""
        self._wake.set()

    async def run(self) -> None:
        """Fire due timers until none is left, wait the poll interval (or a wake), repeat until
        cancelled."""
        await poll_forever(self.fire_due, self.poll_seconds, "firing timers", self._wake)

    async def fire_due(self) -> bool:
        """One claim: fire up to TIMERS_PER_CLAIM due timers; True when more may be due now."""
        now = self.clock()
        fetched = await self._fetch_profiles(now)
        # Read before the claim: no call to another service while it holds its locks.
        async with db.reading(self.sessions, db.EVERY_WORKSPACE) as session:
            policies = await self.policies.of(await _due_workspaces(session, now))
        async with db.transaction(self.sessions, db.EVERY_WORKSPACE) as session:
            due = await _due_timers(session, now)
            if not due:
                return False
            locked = await enrollment_store.lock_for_timers(
                session, (t.enrollment_id for t in due if t.workspace in policies)
            )
            await enrollment_store.drop_stale_timers(session, due, locked)
            decisions = await ledger.decisions_for(
                session, policies, {(e.workspace, e.profile_key) for e in locked}, now
            )
            outcome = _fire(locked, due, now, fetched, decisions)
            await enrollment_store.save(session, outcome, now, self.event_partitions)
        if outcome.messages:
            self.published()
            log.info("timers fired", extra={"fired": len(outcome.enrollments), "due": len(due)})
        # Another transaction holding every enrollment: no use asking again at once.
        again = len(due) == TIMERS_PER_CLAIM or _profile_now(outcome.enrollments, now)
        return bool(locked) and again

    async def _fetch_profiles(self, now: datetime) -> dict[tuple[str, str], Fetched]:
        """The profiles the due timers that read one need, by (workspace, enrollment id); a
        profile not ready yet (or a ProfileService away) is left out."""
        async with db.reading(self.sessions, db.EVERY_WORKSPACE) as session:
            needing = await _needing_profiles(session, now)
        slots = asyncio.Semaphore(PROFILE_FETCHES_IN_FLIGHT)

        async def fetch(row: EnrollmentRow) -> tuple[tuple[str, str], Fetched] | None:
            async with slots:
                try:
                    found = await self.profiles.find(
                        row.workspace,
                        row.user_id,
                        row.anonymous_id,
                        row.trigger_message_id,
                        with_segments=True,
                    )
                except (NotAppliedYet, grpc.aio.AioRpcError):
                    return None
            return (row.workspace, row.enrollment_id), found

        answers = await asyncio.gather(*(fetch(row) for row in needing))
        return dict(answer for answer in answers if answer is not None)


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


async def _due_workspaces(session: AsyncSession, now: datetime) -> list[str]:
    statement = select(TimerRow.workspace).where(col(TimerRow.due_at) <= now).distinct()
    return list((await session.exec(statement)).all())


async def _needing_profiles(session: AsyncSession, now: datetime) -> list[EnrollmentRow]:
    """The enrollments of the due timers that wait for a profile, earliest first."""
    statement = (
        select(EnrollmentRow)
        .join(
            TimerRow,
            sa.and_(
                col(TimerRow.workspace) == col(EnrollmentRow.workspace),
                col(TimerRow.enrollment_id) == col(EnrollmentRow.enrollment_id),
            ),
        )
        .where(col(TimerRow.due_at) <= now, col(TimerRow.needs_profile))
        .order_by(col(TimerRow.due_at))
        .limit(TIMERS_PER_CLAIM)
    )
    return list((await session.exec(statement)).all())


def _fire(
    locked: list[Enrollment],
    due: list[TimerRow],
    now: datetime,
    fetched: dict[tuple[str, str], Fetched],
    decisions: Decisions,
) -> Outcome:
    """Move each locked enrollment on from its timer, where the timer is still its current one."""
    timers = {(t.workspace, t.enrollment_id): t for t in due}
    outcome = Outcome()
    for enrollment in enrollments.by_priority(locked):
        key = (enrollment.workspace, enrollment.enrollment_id)
        timer = timers[key]
        if timer.position != enrollment.position:
            continue
        if not timer.needs_profile:
            enrollments.run(enrollment, timer.resume_at, now, outcome, decisions)
        elif key in fetched:
            _run_with_profile(enrollment, timer, fetched[key], now, outcome, decisions)
        else:
            _retry_profile(enrollment, timer, now, outcome)
    return outcome


def _run_with_profile(
    enrollment: Enrollment,
    timer: TimerRow,
    profile: Fetched,
    now: datetime,
    outcome: Outcome,
    decisions: Decisions,
) -> None:
    if profile is None:
        enrollments.finish(enrollment, EXITED, "profile_not_found", now, outcome)
    else:
        enrollments.run(enrollment, timer.resume_at, now, outcome, decisions, profile)


def _retry_profile(
    enrollment: Enrollment, timer: TimerRow, now: datetime, outcome: Outcome
) -> None:
    if timer.attempts + 1 >= MAX_PROFILE_ATTEMPTS:
        enrollments.finish(enrollment, EXITED, "profile_not_ready", now, outcome)
        return
    delay = min(FIRST_RETRY * 2**timer.attempts, LONGEST_RETRY)
    waiting = Waiting(
        enrollment.step_id,
        now + delay,
        timer.resume_at,
        needs_profile=True,
        attempts=timer.attempts + 1,
    )
    enrollments.retry_later(enrollment, waiting, outcome)


def _profile_now(changed: list[Enrollment], now: datetime) -> bool:
    """Whether a change just set a timer that waits for a profile and is due already."""
    return any(
        e.timer is not None and e.timer.needs_profile and e.timer.due_at <= now for e in changed
    )
