"""Migration 0006 on a real database (SQLite, and PostgreSQL when configured): profiles stored
before it, whose date-only traits were read as UTC midnight, are read on their own calendar
afterwards, and the workspace settings table exists."""

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

import services.segments
from engage import db
from engage.dates import date_value, profile_zone
from tests.harness import Databases

MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
OLD_PROFILE = (
    "INSERT INTO profiles (id, workspace, traits, trait_times, time_zone, locale, created_at,"
    " updated_at, trait_dates, sample_bucket) VALUES ('p1', 'acme', :traits, '{}', :zone, '',"
    " '2026-01-01 00:00:00', '2026-01-01 00:00:00', :dates, 0)"
)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_stored_dates_are_read_again_in_the_profiles_zone(databases: Databases) -> None:
    engine = db.create_engine(databases.url("segments"))
    traits = {"prescribed_at": "2026-03-01", "paid_at": "2026-02-28T23:00:00Z", "n": 3}
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0005")
            utc_midnight = date_value("2026-03-01", profile_zone(""))
            assert utc_midnight is not None
            await connection.execute(
                sa.text(OLD_PROFILE),
                {
                    "traits": json.dumps(traits),
                    "zone": "Asia/Tokyo",
                    "dates": json.dumps({"prescribed_at": utc_midnight.at}),
                },
            )
            await connection.run_sync(_upgrade, "head")
            row = (
                await connection.execute(
                    sa.text("SELECT trait_dates, trait_local_times FROM profiles")
                )
            ).one()
            settings = await connection.execute(sa.text("SELECT * FROM workspace_settings"))
            assert settings.all() == []
    finally:
        await engine.dispose()
    tokyo = profile_zone("Asia/Tokyo")
    expected = {key: date_value(traits[key], tokyo) for key in ("prescribed_at", "paid_at")}
    assert json.loads(row[0]) == {key: found.at for key, found in expected.items() if found}
    assert json.loads(row[1]) == {key: found.local for key, found in expected.items() if found}
    # The Tokyo prescription day began before she paid.
    assert json.loads(row[0])["prescribed_at"] < json.loads(row[0])["paid_at"]
