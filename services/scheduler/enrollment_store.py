"""Reading enrollments for a change and writing the change back: the rows, their timers and the
bus messages (through the outbox), in the caller's transaction.

Enrollments are read with a row lock (PostgreSQL): an event and a timer for the same enrollment,
handled by two replicas at once, take turns, and the second sees what the first did. On SQLite
the transactions of the one scheduler process take turns anyway.
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import as_utc
from engage.errors import EngageError
from engage.outbox import OutboxMessage
from services.scheduler import enrollments, ledger
from services.scheduler.decisions import Policy
from services.scheduler.enrollments import (
    ACTIVE,
    ActiveJourney,
    BatchPlan,
    Enrollment,
    Entry,
    Outcome,
)
from services.scheduler.models import EnrollmentRow, JourneyVersionRow, TimerRow
from services.scheduler.outgoing import identify_rows, outbox_rows
from services.scheduler.store import definition_of


class EnrollmentConflict(EngageError):
    """Another transaction entered the same profile at the same moment; handle again."""

    def __init__(self) -> None:
        super().__init__("an enrollment was written concurrently")


async def active_of_profiles(
    session: AsyncSession, profile_keys: Iterable[str]
) -> list[Enrollment]:
    """The active enrollments of these profiles, locked, each with its version's definition."""
    keys = sorted(set(profile_keys))
    if not keys:
        return []
    return await _locked(
        session,
        col(EnrollmentRow.profile_key).in_(keys),
        col(EnrollmentRow.status) == ACTIVE,
        skip_locked=False,
    )


async def lock_for_timers(session: AsyncSession, enrollment_ids: Iterable[str]) -> list[Enrollment]:
    """These active enrollments, locked; those another replica holds are skipped (it is moving
    them now; their timers are gone or stale when it lets go)."""
    ids = sorted(set(enrollment_ids))
    if not ids:
        return []
    return await _locked(
        session,
        col(EnrollmentRow.enrollment_id).in_(ids),
        col(EnrollmentRow.status) == ACTIVE,
        skip_locked=True,
    )


async def _locked(
    session: AsyncSession, *where: sa.ColumnElement[bool], skip_locked: bool
) -> list[Enrollment]:
    statement = (
        select(EnrollmentRow, JourneyVersionRow.definition)
        .join(
            JourneyVersionRow,
            sa.and_(
                col(JourneyVersionRow.workspace) == col(EnrollmentRow.workspace),
                col(JourneyVersionRow.journey_id) == col(EnrollmentRow.journey_id),
                col(JourneyVersionRow.version) == col(EnrollmentRow.journey_version),
            ),
        )
        .where(*where)
        # One order everywhere, so two transactions locking overlapping sets cannot deadlock.
        .order_by(col(EnrollmentRow.id))
        .with_for_update(of=EnrollmentRow, skip_locked=skip_locked)
    )
    rows = (await session.exec(statement)).all()
    return [_loaded(row, definition) for row, definition in rows]


def _loaded(row: EnrollmentRow, definition: str) -> Enrollment:
    return Enrollment(
        workspace=row.workspace,
        journey_id=row.journey_id,
        version=row.journey_version,
        definition=definition_of(definition, row.workspace),
        enrollment_id=row.enrollment_id,
        profile_key=row.profile_key,
        user_id=row.user_id,
        anonymous_id=row.anonymous_id,
        enrolled_at=as_utc(row.enrolled_at),
        trigger_message_id=row.trigger_message_id,
        context=row.context,
        status=row.status,
        step_id=row.step_id,
        awaiting_event=row.awaiting_event,
        last_send_key=row.last_send_key,
        position=row.position,
        is_new=False,
    )


async def load_plan(
    session: AsyncSession,
    workspace: str,
    journeys: Sequence[ActiveJourney],
    entries: Sequence[Entry],
    profile_keys: Iterable[str],
    now: datetime,
    policy_of: Callable[[], Awaitable[Policy]],
) -> BatchPlan:
    """What a batch works on: the active enrollments of its profiles (locked), when each
    entering profile last entered its journey, which of the enrollments it would make are
    stored already (a replay), and its profiles' recent marketing sends. The workspace's
    policy is read only when something may send: a batch that moves no journey goes on while
    the settings cannot be read."""
    keys = set(profile_keys)
    active = await active_of_profiles(session, keys)
    policies = {workspace: await policy_of()} if entries or active else {}
    return BatchPlan(
        workspace=workspace,
        journeys=journeys,
        active=active,
        last_entered=await _last_entered(session, entries),
        stored_ids=await _stored_ids(
            session,
            (
                enrollments.enrollment_id(e.journey, e.profile_key, e.seed, workspace)
                for e in entries
            ),
        ),
        now=now,
        decisions=await ledger.decisions_for(
            session, policies, {(workspace, key) for key in keys}, now
        ),
    )


async def _last_entered(
    session: AsyncSession, entries: Sequence[Entry]
) -> dict[tuple[str, str], datetime]:
    """When each entering profile last entered the journey at whose door it is."""
    triggered = {entry.journey.journey_id for entry in entries}
    keys = {entry.profile_key for entry in entries}
    if not entries:
        return {}
    statement = (
        select(
            EnrollmentRow.journey_id,
            EnrollmentRow.profile_key,
            sa.func.max(EnrollmentRow.enrolled_at),
        )
        .where(
            col(EnrollmentRow.journey_id).in_(triggered),
            col(EnrollmentRow.profile_key).in_(keys),
        )
        .group_by(col(EnrollmentRow.journey_id), col(EnrollmentRow.profile_key))
    )
    rows = (await session.exec(statement)).all()
    return {(journey, key): as_utc(at) for journey, key, at in rows}


