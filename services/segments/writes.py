"""Writes shared by applying events, merging profiles and erasing them: dialect-aware bulk
upserts of the per-profile aggregates, and ProfileChanged announcements through the outbox.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import outbox
from engage.resources import name_of
from engage.v1 import bus_pb2
from services.segments.models import EventCounter, Profile, PropertySum

# Rows per multi-row INSERT, well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500

Insert = postgresql.Insert | sqlite.Insert


def table_of(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def upsert_into(session: AsyncSession, model: type[Any]) -> Insert:
    """An INSERT with ON CONFLICT support in the session's dialect."""
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def profiles_subject(workspace: str) -> str:
    return f"engage.profiles.{workspace}"


def profile_name(workspace: str, profile_id: str) -> str:
    return name_of("profiles", profile_id, workspace)


def announce(
    session: AsyncSession,
    workspace: str,
    kind: "bus_pb2.ProfileChanged.Kind",
    profile: Profile,
    changed_traits: dict[str, Any] | None = None,
    merged_profile: str = "",
    anonymous_ids: Sequence[str] = (),
) -> None:
    """Put a ProfileChanged in the transaction's outbox."""
    change = bus_pb2.ProfileChanged(
        id=uuid.uuid4().hex,
        workspace=workspace,
        kind=kind,
        profile=profile_name(workspace, profile.id),
        user_id=profile.user_id or "",
        merged_profile=merged_profile,
        anonymous_ids=sorted(anonymous_ids),
    )
    change.occurred_at.FromDatetime(datetime.now(UTC))
    if changed_traits:
        change.changed_traits.update(changed_traits)
    outbox.enqueue(session, profiles_subject(workspace), change, change.id, workspace)


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
