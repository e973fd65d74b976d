"""The database of one service: an async SQLModel engine from a URL (SQLite in WAL mode by
default, PostgreSQL by URL), Alembic migrations applied at start, and workspace-scoped queries.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command, context
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

ModelT = TypeVar("ModelT", bound=SQLModel)

# Serialises concurrent migrations of replicas starting together on PostgreSQL.
_MIGRATION_LOCK_KEY = 7_302_211


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite files get WAL, a busy timeout and their folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def open_database(
    url: str, migrations: Path
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """The service's engine, its schema brought to head, and its session factory."""
    engine = create_engine(url)
    await migrate(engine, migrations)
    return engine, session_factory(engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit; the caller owns the transaction."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session in one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session


async def migrate(engine: AsyncEngine, migrations: Path) -> None:
    """Apply the service's Alembic migrations (in `migrations`) up to head."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade, config)


def _upgrade(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_migrations_in_env() -> None:
    """Body of each service's `migrations/env.py`: run on the connection `migrate` passed."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def in_workspace(model: type[ModelT], workspace: str) -> SelectOfScalar[ModelT]:
    """`SELECT model WHERE workspace = ...`: every query of a store starts here."""
    column = getattr(model, "workspace")  # noqa: B009 - every table has one
    return select(model).where(column == workspace)
