"""Reading and writing journeys. The caller owns the transaction, whose session is scoped to
one workspace (engage.db): queries here never filter by workspace."""

import functools
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import paging
from engage.erasure import Erasure
from engage.errors import AlreadyExists
from engage.v1 import journey_pb2
from services.scheduler import enrollments, graph, journeys
from services.scheduler.enrollments import ActiveJourney
from services.scheduler.graph import Definition
from services.scheduler.journeys import JourneySpec
from services.scheduler.models import (
    EnrollmentRow,
    JourneyRow,
    JourneyVersionRow,
    LedgerRow,
    RecipientRow,
    TimerRow,
)


@functools.lru_cache(maxsize=4096)
def definition_of(stored: str, workspace: str) -> Definition:
    """A stored definition, parsed once per process: a version never changes."""
    return graph.from_json(stored, workspace)


def spec_of(row: JourneyRow) -> JourneySpec:
    return JourneySpec(
        display_name=row.display_name,
        state=row.state,
        definition=definition_of(row.definition, row.workspace),
    )


async def get_journey(
    session: AsyncSession, journey_id: str, for_update: bool = False
) -> JourneyRow | None:
    """The journey; `for_update` locks its row (PostgreSQL) so concurrent updates serialise."""
    statement = select(JourneyRow).where(JourneyRow.journey_id == journey_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.exec(statement)).first()


async def page_of_journeys(
    session: AsyncSession, size: int, token: str
) -> tuple[list[JourneyRow], str]:
    """One page of journeys in id order, and the next page's token."""
    return await paging.keyset_page(session, select(JourneyRow), JourneyRow.journey_id, size, token)


async def create_journey(
    session: AsyncSession, workspace: str, journey_id: str, spec: JourneySpec, now: datetime
) -> JourneyRow:
    if await get_journey(session, journey_id) is not None:
        raise AlreadyExists(f"journey {journey_id!r} already exists")
    row = JourneyRow(
        workspace=workspace,
        journey_id=journey_id,
        uid=uuid.uuid4().hex,
        display_name=spec.display_name,
        state=spec.state,
        version=1,
        trigger_event=spec.definition.trigger_event,
        trigger_segment=spec.definition.trigger_segment,
        definition=graph.to_json(spec.definition),
        create_time=now,
        update_time=now,
    )
    session.add(row)
    _add_version(session, row, now)
    try:
        await session.flush()
    except sa.exc.IntegrityError as error:
        raise AlreadyExists(f"journey {journey_id!r} already exists") from error
    return row


async def update_journey(
    session: AsyncSession, row: JourneyRow, spec: JourneySpec, version: int, now: datetime
) -> JourneyRow:
    new_version = version != row.version
    row.display_name = spec.display_name
    row.state = spec.state
    row.version = version
    row.trigger_event = spec.definition.trigger_event
    row.trigger_segment = spec.definition.trigger_segment
    row.definition = graph.to_json(spec.definition)
    row.update_time = now
    session.add(row)
    if new_version:
        _add_version(session, row, now)
    await session.flush()
    return row


def _add_version(session: AsyncSession, row: JourneyRow, now: datetime) -> None:
    session.add(
        JourneyVersionRow(
            workspace=row.workspace,
            journey_id=row.journey_id,
            version=row.version,
            definition=row.definition,
            create_time=now,
        )
    )


async def delete_journey(session: AsyncSession, journey_id: str) -> bool:
    """Delete a journey with its versions, enrollments and timers; False when there was none."""
    row = await get_journey(session, journey_id)
    if row is None:
        return False
    for model in (JourneyVersionRow, EnrollmentRow, TimerRow):
        await session.exec(delete(model).where(col(model.journey_id) == journey_id))
    await session.delete(row)
    return True


async def active_journeys_triggered_by(
    session: AsyncSession, events: set[str]
) -> list[ActiveJourney]:
    """The active journeys these events enter profiles in."""
    if not events:
        return []
    return await _active(session, col(JourneyRow.trigger_event).in_(events))


async def active_journeys_triggered_by_segments(
    session: AsyncSession, segments: set[str]
) -> list[ActiveJourney]:
    """The active journeys entering or leaving these segments enters profiles in."""
    if not segments:
        return []
    return await _active(session, col(JourneyRow.trigger_segment).in_(segments))


