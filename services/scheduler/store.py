"""Reading and writing journeys and enrollments. The caller owns the transaction, whose
session is scoped to one workspace (engage.db): queries here never filter by workspace."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging
from engage.erasure import Erasure
from engage.errors import AlreadyExists
from services.scheduler import journeys
from services.scheduler.journeys import ActiveJourney, Definition, Enrollment, JourneySpec
from services.scheduler.models import EnrollmentRow, JourneyRow, JourneyVersionRow


def spec_of(row: JourneyRow) -> JourneySpec:
    return JourneySpec(
        display_name=row.display_name,
        state=row.state,
        definition=Definition(row.trigger_event, journeys.steps_from_json(row.steps)),
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
        steps=journeys.steps_to_json(spec.definition.steps),
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
    row.steps = journeys.steps_to_json(spec.definition.steps)
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
            trigger_event=row.trigger_event,
            steps=row.steps,
            create_time=now,
        )
    )


async def delete_journey(session: AsyncSession, journey_id: str) -> bool:
    """Delete a journey with its versions and enrollments; False when there was none."""
    row = await get_journey(session, journey_id)
    if row is None:
        return False
    for model in (JourneyVersionRow, EnrollmentRow):
        await session.exec(delete(model).where(col(model.journey_id) == journey_id))
    await session.delete(row)
    return True


async def active_journeys_triggered_by(
    session: AsyncSession, events: set[str]
) -> list[ActiveJourney]:
    if not events:
        return []
    statement = select(JourneyRow).where(
        JourneyRow.state == journeys.ACTIVE, col(JourneyRow.trigger_event).in_(events)
    )
    rows = (await session.exec(statement)).all()
    return [
        ActiveJourney(
            journey_id=row.journey_id,
            uid=row.uid,
            version=row.version,
            definition=Definition(row.trigger_event, journeys.steps_from_json(row.steps)),
        )
        for row in rows
    ]


async def enroll(
    session: AsyncSession, workspace: str, planned: Sequence[Enrollment], now: datetime
) -> list[Enrollment]:
    """Insert the enrollments in one statement; returns those that are new (entry once ever)."""
    if not planned:
        return []
    rows: list[dict[str, Any]] = [
        {
            "workspace": workspace,
            "journey_id": enrollment.journey.journey_id,
            "profile_key": enrollment.profile_key,
            "enrollment_id": enrollment.enrollment_id,
            "journey_version": enrollment.journey.version,
            "user_id": enrollment.user_id,
            "anonymous_id": enrollment.anonymous_id,
            "enrolled_at": now,
        }
        for enrollment in planned
    ]
    statement = (
        db.upsert_into(session, EnrollmentRow)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["workspace", "journey_id", "profile_key"])
        .returning(col(EnrollmentRow.enrollment_id))
    )
    created = set((await session.exec(statement)).scalars().all())
    return [enrollment for enrollment in planned if enrollment.enrollment_id in created]


async def erase_person(session: AsyncSession, erasure: Erasure) -> int:
    """GDPR erasure: anonymise, not delete, the person's enrollments.

    The enrollment row is history (which journey version ran, when) and its enrollment id is a
    one-way digest that channels' idempotency keys and reporting's facts are built on; nothing
    in it is personal but the profile key, user id and anonymous id. Those go: the profile key
    becomes `erased:<enrollment id>`, still unique per journey. What stops a replayed trigger
    from reaching the person again is downstream: it would enroll under the raw user id anew,
    but with the same deterministic enrollment id, so the same send keys, which channels keeps
    (anonymised) and never sends twice. Matched by user id and by `anon:<id>` keys of the
    anonymous ids the erased profile had; the scheduler keeps no profile names. Idempotent.
    """
    keys = [journeys.profile_key("", anonymous) for anonymous in erasure.anonymous_ids]
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
    statement = (
        sa.update(EnrollmentRow)
        .where(sa.or_(*who))
        .values(
            profile_key=sa.literal("erased:") + col(EnrollmentRow.enrollment_id),
            user_id="",
            anonymous_id="",
        )
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0)
