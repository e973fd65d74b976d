"""The database of one service: an async SQLModel engine from a URL (SQLite in WAL mode by
default, PostgreSQL by URL), Alembic migrations applied at start, and workspace-scoped sessions.

Workspace scoping lives here, not in each query: a session opened with `transaction` or
`reading` names its workspace, and every ORM SELECT, UPDATE and DELETE it runs on a table with
a `workspace` column gets `workspace = <that workspace>` added. A session that names none
refuses such queries (`UnscopedQuery`); jobs that really span workspaces (the outbox relay, the
timed-segment sweep) say so with `EVERY_WORKSPACE`. Core statements on bare tables (the bulk
paths of segments) are not ORM statements and carry their workspace parameter themselves.
"""

import asyncio
import contextlib
import fcntl
import functools
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

# Serialises concurrent migrations of replicas starting together on PostgreSQL.
_MIGRATION_LOCK_KEY = 7_302_211

# Never a workspace name (those are AIP-122 ids, checked where callers and bus messages name
# them), so no caller can reach it.
EVERY_WORKSPACE = "*"
_WORKSPACE_KEY = "engage_workspace"
_WRITER_KEY = "engage_writer_turn"

Insert = postgresql.Insert | sqlite.Insert


class _SqliteInstant(sqlite.DATETIME):
    """SQLite's DATETIME text as SQLAlchemy writes it (`YYYY-MM-DD HH:MM:SS.ffffff`, the wall
    fields as given), formatted by the C `isoformat`: SQLAlchemy's formatting in Python took
    about a tenth of applying events, one call per time of thousands of rows."""

    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        general = super().bind_processor(dialect)
        assert general is not None

        def process(value: Any) -> Any:
            if type(value) is datetime:
                return value.isoformat(" ", "microseconds")[:26]
            return general(value)

        return process


# The column type of every instant: an aware datetime (UTC) in and out.
INSTANT = sa.DateTime(timezone=True).with_variant(
    _SqliteInstant(),  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
    "sqlite",
)


class UnscopedQuery(RuntimeError):
    """A query on workspace data from a session that names no workspace: a programming error."""


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite files get WAL, a busy timeout and their folder created;
    PostgreSQL plans every statement for its own parameters."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            hide_parameters=True,
            # The driver prepares each statement once per connection, and after five runs
            # PostgreSQL may keep a generic plan chosen while a table was small: a lookup of
            # 500 message ids then scans the whole history (0.9 s instead of a few ms).
            connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Parameters stay out of error messages and logs: they hold personal data.
    engine = create_async_engine(url, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache (the default is 2): bulk writes land on random pages of big indexes.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


async def open_database(
    url: str, migrations: Path
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """The service's engine, its schema brought to head, and its session factory."""
    engine = create_engine(url)
    await migrate(engine, migrations)
    return engine, session_factory(engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit; the caller owns the transaction.
    On SQLite, the factory carries the process's writer turn (see `transaction`)."""
    info = {_WRITER_KEY: asyncio.Lock()} if engine.dialect.name == "sqlite" else {}
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, info=info)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], workspace: str, rehearsal: bool = False
) -> AsyncIterator[AsyncSession]:
    """One session in one transaction, scoped to `workspace`: committed on success, rolled back
    on error, and rolled back anyway for a `rehearsal` (an API's `validate_only`: everything
    checked and done as for real, nothing kept). On SQLite, the transactions of one process
    take turns (first come, first served) before they begin: SQLite has one writer at a time,
    and a writer waiting in its busy handler sleeps up to 100 ms at a time, long after the lock
    is free."""
    turn = sessions.kw.get("info", {}).get(_WRITER_KEY) or contextlib.nullcontext()
    async with turn, sessions() as session, session.begin() as begun:
        session.info[_WORKSPACE_KEY] = workspace
        yield session
        if rehearsal:
            await begun.rollback()


@asynccontextmanager
async def reading(
    sessions: async_sessionmaker[AsyncSession], workspace: str
) -> AsyncIterator[AsyncSession]:
    """A session for reads, scoped to `workspace`."""
    async with sessions() as session:
        session.info[_WORKSPACE_KEY] = workspace
        yield session