async def _active(session: AsyncSession, trigger: sa.ColumnElement[bool]) -> list[ActiveJourney]:
    statement = select(JourneyRow).where(JourneyRow.state == journeys.ACTIVE, trigger)
    rows = (await session.exec(statement)).all()
    return [
        ActiveJourney(
            journey_id=row.journey_id,
            uid=row.uid,
            version=row.version,
            definition=definition_of(row.definition, row.workspace),
        )
        for row in rows
    ]


async def erase_person(session: AsyncSession, erasure: Erasure) -> int:
    """GDPR erasure: anonymise, not delete, the person's enrollments.

    The enrollment row is history (which journey version ran, when) and its enrollment id is a
    one-way digest that channels' idempotency keys and reporting's facts are built on; nothing
    in it is personal but the profile key, user id and anonymous id. Those go: the profile key
    becomes `erased:<enrollment id>`, still unique per journey. What stops a replayed trigger
    from reaching the person again is downstream: it would enroll under the raw user id anew,
    but with the same deterministic enrollment id, so the same send keys, which channels keeps
    (anonymised) and never sends twice. Enrollments still under way leave (exited, `erased`)
    and their timers go, so nothing more is sent; the person's campaign sends are forgotten by
    the frequency ledger and their campaign recipient rows anonymised. Matched by user id and
    by `anon:<id>` keys of the anonymous ids the erased profile had; the scheduler keeps no
    profile names. Idempotent.
    """
    keys = [enrollments.profile_key("", anonymous) for anonymous in erasure.anonymous_ids]
    who: list[sa.ColumnElement[bool]] = [col(EnrollmentRow.profile_key).in_(keys)] if keys else []
    if erasure.user_id:
        who += [
            col(EnrollmentRow.profile_key) == erasure.user_id,
            col(EnrollmentRow.user_id) == erasure.user_id,
        ]
    if erasure.anonymous_ids:
        who.append(col(EnrollmentRow.anonymous_id).in_(erasure.anonymous_ids))
    if not who:
        return 0
    await _erase_from_campaigns(session, [*keys, *([erasure.user_id] if erasure.user_id else [])])
    matched = sa.or_(*who)
    under_way = select(EnrollmentRow.enrollment_id).where(
        matched, EnrollmentRow.status == enrollments.ACTIVE
    )
    await session.exec(delete(TimerRow).where(col(TimerRow.enrollment_id).in_(under_way)))
    statement = (
        sa.update(EnrollmentRow)
        .where(matched)
        .values(
            profile_key=sa.literal("erased:") + col(EnrollmentRow.enrollment_id),
            status=sa.case(
                (col(EnrollmentRow.status) == enrollments.ACTIVE, enrollments.EXITED),
                else_=col(EnrollmentRow.status),
            ),
            active_key=None,
            awaiting_event="",
            context="{}",
            user_id="",
            anonymous_id="",
        )
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0)


async def _erase_from_campaigns(session: AsyncSession, profile_keys: list[str]) -> None:
    """The person's marketing sends leave the frequency ledger, and their campaign recipient
    rows keep only a row id (their send keys hold a digest, not the profile key)."""
    if not profile_keys:
        return
    await session.exec(delete(LedgerRow).where(col(LedgerRow.profile_key).in_(profile_keys)))
    await session.exec(
        sa.update(RecipientRow)
        .where(col(RecipientRow.profile_key).in_(profile_keys))
        .values(
            profile_key=sa.literal("erased:") + sa.cast(col(RecipientRow.id), sa.String),
            zone="",
        )
    )


async def counts(session: AsyncSession, journey_id: str) -> journey_pb2.JourneyCounts:
    """The journey's enrollments by status, and where the active ones are."""
    statuses = dict(
        (
            await session.exec(
                select(EnrollmentRow.status, sa.func.count())
                .where(col(EnrollmentRow.journey_id) == journey_id)
                .group_by(col(EnrollmentRow.status))
            )
        ).all()
    )
    at_step = (
        await session.exec(
            select(EnrollmentRow.step_id, sa.func.count())
            .where(
                col(EnrollmentRow.journey_id) == journey_id,
                EnrollmentRow.status == enrollments.ACTIVE,
            )
            .group_by(col(EnrollmentRow.step_id))
        )
    ).all()
    return journey_pb2.JourneyCounts(
        enrolled=sum(statuses.values()),
        active=statuses.get(enrollments.ACTIVE, 0),
        completed=statuses.get(enrollments.COMPLETED, 0),
        exited=statuses.get(enrollments.EXITED, 0),
        converted=statuses.get(enrollments.CONVERTED, 0),
        active_at_step=dict(at_step),
    )
