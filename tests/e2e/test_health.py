"""gRPC health tells the truth: every process goes NOT_SERVING, for "" and for every service it
hosts, while NATS or its database is unreachable, and SERVING again on its own once they return.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from tests.harness import POSTGRES_URL, Suite, eventually, hosts

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Processes that own a database (ingest is stateless).
WITH_DATABASE = ("segments", "scheduler", "channels", "reporting")


@pytest.fixture
async def suite_checked_often(bare_suite: Suite) -> AsyncIterator[Suite]:
    """Every service, pinging its dependencies five times a second."""
    bare_suite.env["ENGAGE_HEALTH_PERIOD"] = "0.2"
    await asyncio.to_thread(bare_suite.start_all)
    yield bare_suite


async def hosted_services(suite: Suite, process: str) -> list[str]:
    """The empty name (the whole process) and every Engage service it lists by reflection."""
    hosted = [name for name, host in (await hosts(suite)).items() if host == process]
    engage_services = [name for name in hosted if name.startswith("engage.")]
    assert engage_services, process
    return ["", *engage_services]


async def statuses(suite: Suite, processes: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """The health status of every (process, service) pair."""
    found: dict[tuple[str, str], int] = {}
    for process in processes:
        async with suite.channel(process) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in await hosted_services(suite, process):
                answer = await health.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=5
                )
                found[(process, service)] = answer.status
    return found


async def all_become(suite: Suite, processes: tuple[str, ...], status: int) -> None:
    async def reached() -> bool:
        found = await statuses(suite, processes)
        assert set(found.values()) == {status}, found
        return True

    await eventually(reached, timeout=30)


async def test_health_follows_nats_going_away_and_coming_back(
    suite_checked_often: Suite,
) -> None:
    suite = suite_checked_often
    everyone = tuple(suite.processes)
    await all_become(suite, everyone, SERVING)

    await asyncio.to_thread(suite.nats.stop)
    try:
        await all_become(suite, everyone, NOT_SERVING)
    finally:
        await asyncio.to_thread(suite.nats.start)  # same port, same store

    await all_become(suite, everyone, SERVING)


async def allow_connections(suite: Suite, processes: tuple[str, ...], allowed: bool) -> None:
    """Let the processes' PostgreSQL databases take connections, or refuse them and end every
    session they have, from a connection to the server's own `postgres` database."""
    server = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        for process in processes:
            database = make_url(suite.service_env(process)["ENGAGE_DATABASE_URL"]).database
            await connection.execute(
                f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'
            )
            if not allowed:
                await connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
    finally:
        await connection.close()


if POSTGRES_URL:
    # PostgreSQL only, and only defined when there is one: never a silently skipped test.

    @pytest.mark.parametrize("databases", ["postgres"], indirect=True)
    async def test_health_follows_the_database_going_away_and_coming_back(
        suite_checked_often: Suite,
    ) -> None:
        suite = suite_checked_often
        await all_become(suite, WITH_DATABASE, SERVING)

        await allow_connections(suite, WITH_DATABASE, allowed=False)
        try:
            await all_become(suite, WITH_DATABASE, NOT_SERVING)
            # Ingest owns no database: it goes on serving.
            assert set((await statuses(suite, ("ingest",))).values()) == {SERVING}
        finally:
            await allow_connections(suite, WITH_DATABASE, allowed=True)

        await all_become(suite, WITH_DATABASE, SERVING)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_health_follows_a_sqlite_file_going_away_and_coming_back(
    suite_checked_often: Suite,
) -> None:
    """A laptop's database is a file: moved away (its volume gone), the services stop serving."""
    suite = suite_checked_often
    files = {
        process: Path(make_url(suite.service_env(process)["ENGAGE_DATABASE_URL"]).database or "")
        for process in WITH_DATABASE
    }
    await all_become(suite, WITH_DATABASE, SERVING)

    for path in files.values():
        path.rename(path.with_suffix(".away"))
    try:
        await all_become(suite, WITH_DATABASE, NOT_SERVING)
    finally:
        for path in files.values():
            path.with_suffix(".away").rename(path)

    await all_become(suite, WITH_DATABASE, SERVING)