@event.listens_for(Session, "do_orm_execute")
def _scope_to_workspace(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    workspace = state.session.info.get(_WORKSPACE_KEY)
    if workspace == EVERY_WORKSPACE:
        return
    if workspace is not None and not state.is_orm_statement:
        return  # Core on bare tables: carries its own filter (the hot bulk paths)
    scoped = _workspace_models(state)
    if not scoped:
        return
    if workspace is None:
        names = ", ".join(sorted(model.__name__ for model in scoped))
        raise UnscopedQuery(f"query on {names} from a session scoped to no workspace")
    state.statement = state.statement.options(
        *(
            with_loader_criteria(
                model, lambda cls: cls.workspace == workspace, include_aliases=True
            )
            for model in scoped
        )
    )


def _workspace_models(state: ORMExecuteState) -> list[type[Any]]:
    """The mapped classes with a workspace column that a statement reads or changes, including
    those it names only in FROM (`select(func.count()).select_from(Model)`)."""
    models = {mapper.class_ for mapper in state.all_mappers}
    by_table = _models_by_table(len(SQLModel._sa_registry.mappers))
    tables = find_tables(cast(sa.ClauseElement, state.statement), include_crud=True)
    models |= {by_table[table] for table in tables if table in by_table}
    return sorted(
        (model for model in models if "workspace" in table_of(model).columns),
        key=lambda model: model.__name__,
    )


@functools.cache
def _models_by_table(_mapper_count: int) -> dict[sa.FromClause, type[Any]]:
    return {mapper.local_table: mapper.class_ for mapper in SQLModel._sa_registry.mappers}


def table_of(model: type[Any]) -> sa.Table:
    """The table behind a SQLModel class, for Core statements."""
    return cast(sa.Table, model.__table__)


def upsert_into(session: AsyncSession, model: type[Any]) -> Insert:
    """An INSERT into `model`'s table with ON CONFLICT support in the session's dialect."""
    table = table_of(model)
    if is_postgresql(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def unnested(name: str, columns: Mapping[str, sa.ColumnElement[Any]]) -> sa.TableValuedAlias:
    """PostgreSQL: rows passed as one array per column (bind parameters named after the keys
    of `columns`, typed as those columns; see `as_arrays`), read as a table `name`. One
    statement then writes thousands of rows, where an executemany runs once per row."""
    arrays = (
        sa.cast(sa.bindparam(key), postgresql.ARRAY(column.type)) for key, column in columns.items()
    )
    return sa.func.unnest(*arrays).table_valued(*columns).render_derived(name=name)


def as_arrays(rows: list[dict[str, Any]], keys: Iterable[str]) -> dict[str, list[Any]]:
    """The parameters of `unnested`: the rows' values, one list per key."""
    return {key: [row[key] for row in rows] for key in keys}


async def insert_many(session: AsyncSession, insert: sa.Insert, rows: list[dict[str, Any]]) -> None:
    """Run `insert` (plain or ON CONFLICT) for rows that each have the same keys, named after
    its table's columns: an executemany on SQLite, where it is cheap; on PostgreSQL, where an
    executemany runs once per row, one statement reading the rows from arrays (`unnested`).
    No rows, no statement."""
    if not rows:
        return
    if not is_postgresql(session):
        await session.exec(insert, params=rows)
        return
    columns = {key: insert.table.c[key] for key in rows[0]}
    given = unnested("given", columns)
    fed = insert.from_select(list(columns), sa.select(*given.c))
    await session.exec(fed, params=as_arrays(rows, columns))


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query now. A SQLite file must also still be
    where it was opened: pooled connections keep answering from a file that was removed or
    moved away (its volume gone), and nothing written there would be found again."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database or ":memory:"
        if database != ":memory:" and not await asyncio.to_thread(Path(database).exists):
            raise FileNotFoundError("the SQLite database file is gone")
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def migrate(engine: AsyncEngine, migrations: Path) -> None:
    """Apply the service's Alembic migrations (in `migrations`) up to head."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    async with _migration_turn(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade, config)


@asynccontextmanager
async def _migration_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    """Replicas starting together on one SQLite file migrate one after the other (PostgreSQL
    has its advisory lock): SQLite's driver runs DDL outside any transaction, so both would
    create the same tables and one would fail."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    turn = await asyncio.to_thread(open, f"{database}.migrating", "a")
    with turn:  # closing the file gives the turn up
        await asyncio.to_thread(fcntl.flock, turn, fcntl.LOCK_EX)
        yield


def _upgrade(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_migrations_in_env() -> None:
    """Body of each service's `migrations/env.py`: run on the connection `migrate` passed."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
