"""Facts in, counts out. Facts are inserted idempotently; counts are GROUP BY in SQL, in a
session scoped to one workspace (engage.db)."""

from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from services.reporting.models import DeliveryFact, JourneyFact


async def insert_fact(session: AsyncSession, model: type[SQLModel], row: dict[str, Any]) -> bool:
    """Insert unless a fact with the same (workspace, event_id) exists; True when new."""
    statement = (
        db.upsert_into(session, model)
        .values(row)
        .on_conflict_do_nothing(index_elements=["workspace", "event_id"])
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def delivery_counts(
    session: AsyncSession, *, journey: str = "", campaign: str = ""
) -> list[tuple[int, int, int]]:
    """(channel, kind, count) of the deliveries of one journey or one campaign."""
    column = col(DeliveryFact.journey) if journey else col(DeliveryFact.campaign)
    statement = (
        select(col(DeliveryFact.channel), col(DeliveryFact.kind), sa.func.count())
        .where(column == (journey or campaign))
        .group_by(col(DeliveryFact.channel), col(DeliveryFact.kind))
    )
    rows = (await session.exec(statement)).all()
    return [(int(channel), int(kind), int(count)) for channel, kind, count in rows]


async def journey_kind_counts(session: AsyncSession, journey: str) -> dict[int, int]:
    """How many journey events of each kind one journey has had."""
    statement = (
        select(col(JourneyFact.kind), sa.func.count())
        .where(JourneyFact.journey == journey)
        .group_by(col(JourneyFact.kind))
    )
    rows = (await session.exec(statement)).all()
    return {int(kind): int(count) for kind, count in rows}
