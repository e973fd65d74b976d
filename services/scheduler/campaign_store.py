"""Reading and writing campaigns and their recipients. The caller owns the transaction, whose
session is scoped to one workspace (engage.db) unless it says otherwise."""

import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf import json_format
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging
from engage.clock import as_utc, timestamp
from engage.errors import AlreadyExists
from engage.outbox import OutboxMessage
from engage.v1 import campaign_pb2
from services.scheduler import campaigns, ledger
from services.scheduler.campaigns import CampaignSpec, Member, Recipient, Stats
from services.scheduler.models import CampaignRow, RecipientRow
from services.scheduler.outgoing import outbox_rows

PENDING, QUEUED, SENT, FAILED, SKIPPED = "pending", "queued", "sent", "failed", "skipped"


def spec_of(row: CampaignRow) -> CampaignSpec:
    stored = json_format.Parse(row.definition, campaign_pb2.Campaign())
    spec = campaigns.parse_campaign(stored, row.workspace)
    return replace(
        spec, display_name=row.display_name, state=row.state, send_time=send_time_of(row)
    )


def send_time_of(row: CampaignRow) -> datetime | None:
    return as_utc(row.send_time) if row.send_time else None


def to_proto(row: CampaignRow) -> campaign_pb2.Campaign:
    campaign = campaigns.to_proto(spec_of(row))
    campaign.name = campaigns.campaign_name(row.workspace, row.campaign_id)
    campaign.runs = row.runs
    campaign.create_time.CopyFrom(timestamp(row.create_time))
    campaign.update_time.CopyFrom(timestamp(row.update_time))
    progress = campaign.progress
    progress.targeted, progress.queued = row.targeted, row.queued
    progress.sent, progress.failed = row.sent, row.failed
    progress.audience_done = row.audience_done
    progress.pending = row.pending
    campaign.winner = row.winner
    progress.skipped.update(json.loads(row.skipped))
    return campaign


def _definition(spec: CampaignSpec) -> str:
    stored = campaigns.to_proto(spec)
    stored.ClearField("display_name")
    stored.ClearField("state")
    stored.ClearField("send_time")
    return json_format.MessageToJson(stored, indent=None)


async def get(
    session: AsyncSession, campaign_id: str, for_update: bool = False
) -> CampaignRow | None:
    statement = select(CampaignRow).where(CampaignRow.campaign_id == campaign_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.exec(statement)).first()


async def page(session: AsyncSession, size: int, token: str) -> tuple[list[CampaignRow], str]:
    return await paging.keyset_page(
        session, select(CampaignRow), CampaignRow.campaign_id, size, token
    )


async def create(
    session: AsyncSession, workspace: str, campaign_id: str, spec: CampaignSpec, now: datetime
) -> CampaignRow:
    if await get(session, campaign_id) is not None:
        raise AlreadyExists(f"campaign {campaign_id!r} already exists")
    row = CampaignRow(
        workspace=workspace,
        campaign_id=campaign_id,
        uid=uuid.uuid4().hex,
        display_name=spec.display_name,
        state=spec.state,
        definition=_definition(spec),
        send_time=spec.send_time,
        goal_event=spec.goal.event if spec.goal else "",
        create_time=now,
        update_time=now,
    )
    session.add(row)
    try:
        await session.flush()
    except sa.exc.IntegrityError as error:
        raise AlreadyExists(f"campaign {campaign_id!r} already exists") from error
    return row


async def update(
    session: AsyncSession, row: CampaignRow, spec: CampaignSpec, now: datetime
) -> CampaignRow:
    row.display_name, row.state = spec.display_name, spec.state
    row.definition, row.send_time = _definition(spec), spec.send_time
    row.goal_event = spec.goal.event if spec.goal else ""
    row.update_time = now
    session.add(row)
    await session.flush()
    return row


async def set_state(session: AsyncSession, row: CampaignRow, state: int, now: datetime) -> None:
    row.state, row.update_time = state, now
    session.add(row)
    await session.flush()


