"""Time-based flips: a rule relative to now ("in the last 18 days", "18 days after
`prescribed_at`") changes its members with no new event, so a sweeper re-evaluates the
time-dependent segments in SQL every `timed_sweep_seconds` and announces the differences.

Each segment is swept in a transaction of its own holding the segment's row lock, so a replica
sweeping at the same moment (or an update of the segment) waits and then finds nothing to do.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.errors import NotFound
from services.segments import batch
from services.segments.segment_store import Segment, SegmentStore
from services.segments.writes import table_of

log = logging.getLogger(__name__)

SEGMENTS = table_of(Segment)


class TimedSweeper:
    """Re-evaluates every time-dependent segment of every workspace, periodically."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        clock: Callable[[], datetime],
        interval_seconds: float = 30.0,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay once a sweep has committed membership changes.
        self.published = published
        self.clock = clock
        self.interval_seconds = interval_seconds

    async def run(self) -> None:
        """Sweep, wait the interval, repeat until cancelled; a failed sweep is retried next."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("time sweep failed; retrying at the next interval")
            await asyncio.sleep(self.interval_seconds)

    async def sweep(self) -> tuple[int, int]:
        """One pass over every time-dependent segment; returns (entered, exited) in total."""
        now = self.clock()
        async with self.sessions() as session:
            # The only query across workspaces: finding which segments need the clock.
            rows = await session.exec(
                select(SEGMENTS.c.workspace, SEGMENTS.c.id)
                .where(SEGMENTS.c.time_dependent)
                .order_by(SEGMENTS.c.workspace, SEGMENTS.c.id)
            )
            due = [(workspace, segment_id) for workspace, segment_id in rows.all()]
        entered = exited = 0
        for workspace, segment_id in due:
            async with db.transaction(self.sessions) as session:
                store = SegmentStore(session, workspace)
                try:
                    segment = await store.get(segment_id, lock=True)
                except NotFound:
                    continue  # deleted since the list was read
                if not segment.time_dependent:
                    continue
                came, went = await batch.evaluate_in_sql(session, store, segment, now)
            if came or went:
                self.published()
                log.info(
                    "time sweep changed members",
                    extra={"workspace": workspace, "segment": segment_id, "entered": came,
                           "exited": went},
                )  # fmt: skip
            entered, exited = entered + came, exited + went
        return entered, exited
