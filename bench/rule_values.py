"""What the value rules cost in SQL: counting members of one-condition rules (equals, numbers
that may arrive as text, arrays, nested paths) over generated profiles, beside the raw ceiling
measured in the same run: the hand-written JSON read with no type rules at all (on SQLite it
answers wrongly where a number arrives as text: a text is greater than any number there).

    .venv/bin/python bench/rule_values.py [--profiles 100000] [--postgres URL]
"""

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from engage.rules.proto import from_proto
from engage_cli import rules_yaml
from services.segments.rules_sql import count_members

WORKSPACE = "bench"
NOW = datetime(2025, 3, 20, tzinfo=UTC)
MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
# (rule, the raw ceiling on SQLite, on PostgreSQL): the same question without type rules.
CASES = [
    (
        "{trait: plan, equals: pro}",
        "json_extract(traits, '$.plan') = 'pro'",
        "traits_doc->>'plan' = 'pro'",
    ),
    (
        "{trait: seats, greater_than: 5}",
        "json_extract(traits, '$.seats') > 5",
        "(traits_doc->>'seats')::float > 5",
    ),
    (
        "{trait: address.city, equals: Tokyo}",
        "json_extract(traits, '$.address.city') = 'Tokyo'",
        "traits_doc#>>'{address,city}' = 'Tokyo'",
    ),
    (
        "{trait: tags, contains: vip}",
        "EXISTS (SELECT 1 FROM json_each(traits, '$.tags') WHERE value = 'vip')",
        "traits_doc->'tags' ? 'vip'",
    ),
]


def _traits(n: int) -> str:
    seats = str(n % 10) if n % 3 == 0 else n % 10  # a third arrive as text
    document = {
        "plan": ["free", "pro", "team"][n % 3],
        "seats": seats,
        "address": {"city": ["Tokyo", "Osaka"][n % 2]},
        "tags": ["vip"] if n % 7 == 0 else ["new", "early"],
    }
    return json.dumps(document, ensure_ascii=False)


async def _run(url: str, profiles: int, dialect: str) -> None:
    engine, sessions = await db.open_database(url, MIGRATIONS)
    try:
        async with engine.begin() as connection:
            rows = [{"id": f"p{n}", "traits": _traits(n), "at": NOW} for n in range(profiles)]
            await connection.execute(
                sa.text(
                    "INSERT INTO profiles (id, workspace, traits, trait_times, time_zone, locale,"
                    " created_at, updated_at, trait_dates, trait_local_times, sample_bucket)"
                    f" VALUES (:id, '{WORKSPACE}', :traits, '{{}}', '', '', :at, :at, '{{}}',"
                    " '{}', 0)"
                ),
                rows,
            )
        print(f"{dialect}: {profiles} profiles; milliseconds per count (rules | raw ceiling)")
        for rule_yaml, sqlite_raw, postgres_raw in CASES:
            raw = postgres_raw if dialect == "postgresql" else sqlite_raw
            rule = from_proto(rules_yaml.from_yaml(rule_yaml))
            ceiling = sa.text(f"SELECT count(*) FROM profiles WHERE workspace = :w AND {raw}")
            async with db.reading(sessions, WORKSPACE) as session:
                rules_ms, found = await _best(partial(count_members, session, WORKSPACE, rule, NOW))
                raw_ms, raw_count = await _best(partial(_raw_count, session, ceiling))
            print(f"  {rule_yaml:42} {rules_ms:8.1f} | {raw_ms:8.1f}   ({found} / {raw_count})")
    finally:
        await engine.dispose()


async def _best(run: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    """The fastest of three runs, in milliseconds, and its answer."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        answer = await run()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), answer


async def _raw_count(session: AsyncSession, query: sa.TextClause) -> int:
    result = await session.exec(query, params={"w": WORKSPACE})  # type: ignore[call-overload]
    return int(result.scalar())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--postgres", default="", help="a server URL; a database is created")
    arguments = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        await _run(f"sqlite+aiosqlite:///{folder}/bench.db", arguments.profiles, "sqlite")
    if arguments.postgres:
        import asyncpg

        name = f"engage_bench_{uuid.uuid4().hex[:8]}"
        server = sa.engine.make_url(arguments.postgres).set(drivername="postgresql")
        admin = await asyncpg.connect(server.render_as_string(hide_password=False))
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = server.set(drivername="postgresql+asyncpg", database=name)
            await _run(url.render_as_string(hide_password=False), arguments.profiles, "postgresql")
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
