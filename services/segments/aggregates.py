"""The per-profile aggregates rules read without scanning history: counters per event name and
totals of configured numeric properties, added to with one bulk upsert (when applying a batch
of events, and when a merge folds one profile's into another's).
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.db import insert_many, table_of, upsert_into
from services.segments.models import EventCounter, PropertySum


async def upsert_counters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add counts to (workspace, profile, event name) counters, widening their time span."""
    table = table_of(EventCounter)

    def widened(new: Any) -> dict[str, Any]:
        return {
            "count": table.c["count"] + new["count"],
            "first_time": sa.case(
                (new["first_time"] < table.c["first_time"], new["first_time"]),
                else_=table.c["first_time"],
            ),
            "last_time": sa.case(
                (new["last_time"] > table.c["last_time"], new["last_time"]),
                else_=table.c["last_time"],
            ),
        }

    await _add(session, EventCounter, rows, ["workspace", "profile_id", "event_name"], widened)


async def upsert_sums(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add to (workspace, profile, event name, property) totals."""
    table = table_of(PropertySum)
    keys = ["workspace", "profile_id", "event_name", "property"]
    await _add(
        session, PropertySum, rows, keys, lambda new: {"total": table.c["total"] + new["total"]}
    )


async def _add(
    session: AsyncSession,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    keys: list[str],
    changes: Callable[[Any], dict[str, Any]],
) -> None:
    """Insert the rows (unique by `keys`), or make `changes(excluded)` to the ones that exist,
    in one statement (see `insert_many`)."""
    insert = upsert_into(session, model)
    upsert = insert.on_conflict_do_update(index_elements=keys, set_=changes(insert.excluded))
    await insert_many(session, upsert, list(rows))
