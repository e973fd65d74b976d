"""The per-profile aggregates rules read without scanning history: counters per event name and
totals of configured numeric properties, added to with one bulk upsert per chunk of rows
(when applying a batch of events, and when a merge folds one profile's into another's).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.db import table_of, upsert_into
from services.segments.models import CHUNK, EventCounter, PropertySum


async def upsert_counters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add counts to (workspace, profile, event name) counters, widening their time span."""
    table = table_of(EventCounter)
    for start in range(0, len(rows), CHUNK):
        insert = upsert_into(session, EventCounter).values(list(rows[start : start + CHUNK]))
        new = insert.excluded
        await session.exec(
            insert.on_conflict_do_update(
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
        )


async def upsert_sums(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add to (workspace, profile, event name, property) totals."""
    table = table_of(PropertySum)
    for start in range(0, len(rows), CHUNK):
        insert = upsert_into(session, PropertySum).values(list(rows[start : start + CHUNK]))
        await session.exec(
            insert.on_conflict_do_update(
                index_elements=["workspace", "profile_id", "event_name", "property"],
                set_={"total": table.c["total"] + insert.excluded["total"]},
            )
        )
