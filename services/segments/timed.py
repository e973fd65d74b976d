"""Time-based flips: a rule relative to now ("in the last 18 days", "18 days after
`prescribed_at`") changes its members with no new event, so a sweeper re-evaluates the
time-dependent segments in SQL every `timed_sweep_seconds` and announces the differences.

Each segment is swept in two steps: a read finds the profiles whose membership disagrees with
the rule at this moment, holding no lock (on SQLite a write transaction would stop event
processing for the whole evaluation); then transactions of at most CHANGES_PER_TRANSACTION of
those profiles re-evaluate just them, scoped to the workspace and holding the segment's row
lock, so a replica sweeping at the same moment (or an update of the segment) waits and then
finds nothing to do. A segment that fails is logged and left for the next sweep;
the sweep goes on with every other segment and workspace.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import Clock
from engage.errors import EngageError, NotFound
from engage.polling import poll_forever
from services.segments import batch
from services.segments.models import SEGMENTS, Segment
from services.segments.segment_store import SegmentStore

log = logging.getLogger(__name__)

# Profiles re-evaluated per write transaction: keeps each lock short when many flip at once
# (a calendar rule at midnight).
CHANGES_PER_TRANSACTION = 1_000


class TimedSweeper:
    """Re-evaluates every time-dependent segment of every workspace, periodically."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        clock: Clock,
        interval_seconds: float = 30.0,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay once a sweep has committed membership changes.
        self.published = published
        self.clock = clock
        self.interval_seconds = interval_seconds

    async def run(self) -> None:
        """Sweep, wait the interval, repeat until cancelled; a failed sweep is retried next."""
        await poll_forever(self.sweep, self.interval_seconds, "time sweep")

    async def sweep(self) -> tuple[int, int]:
        """One pass over every time-dependent segment; returns (entered, exited) in total."""
        now = self.clock()
        entered = exited = 0
        for workspace, segment_id in await self._due():
            try:
                came, went = await self._sweep_one(workspace, segment_id, now)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Our own errors say what failed without values; a driver's message may quote
                # a stored value, so of anything else only its kind is logged.
                reason = error.message if isinstance(error, EngageError) else type(error).__name__
                log.error(
                    "time sweep of a segment failed; it is retried at the next sweep: %s",
                    reason,
                    extra={"workspace": workspace, "segment": segment_id},
                )
                continue
            entered, exited = entered + came, exited + went
        return entered, exited

    async def _due(self) -> list[tuple[str, str]]:
        """(workspace, segment id) of every time-dependent segment: the one query across
        workspaces."""
        async with db.reading(self.sessions, db.EVERY_WORKSPACE) as session:
            rows = await session.exec(
                select(SEGMENTS.c.workspace, SEGMENTS.c.id)
                .where(SEGMENTS.c.time_dependent)
                .order_by(SEGMENTS.c.workspace, SEGMENTS.c.id)
            )
            return [(workspace, segment_id) for workspace, segment_id in rows.all()]

    async def _sweep_one(self, workspace: str, segment_id: str, now: datetime) -> tuple[int, int]:
        stale = await self._stale(workspace, segment_id, now)
        entered = exited = 0
        for start in range(0, len(stale), CHANGES_PER_TRANSACTION):
            among = stale[start : start + CHANGES_PER_TRANSACTION]
            came, went = await self._change(workspace, segment_id, now, among)
            entered, exited = entered + came, exited + went
        if entered or exited:
            self.published()
            changed = {"entered": entered, "exited": exited}
            log.info(
                "time sweep changed members",
                extra={"workspace": workspace, "segment": segment_id, **changed},
            )
        return entered, exited

    async def _stale(self, workspace: str, segment_id: str, now: datetime) -> list[str]:
        """The profiles whose membership time has changed, found by reading only: the
        evaluation over every profile holds no lock that event processing would wait for."""
        async with db.reading(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segment = await _time_dependent(store, segment_id, lock=False)
            if segment is None:
                return []
            return await batch.disagreeing(session, store, segment, now, field="rule")

    async def _change(
        self, workspace: str, segment_id: str, now: datetime, among: list[str]
    ) -> tuple[int, int]:
        """Re-evaluate `among` under the segment's row lock: what events changed since the
        read is seen, and a replica sweeping at the same moment finds nothing left to do."""
        async with db.transaction(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segment = await _time_dependent(store, segment_id, lock=True)
            if segment is None:
                return 0, 0
            return await batch.evaluate_in_sql(
                session, store, segment, now, field="rule", among=among
            )


async def _time_dependent(store: SegmentStore, segment_id: str, lock: bool) -> Segment | None:
    """The segment, unless it was deleted or stopped depending on time since the list was read."""
    try:
        segment = await store.get(segment_id, lock=lock)
    except NotFound:
        return None
    return segment if segment.time_dependent else None
