"""A workspace's settings, and what a new time zone changes: the date index of every profile
that reads its dates in the workspace's zone (no valid zone of its own), then the members of
every segment whose rule reads dates, all in the caller's transaction.
"""

import json
from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.dates import zone_named
from engage.rules.language import TIME_ZONE_KEY
from services.segments import batch
from services.segments.models import (
    CHUNK,
    PROFILES,
    WorkspaceSettings,
    derived_date_columns,
)
from services.segments.segment_store import SegmentStore


async def read(session: AsyncSession, workspace: str) -> WorkspaceSettings:
    """The stored settings, or the defaults (no `update_time`) when none were ever set."""
    found = await session.get(WorkspaceSettings, workspace)
    return found or WorkspaceSettings(workspace=workspace, time_zone="")


async def update(
    session: AsyncSession, workspace: str, changes: dict[str, object], now: datetime
) -> tuple[WorkspaceSettings, int]:
    """Store the changed fields (validated by the caller); when the zone changed, re-read the
    dates of the profiles it applies to and re-evaluate the segments that read dates. Returns
    the settings and how many profiles were re-read."""
    settings = await session.get(WorkspaceSettings, workspace, with_for_update=True)
    if settings is None:
        settings = WorkspaceSettings(workspace=workspace)
    before = settings.time_zone
    for column, value in changes.items():
        setattr(settings, column, value)
    settings.update_time = now
    session.add(settings)
    await session.flush()
    time_zone = settings.time_zone
    if zone_named(before) == zone_named(time_zone):
        return settings, 0
    reread = await _reindex_profiles(session, workspace, time_zone)
    store = SegmentStore(session, workspace)
    graph = batch.SegmentGraph(await store.all())
    for segment_id in graph.order():
        segment = graph.segments[segment_id]
        if TIME_ZONE_KEY in batch.compiled(segment).traits:
            await batch.evaluate_in_sql(session, store, segment, now, field="settings.time_zone")
    return settings, reread


async def _reindex_profiles(session: AsyncSession, workspace: str, time_zone: str) -> int:
    """Recompute the date index of the workspace's profiles without a valid zone of their own."""
    profiles = PROFILES.c
    rows = await session.exec(
        sa.select(profiles.id, profiles.traits, profiles.time_zone).where(  # type: ignore[call-overload]
            profiles.workspace == workspace, profiles.trait_dates != "{}"
        )
    )
    updates = [
        {"pid": profile_id, **derived_date_columns(json.loads(traits), own, time_zone)}
        for profile_id, traits, own in rows.all()
        if zone_named(own) is None
    ]
    statement = (
        sa.update(PROFILES)
        .where(profiles.workspace == workspace, profiles.id == sa.bindparam("pid"))
        .values(
            trait_dates=sa.bindparam("trait_dates"),
            trait_local_times=sa.bindparam("trait_local_times"),
        )
    )
    for start in range(0, len(updates), CHUNK):
        await session.exec(statement, params=updates[start : start + CHUNK])
    return len(updates)
