"""Broadcasts: a due campaign goes through its segment's members, a chunk at a time, deciding
and queueing each member's send.

Each chunk is one transaction: its recipients (unique per campaign and profile), their sends
through the outbox, and the cursor (the last member done) commit together. A scheduler killed
mid-broadcast goes on after the cursor when it is back and sends nobody twice; a replica that
finds the cursor moved by another lets go. The campaign is completed only once every queued
send has been reported sent or failed by channels (see `CampaignDeliveries`)."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import grpc
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, telemetry
from engage.auth import API_KEY_HEADER, WORKSPACE_HEADER
from engage.clock import Clock, as_utc
from engage.polling import poll_forever
from engage.v1 import segment_pb2, segment_pb2_grpc
from services.scheduler import campaign_store, campaigns
from services.scheduler.campaigns import Member
from services.scheduler.ledger import decisions_for
from services.scheduler.models import CampaignRow
from services.scheduler.policies import WorkspacePolicies

log = logging.getLogger(__name__)

# Members decided and written per transaction when the campaign has no rate: each transaction
# costs a lock, a policy read and a commit (tens of milliseconds on SQLite), spread over these.
MEMBERS_PER_TRANSACTION = 2_500


class Audience:
    """A segment's members, listed by the segments service."""

    def __init__(self, channel: grpc.aio.Channel, api_key: str) -> None:
        self.stub = segment_pb2_grpc.SegmentServiceStub(channel)
        self.api_key = api_key

    async def members(
        self, workspace: str, segment: str, start_after: str
    ) -> AsyncIterator[list[Member]]:
        metadata = (
            (API_KEY_HEADER, self.api_key),
            (WORKSPACE_HEADER, workspace),
            *telemetry.inject_headers().items(),
        )
        request = segment_pb2.ListSegmentMembersRequest(segment=segment, start_after=start_after)
        async for chunk in self.stub.ListSegmentMembers(request, metadata=metadata):
            yield [Member(m.profile, m.user_id, m.calendar_time_zone) for m in chunk.members]


class BroadcastWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        audience: Audience,
        policies: WorkspacePolicies,
        clock: Clock,
        poll_seconds: float = 0.5,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay once a chunk's sends have committed.
        self.published = published
        self.audience = audience
        self.policies = policies
        self.clock = clock
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Start due campaigns and go on with those under way, every poll, until cancelled."""
        await poll_forever(self.go_on, self.poll_seconds, "broadcasts")

    async def go_on(self) -> None:
        async with db.reading(self.sessions, db.EVERY_WORKSPACE) as session:
            rows = await campaign_store.due_or_sending(session, self.clock())
        for row in rows:
            try:
                if not (row.state == campaigns.SENDING and row.audience_done):
                    await self.broadcast(row.workspace, row.campaign_id)
                await self.send_pending(row.workspace, row.campaign_id)
            except grpc.aio.AioRpcError as error:
                log.error(
                    "the campaign's audience could not be listed; retrying: %s",
                    error.code().name,
                    extra={"workspace": row.workspace, "campaign": row.campaign_id},
                )

    async def broadcast(self, workspace: str, campaign_id: str) -> None:
        """Go through the campaign's audience from its cursor to the end."""
        cursor = await self._start(workspace, campaign_id)
        if cursor is None:
            return
        segment, rate = await self._segment_and_rate(workspace, campaign_id)
        # With a rate, a second's worth of members at a time, so the sends spread evenly.
        size = max(1, rate // 60) if rate else MEMBERS_PER_TRANSACTION
        waiting: list[Member] = []
        async for listed in self.audience.members(workspace, segment, cursor):
            waiting.extend(listed)
            while len(waiting) >= size:
                chunk, waiting = waiting[:size], waiting[size:]
                cursor = await self._record_paced(workspace, campaign_id, cursor, chunk, rate)
                if cursor is None:
                    return
        if waiting:
            cursor = await self._record_paced(workspace, campaign_id, cursor, waiting, rate)
            if cursor is None:
                return
        await self._record(workspace, campaign_id, cursor, [], done=True)

    async def _record_paced(
        self, workspace: str, campaign_id: str, cursor: str, chunk: list[Member], rate: int
    ) -> str | None:
        """Record a chunk and, under a rate, wait as long as its sends take at that rate;
        the new cursor, or None when the broadcast is to stop here."""
        queued = await self._record(workspace, campaign_id, cursor, chunk)
        if queued is None:
            return None
        if rate and queued:
            await asyncio.sleep(queued * 60 / rate)
        return chunk[-1].profile

    async def _start(self, workspace: str, campaign_id: str) -> str | None:
        """SCHEDULED and due becomes SENDING; returns the cursor to go on from, or None when
        there is nothing to do."""
        policy = await self.policies.policy(workspace)
        now = self.clock()
        async with db.transaction(self.sessions, workspace) as session:
            row = await campaign_store.get(session, campaign_id, for_update=True)
            if row is None:
                return None
            spec = campaign_store.spec_of(row)
            if row.state == campaigns.SCHEDULED and spec.recurrence and row.send_time is None:
                row.send_time = campaigns.next_run(spec, now, policy.time_zone)
            if campaigns.is_due(row.state, campaign_store.send_time_of(row), now):
                campaign_store.begin_run(row, now)
                started = {"workspace": workspace, "campaign": campaign_id, "run": row.runs}
                log.info("campaign sending", extra=started)
            session.add(row)
            if row.state != campaigns.SENDING or row.audience_done:
                return None
            return row.cursor

    async def _segment_and_rate(self, workspace: str, campaign_id: str) -> tuple[str, int]:
        async with db.reading(self.sessions, workspace) as session:
            row = await campaign_store.get(session, campaign_id)
            assert row is not None
            spec = campaign_store.spec_of(row)
            return spec.segment, spec.max_sends_per_minute

    async def _record(
        self,
        workspace: str,
        campaign_id: str,
        cursor: str,
        chunk: list[Member],
        done: bool = False,
    ) -> int | None:
        """Decide and write one chunk; None when the campaign stopped or another replica has
        moved the cursor (it goes on instead)."""
        policy = await self.policies.policy(workspace)
        now = self.clock()
        async with db.transaction(self.sessions, workspace) as session:
            row = await campaign_store.get(session, campaign_id, for_update=True)
            if row is None or row.state != campaigns.SENDING or row.cursor != cursor:
                return None
            spec = campaign_store.spec_of(row)
            keys = {(workspace, member.user_id) for member in chunk if member.user_id}
            decisions = await decisions_for(session, {workspace: policy}, keys, now)
            broadcast = self._broadcast_of(row, spec)
            recipients = [
                campaigns.decide_member(broadcast, member, decisions, now) for member in chunk
            ]
            last = chunk[-1].profile if chunk else cursor
            queued = await campaign_store.record_chunk(
                session, row, spec, recipients, last, done, now
            )
            _next_run_when_done(row, spec, policy.time_zone, now)
            session.add(row)
        if queued:
            self.published()
        return queued

    async def send_pending(self, workspace: str, campaign_id: str) -> None:
        """Decide and queue the pending members whose moment has come (their local send time,
        the end of quiet hours) and, once an A/B test's wait is over, those that waited for its
        winner (chosen once, here), a chunk per transaction."""
        while True:
            policy = await self.policies.policy(workspace)
            now = self.clock()
            async with db.transaction(self.sessions, workspace) as session:
                row = await campaign_store.get(session, campaign_id, for_update=True)
                if row is None or row.state != campaigns.SENDING or not row.pending:
                    return
                spec = campaign_store.spec_of(row)
                await _choose_winner_when_due(session, row, spec, now)
                limit = MEMBERS_PER_TRANSACTION
                ready = await campaign_store.ready_pending(session, row, now, limit)
                if not ready:
                    return
                keys = {(workspace, member.user_id) for member, _ in ready}
                decisions = await decisions_for(session, {workspace: policy}, keys, now)
                broadcast = self._broadcast_of(row, spec)
                decided = [
                    campaigns.decide_member(
                        broadcast, member, decisions, now, variant or row.winner
                    )
                    for member, variant in ready
                ]
                queued = await campaign_store.record_released(session, row, spec, decided, now)
                _next_run_when_done(row, spec, policy.time_zone, now)
                session.add(row)
            if queued:
                self.published()

    @staticmethod
    def _broadcast_of(row: CampaignRow, spec: campaigns.CampaignSpec) -> campaigns.Broadcast:
        started = campaign_store.send_time_of(row)
        assert started is not None
        return campaigns.Broadcast(row.workspace, row.campaign_id, row.uid, row.runs, spec, started)


async def _choose_winner_when_due(
    session: AsyncSession, row: CampaignRow, spec: campaigns.CampaignSpec, now: datetime
) -> None:
    """Once an A/B test's wait is over, its winner, chosen once by the rates so far."""
    rule = spec.winner_rule
    if rule is None or row.winner or row.test_done_at is None:
        return
    if now < as_utc(row.test_done_at) + rule.after:
        return
    stats = await campaign_store.variant_stats(session, row)
    row.winner = campaigns.choose_winner(rule, spec.variants, stats)
    chosen = {"workspace": row.workspace, "campaign": row.campaign_id, "winner": row.winner}
    log.info("campaign winner chosen", extra=chosen)


def _next_run_when_done(
    row: CampaignRow, spec: campaigns.CampaignSpec, workspace_zone: str, now: datetime
) -> None:
    """A recurring campaign whose run has gone through its audience, with no member pending,
    is scheduled for its next run."""
    if not spec.recurrence or row.state != campaigns.SENDING:
        return
    if not row.audience_done or row.pending:
        return
    ran_at = campaign_store.send_time_of(row) or now
    at = campaigns.next_run(spec, max(ran_at, now), workspace_zone)
    campaign_store.schedule_next_run(row, at, now)
