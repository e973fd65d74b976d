"""GDPR erasure in the scheduler's database (SQLite, and PostgreSQL when configured): a person's
campaign sends leave the frequency ledger and their campaign recipient rows keep no profile
key; other people's stay as they were."""

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

import services.scheduler
from engage import db
from engage.erasure import Erasure
from services.scheduler import store
from services.scheduler.models import LedgerRow, RecipientRow
from tests.harness import Databases

MIGRATIONS = Path(services.scheduler.__file__).parent / "migrations"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def recipient(profile_key: str, send_key: str) -> RecipientRow:
    return RecipientRow(
        workspace="acme",
        campaign_id="sale",
        run=1,
        profile_key=profile_key,
        variant="a",
        send_key=send_key,
        status="sent",
        reason="",
        zone="Asia/Tokyo",
    )


def ledger(profile_key: str, send_key: str) -> LedgerRow:
    return LedgerRow(
        workspace="acme", profile_key=profile_key, channel=1, sent_at=NOW, send_key=send_key
    )


async def test_a_persons_campaign_traces_are_erased_and_no_one_elses(databases: Databases) -> None:
    engine, sessions = await db.open_database(databases.url("scheduler"), MIGRATIONS)
    try:
        async with db.transaction(sessions, "acme") as session:
            for who, key in (("hedy", "k1"), ("ada", "k2")):
                session.add(recipient(who, key))
                session.add(ledger(who, key))
        erasure = Erasure("acme", "workspaces/acme/profiles/p1", "hedy", ())
        async with db.transaction(sessions, "acme") as session:
            await store.erase_person(session, erasure)
        async with db.reading(sessions, "acme") as session:
            recipients = (await session.exec(select(RecipientRow))).all()
            kept = (await session.exec(select(LedgerRow))).all()
    finally:
        await engine.dispose()
    assert sorted(r.profile_key for r in recipients)[0] == "ada"
    erased = next(r for r in recipients if r.send_key == "k1")
    assert erased.profile_key.startswith("erased:") and erased.zone == ""
    assert [row.profile_key for row in kept] == ["ada"]