async def delete_campaign(session: AsyncSession, campaign_id: str) -> bool:
    row = await get(session, campaign_id)
    if row is None:
        return False
    await session.exec(delete(RecipientRow).where(col(RecipientRow.campaign_id) == campaign_id))
    await session.delete(row)
    return True


# --- the broadcast --------------------------------------------------------------------------------


async def due_or_sending(session: AsyncSession, now: datetime) -> list[CampaignRow]:
    """Every workspace's campaigns to start now or to go on with (session of every workspace)."""
    statement = select(CampaignRow).where(
        sa.or_(
            sa.and_(
                col(CampaignRow.state) == campaigns.SCHEDULED,
                sa.or_(col(CampaignRow.send_time).is_(None), col(CampaignRow.send_time) <= now),
            ),
            sa.and_(
                col(CampaignRow.state) == campaigns.SENDING,
                sa.or_(~col(CampaignRow.audience_done), col(CampaignRow.pending) > 0),
            ),
        )
    )
    return list((await session.exec(statement)).all())


async def record_chunk(
    session: AsyncSession,
    row: CampaignRow,
    spec: CampaignSpec,
    recipients: Sequence[Recipient],
    cursor: str,
    done: bool,
    now: datetime,
) -> int:
    """Write one chunk of the audience: its recipients (each once: a member already recorded
    is left as it was), the sends of the queued ones through the outbox, the cursor and the
    counts. Returns how many sends were queued."""
    rows = [
        {
            "workspace": row.workspace,
            "campaign_id": row.campaign_id,
            "run": row.runs,
            "profile_key": r.profile_key,
            "variant": r.variant,
            "send_key": r.send_key,
            "status": _status(r),
            "reason": r.skipped,
            "due_at": r.due_at,
            "zone": r.zone,
        }
        for r in recipients
    ]
    new = await _insert_new_recipients(session, row, rows)
    fresh = [r for r in recipients if r.profile_key in new]
    row.targeted += len(fresh)
    row.pending += sum(1 for r in fresh if r.pending)
    queued = await _queue(session, row, spec, [r for r in fresh if not r.pending], now)
    row.cursor, row.audience_done, row.update_time = cursor, done, now
    if done and spec.winner_rule is not None:
        row.test_done_at = now
    _complete_if_accounted(row, spec, now)
    session.add(row)
    await session.flush()
    return queued


def _status(recipient: Recipient) -> str:
    return PENDING if recipient.pending else SKIPPED if recipient.skipped else QUEUED


async def ready_pending(
    session: AsyncSession, row: CampaignRow, now: datetime, limit: int
) -> list[tuple[Member, str]]:
    """Pending members whose moment has come (with the variant they were given, if any), and,
    once the A/B test's winner is chosen, those that waited for it."""
    due = col(RecipientRow.due_at) <= now
    ready = sa.or_(due, col(RecipientRow.due_at).is_(None)) if row.winner else due
    statement = (
        select(RecipientRow.profile_key, RecipientRow.variant, RecipientRow.zone)
        .where(
            col(RecipientRow.campaign_id) == row.campaign_id,
            col(RecipientRow.run) == row.runs,
            col(RecipientRow.status) == PENDING,
            ready,
        )
        .order_by(col(RecipientRow.profile_key))
        .limit(limit)
    )
    rows = (await session.exec(statement)).all()
    return [(Member("", key, zone), variant) for key, variant, zone in rows]


async def record_released(
    session: AsyncSession,
    row: CampaignRow,
    spec: CampaignSpec,
    recipients: Sequence[Recipient],
    now: datetime,
) -> int:
    """Write what was decided for pending members whose moment came (some may be pending
    again, until quiet hours end); returns how many sends were queued."""
    if recipients:
        params = [
            {
                "p_workspace": row.workspace,
                "p_campaign": row.campaign_id,
                "p_run": row.runs,
                "p_profile": r.profile_key,
                "p_status": _status(r),
                "p_variant": r.variant,
                "p_reason": r.skipped,
                "p_due_at": r.due_at,
            }
            for r in recipients
        ]
        await session.exec(_RELEASE, params=params)
    decided = [r for r in recipients if not r.pending]
    row.pending -= len(decided)
    queued = await _queue(session, row, spec, decided, now)
    row.update_time = now
    _complete_if_accounted(row, spec, now)
    session.add(row)
    await session.flush()
    return queued


