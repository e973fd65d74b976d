"""The shared data layer as the services' replicas meet it."""

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

import services.segments
from engage import db
from tests.harness import Databases

MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
# A replica starting: its schema brought to head, as each service does first.
START = """
import asyncio, sys
from pathlib import Path
from engage import db
async def start():
    engine, _ = await db.open_database(sys.argv[1], Path(sys.argv[2]))
    await engine.dispose()
asyncio.run(start())
"""


async def start_replica(url: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", START, url, str(MIGRATIONS), stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    return process.returncode or 0, errors


@pytest.mark.timeout(120)
async def test_replicas_starting_together_on_a_new_database_all_start(
    databases: Databases,
) -> None:
    url = databases.url("segments")
    outcomes = await asyncio.gather(*(start_replica(url) for _ in range(3)))
    assert [(code, errors.decode()[-300:]) for code, errors in outcomes] == [(0, "")] * 3
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == _head()
    finally:
        await engine.dispose()


def _head() -> str:
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("0*.py"))
