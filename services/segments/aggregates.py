"""The per-profile aggregates rules read without scanning history: counters per event name and
totals of configured numeric properties, added to with one bulk upsert (executemany)
(when applying a batch of events, and when a merge folds one profile's into another's).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.db import table_of, upsert_into
from services.segments.models import EventCounter, PropertySum


async def upsert_counters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add counts to (workspace, profile, event name) counters, widening their time span."""
    table = table_of(EventCounter)
    insert = upsert_into(session, EventCounter)
    new = insert.excluded
    upsert = insert.on_conflict_do_update(
        index_elements=["workspace", "profile_id", "event_name"],
        set_={
            "count": table.c["count"] + new["count"],
            "first_time": sa.case(
                (new["first_time"] < table.c["first_time"], new["first_time"]),
                else_=table.c["first_time"],
            ),
            "last_time": sa.case(
                (new["last_time"] > table.c["last_time"], new["last_time"]),
                else_=table.c["last_time"],
            ),
        },
    )
    # One statement compiled once and run for every row (executemany), where a multi-row
    # VALUES would be compiled anew for each chunk.
    await session.exec(upsert, params=list(rows))


async def upsert_sums(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add to (workspace, profile, event name, property) totals."""
    table = table_of(PropertySum)
    insert = upsert_into(session, PropertySum)
    upsert = insert.on_conflict_do_update(
        index_elements=["workspace", "profile_id", "event_name", "property"],
        set_={"total": table.c["total"] + insert.excluded["total"]},
    )
    await session.exec(upsert, params=list(rows))