_RECIPIENTS = db.table_of(RecipientRow)
# Parameters are named `p_<...>`: SQLAlchemy keeps bare column names for itself.
_RELEASE = (
    sa.update(_RECIPIENTS)
    .where(
        _RECIPIENTS.c.workspace == sa.bindparam("p_workspace"),
        _RECIPIENTS.c.campaign_id == sa.bindparam("p_campaign"),
        _RECIPIENTS.c.run == sa.bindparam("p_run"),
        _RECIPIENTS.c.profile_key == sa.bindparam("p_profile"),
    )
    .values(
        status=sa.bindparam("p_status"),
        variant=sa.bindparam("p_variant"),
        reason=sa.bindparam("p_reason"),
        due_at=sa.bindparam("p_due_at"),
    )
)


async def _queue(
    session: AsyncSession,
    row: CampaignRow,
    spec: CampaignSpec,
    decided: Sequence[Recipient],
    now: datetime,
) -> int:
    """Publish (through the outbox) the sends of the decided recipients not skipped, count
    them in the ledger, and count the skipped by reason."""
    queued = [r for r in decided if not r.skipped]
    sends = campaigns.send_messages(row.workspace, row.campaign_id, spec, queued, now)
    messages = outbox_rows(sends, now)
    if messages:
        await db.insert_many(session, sa.insert(db.table_of(OutboxMessage)), messages)
    await ledger.record_sends(session, [r.sent for r in queued if r.sent is not None])
    skipped = json.loads(row.skipped)
    for r in decided:
        if r.skipped:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    row.skipped = json.dumps(skipped, sort_keys=True)
    row.queued += len(queued)
    return len(queued)


async def record_conversions(
    session: AsyncSession, workspace: str, done: Sequence[tuple[str, str, datetime]]
) -> None:
    """Mark converted the recipients who did their campaign's goal event (user id, event,
    when) within its window after their send. Only campaigns whose A/B test still waits for its
    winner read conversions: reporting counts them for the reports."""
    if not done:
        return
    names = {event for _, event, _ in done}
    testing = (
        await session.exec(
            select(CampaignRow).where(
                col(CampaignRow.state) == campaigns.SENDING,
                col(CampaignRow.goal_event).in_(names),
                col(CampaignRow.winner) == "",
            )
        )
    ).all()
    for row in testing:
        goal = spec_of(row).goal
        assert goal is not None
        params = [
            {
                "p_workspace": workspace,
                "p_campaign": row.campaign_id,
                "p_run": row.runs,
                "p_profile": user_id,
                "p_at": at,
                "p_since": at - goal.within,
            }
            for user_id, event, at in done
            if event == goal.event
        ]
        await session.exec(_CONVERT, params=params)


_CONVERT = (
    sa.update(_RECIPIENTS)
    .where(
        _RECIPIENTS.c.workspace == sa.bindparam("p_workspace"),
        _RECIPIENTS.c.campaign_id == sa.bindparam("p_campaign"),
        _RECIPIENTS.c.run == sa.bindparam("p_run"),
        _RECIPIENTS.c.profile_key == sa.bindparam("p_profile"),
        _RECIPIENTS.c.status == SENT,
        _RECIPIENTS.c.sent_at <= sa.bindparam("p_at"),
        _RECIPIENTS.c.sent_at >= sa.bindparam("p_since"),
    )
    .values(converted=True)
)


