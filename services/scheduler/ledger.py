"""The frequency ledger: the marketing sends made, per profile and channel, which frequency
caps count; read for a batch's profiles before it decides, written with what it sent."""

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db
from engage.clock import as_utc
from services.scheduler.decisions import Decisions, Policy, Sent
from services.scheduler.models import LedgerRow


async def decisions_for(
    session: AsyncSession,
    policies: dict[str, Policy],
    profiles: set[tuple[str, str]],
    now: datetime,
) -> Decisions:
    """What sends are decided with: the policies, and the marketing sends of these (workspace,
    profile key) pairs within the longest window of their workspace's caps."""
    recent: dict[tuple[str, str], list[Sent]] = {}
    for workspace, policy in policies.items():
        keys = sorted(key for ws, key in profiles if ws == workspace)
        if not policy.caps or not keys:
            continue
        rows = await session.exec(
            select(LedgerRow).where(
                col(LedgerRow.workspace) == workspace,
                col(LedgerRow.profile_key).in_(keys),
                col(LedgerRow.sent_at) > now - policy.longest_window,
            )
        )
        for row in rows.all():
            sent = Sent(workspace, row.profile_key, row.channel, as_utc(row.sent_at), row.send_key)
            recent.setdefault((workspace, row.profile_key), []).append(sent)
    return Decisions(policies, recent)


async def record_sends(session: AsyncSession, made: Sequence[Sent]) -> None:
    """Add the marketing sends made to the frequency ledger (once per send key)."""
    if not made:
        return
    rows = [
        {
            "workspace": sent.workspace,
            "profile_key": sent.profile_key,
            "channel": sent.channel,
            "sent_at": sent.at,
            "send_key": sent.send_key,
        }
        for sent in made
    ]
    statement = db.upsert_into(session, LedgerRow).on_conflict_do_nothing()
    await db.insert_many(session, statement, rows)