async def _stored_ids(session: AsyncSession, candidates: Iterable[str]) -> set[str]:
    """Which of these enrollment ids are already stored."""
    ids = sorted(set(candidates))
    if not ids:
        return set()
    statement = select(EnrollmentRow.enrollment_id).where(col(EnrollmentRow.enrollment_id).in_(ids))
    return set((await session.exec(statement)).all())


async def save(
    session: AsyncSession, outcome: Outcome, now: datetime, event_partitions: int
) -> None:
    """Write what changed: enrollments, their timers (any old one goes), the bus messages."""
    changed = outcome.enrollments
    if not changed:
        return
    await _drop_timers(session, [e for e in changed if not e.is_new])
    new = [_row(e) for e in changed if e.is_new]
    if new:
        await _insert_new(session, new)
    updated = [_update_params(e) for e in changed if not e.is_new]
    if updated:
        await session.exec(_UPDATE, params=updated)
    timers = [_timer_row(e) for e in changed if e.timer is not None]
    if timers:
        await db.insert_many(session, sa.insert(db.table_of(TimerRow)), timers)
    await ledger.record_sends(session, outcome.sent)
    messages = outbox_rows(outcome.messages, now)
    messages += identify_rows(outcome.trait_updates, now, event_partitions)
    await db.insert_many(session, sa.insert(db.table_of(OutboxMessage)), messages)
    for enrollment in changed:
        enrollment.is_new, enrollment.changed = False, False


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert new enrollments; one that collides (the same id, or a second active one of the
    profile in a journey it may be in once at a time) means another transaction got there."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        statement = (
            db.upsert_into(session, EnrollmentRow)
            .values(chunk)
            .on_conflict_do_nothing()
            .returning(_ENROLLMENTS.c.enrollment_id)
        )
        inserted = (await session.exec(statement)).all()
        if len(inserted) != len(chunk):
            raise EnrollmentConflict()


async def _drop_timers(session: AsyncSession, changed: list[Enrollment]) -> None:
    for workspace in {e.workspace for e in changed}:
        ids = [e.enrollment_id for e in changed if e.workspace == workspace]
        await session.exec(
            delete(TimerRow).where(
                col(TimerRow.workspace) == workspace, col(TimerRow.enrollment_id).in_(ids)
            )
        )


def _row(enrollment: Enrollment) -> dict[str, Any]:
    active = enrollment.status == ACTIVE
    return {
        "workspace": enrollment.workspace,
        "journey_id": enrollment.journey_id,
        "profile_key": enrollment.profile_key,
        "enrollment_id": enrollment.enrollment_id,
        "journey_version": enrollment.version,
        "user_id": enrollment.user_id,
        "anonymous_id": enrollment.anonymous_id,
        "enrolled_at": enrollment.enrolled_at,
        "trigger_message_id": enrollment.trigger_message_id,
        "context": enrollment.context,
        "status": enrollment.status,
        "active_key": enrollment.profile_key if active else None,
        "step_id": enrollment.step_id,
        "awaiting_event": enrollment.awaiting_event,
        "last_send_key": enrollment.last_send_key,
        "position": enrollment.position,
        "finished_at": enrollment.finished_at,
    }


_ENROLLMENTS = db.table_of(EnrollmentRow)
# Bound parameters per statement stay under SQLite's limit (15 columns a row).
_ROWS_PER_INSERT = 500
_KEY_COLUMNS = ("workspace", "enrollment_id")
_MOVING_COLUMNS = (
    "status",
    "active_key",
    "step_id",
    "awaiting_event",
    "last_send_key",
    "position",
    "finished_at",
)
# Parameters are named `p_<column>`: SQLAlchemy keeps bare column names for itself.
_UPDATE = (
    sa.update(_ENROLLMENTS)
    .where(*(_ENROLLMENTS.c[name] == sa.bindparam(f"p_{name}") for name in _KEY_COLUMNS))
    .values({name: sa.bindparam(f"p_{name}") for name in _MOVING_COLUMNS})
)


def _update_params(enrollment: Enrollment) -> dict[str, Any]:
    row = _row(enrollment)
    return {f"p_{name}": row[name] for name in (*_KEY_COLUMNS, *_MOVING_COLUMNS)}


def _timer_row(enrollment: Enrollment) -> dict[str, Any]:
    timer = enrollment.timer
    assert timer is not None
    return {
        "workspace": enrollment.workspace,
        "journey_id": enrollment.journey_id,
        "enrollment_id": enrollment.enrollment_id,
        "position": enrollment.position,
        "due_at": timer.due_at,
        "resume_at": timer.resume_at,
        "needs_profile": timer.needs_profile,
        "attempts": timer.attempts,
    }


async def drop_stale_timers(
    session: AsyncSession, due: Sequence[TimerRow], locked: Sequence[Enrollment]
) -> None:
    """Delete due timers that will never fire: set at an earlier position of an enrollment
    that has moved since, or left behind by one that is no longer active."""
    positions = {(e.workspace, e.enrollment_id): e.position for e in locked}
    stale = [
        t.id for t in due if positions.get((t.workspace, t.enrollment_id), t.position) != t.position
    ]
    still_active = sa.exists().where(
        col(EnrollmentRow.workspace) == col(TimerRow.workspace),
        col(EnrollmentRow.enrollment_id) == col(TimerRow.enrollment_id),
        col(EnrollmentRow.status) == ACTIVE,
    )
    due_ids = [t.id for t in due]
    await session.exec(
        delete(TimerRow).where(
            sa.or_(
                col(TimerRow.id).in_(stale),
                sa.and_(col(TimerRow.id).in_(due_ids), ~still_active),
            )
        )
    )