async def variant_stats(session: AsyncSession, row: CampaignRow) -> dict[str, Stats]:
    """Per variant of the current run: recipients sent, opened, clicked and converted."""
    recipients = RecipientRow
    counted = [
        sa.func.sum(sa.cast(col(column), sa.Integer))
        for column in (recipients.opened, recipients.clicked, recipients.converted)
    ]
    statement = (
        select(col(recipients.variant), sa.func.count(), *counted)
        .where(
            col(recipients.campaign_id) == row.campaign_id,
            col(recipients.run) == row.runs,
            col(recipients.status) == SENT,
        )
        .group_by(col(recipients.variant))
    )
    rows: Sequence[Sequence[Any]] = (await session.exec(statement)).all()
    return {
        str(variant): Stats(*(int(count or 0) for count in counts)) for variant, *counts in rows
    }


async def record_engagement(
    session: AsyncSession, campaign_id: str, send_key: str, column: str
) -> None:
    """Mark a recipient opened or clicked (a `column` of RecipientRow)."""
    await session.exec(
        sa.update(RecipientRow)
        .where(col(RecipientRow.campaign_id) == campaign_id, col(RecipientRow.send_key) == send_key)
        .values({column: True})
    )


async def _insert_new_recipients(
    session: AsyncSession, row: CampaignRow, rows: list[dict[str, Any]]
) -> set[str]:
    """Insert the recipients this run has not recorded yet; returns their profile keys. The
    caller holds the campaign's row lock, so nothing else writes its recipients meanwhile. One
    cached statement a chunk: a multi-row VALUES of a thousand recipients was compiled anew
    for every chunk, half of a broadcast's time."""
    if not rows:
        return set()
    known = set(
        (
            await session.exec(
                select(RecipientRow.profile_key).where(
                    col(RecipientRow.campaign_id) == row.campaign_id,
                    col(RecipientRow.run) == row.runs,
                    col(RecipientRow.profile_key).in_([r["profile_key"] for r in rows]),
                )
            )
        ).all()
    )
    fresh = [r for r in rows if r["profile_key"] not in known]
    await db.insert_many(session, sa.insert(db.table_of(RecipientRow)), fresh)
    return {r["profile_key"] for r in fresh}


async def record_outcomes(
    session: AsyncSession, campaign_id: str, outcomes: dict[str, str], now: datetime
) -> CampaignRow | None:
    """Mark queued recipients sent or failed (send key -> SENT or FAILED), once each, and
    complete the campaign when every recipient is accounted for."""
    row = await get(session, campaign_id, for_update=True)
    if row is None:
        return None
    spec = spec_of(row)
    for status in (SENT, FAILED):
        keys = [key for key, outcome in outcomes.items() if outcome == status]
        if not keys:
            continue
        result = await session.exec(
            sa.update(RecipientRow)
            .where(
                col(RecipientRow.campaign_id) == campaign_id,
                col(RecipientRow.send_key).in_(keys),
                col(RecipientRow.status) == QUEUED,
            )
            .values(status=status, sent_at=now if status == SENT else None)
        )
        counted = int(result.rowcount or 0)
        if status == SENT:
            row.sent += counted
        else:
            row.failed += counted
    _complete_if_accounted(row, spec, now)
    session.add(row)
    return row


def _complete_if_accounted(row: CampaignRow, spec: CampaignSpec, now: datetime) -> None:
    """Completed only once the whole audience is gone through and every queued send has been
    reported sent or failed: never early. A recurring campaign runs again instead."""
    accounted = row.audience_done and not row.pending and row.sent + row.failed >= row.queued
    if row.state == campaigns.SENDING and accounted and not spec.recurrence:
        row.state, row.update_time = campaigns.COMPLETED, now


def begin_run(row: CampaignRow, now: datetime) -> None:
    """A due campaign starts its next run from the first member; its send time is the run's
    start."""
    row.state, row.runs, row.cursor, row.audience_done = campaigns.SENDING, row.runs + 1, "", False
    row.send_time = row.send_time or now
    row.update_time = now


def schedule_next_run(row: CampaignRow, at: datetime | None, now: datetime) -> None:
    """A recurring campaign whose run has gone through its audience waits for the next one
    (none within eight years: it completes once every send is accounted for)."""
    if at is None:
        return
    row.state, row.send_time, row.update_time = campaigns.SCHEDULED, at, now
