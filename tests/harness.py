"""The real parts tests run against: nats-server, SMTP sink, databases, service processes."""

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
from sqlalchemy.engine import make_url

from engage.processes import NatsServer, ServiceProcess

T = TypeVar("T")

WORKSPACE = "acme"
ADMIN_KEY = "test-admin-key"
INGEST_KEY = "test-ingest-key"
MARKETER_KEY = "test-marketer-key"
SUPPORT_KEY = "test-support-key"
OTHER_WORKSPACE_KEY = "test-other-workspace-key"
API_KEYS = ",".join(
    [
        f"{ADMIN_KEY}={WORKSPACE}:admin",
        f"{INGEST_KEY}={WORKSPACE}:ingest",
        f"{MARKETER_KEY}={WORKSPACE}:marketer",
        f"{SUPPORT_KEY}={WORKSPACE}:support",
        f"{OTHER_WORKSPACE_KEY}=globex:admin",
    ]
)

POSTGRES_URL = os.environ.get("ENGAGE_TEST_POSTGRES", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def auth(key: str = ADMIN_KEY) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key."""
    return (("x-api-key", key),)


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy without raising; fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
            last: Any = result
        except (AssertionError, grpc.aio.AioRpcError) as error:
            last = error
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")
        await asyncio.sleep(0.05)


class Databases:
    """A fresh database per service per test: SQLite files, or PostgreSQL databases."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self.created: list[str] = []

    def url(self, service: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.folder / service}.db"
        name = f"engage_test_{service}_{uuid.uuid4().hex[:10]}"
        asyncio.run(self._postgres(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        server = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        return server.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _postgres(self, statement: str) -> None:
        admin = make_url(POSTGRES_URL).set(drivername="postgresql")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()


class Suite:
    """The five services as separate processes on free ports, sharing one nats-server."""

    def __init__(
        self, nats: NatsServer, databases: Databases, folder: Path, smtp_port: int
    ) -> None:
        self.nats = nats
        self.databases = databases
        self.folder = folder
        self.smtp_port = smtp_port
        self.processes: dict[str, ServiceProcess] = {}
        self._urls: dict[str, str] = {}

    def env(self, service: str) -> dict[str, str]:
        if service not in self._urls:
            self._urls[service] = self.databases.url(service)
        env = {
            "ENGAGE_NATS_URL": self.nats.url,
            "ENGAGE_DATABASE_URL": self._urls[service],
            "ENGAGE_GRPC_PORT": "0",
            "ENGAGE_API_KEYS": API_KEYS,
            "ENGAGE_SERVICE_API_KEY": ADMIN_KEY,
            "ENGAGE_VAR_DIR": str(self.folder / "var"),
            "ENGAGE_SMTP_PORT": str(self.smtp_port),
            "ENGAGE_LOG_LEVEL": "INFO",
        }
        if "segments" in self.processes and self.processes["segments"].address:
            env["ENGAGE_PROFILE_SERVICE_ADDRESS"] = self.processes["segments"].address
        return env

    def start(self, *services: str) -> None:
        started = []
        for name in services:
            process = ServiceProcess(name, self.env(name), self.folder, self.folder / f"{name}.log")
            process.start()
            self.processes[name] = process
            started.append(process)
        for process in started:
            process.wait_ready()

    def start_all(self) -> None:
        # channels calls ProfileService, so segments' address must be known first.
        self.start("ingest", "segments", "scheduler", "reporting")
        self.start("channels")

    def kill(self, service: str) -> None:
        self.processes[service].kill()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()

    def address(self, service: str) -> str:
        return self.processes[service].address

    def channel(self, service: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address(service))

    def log(self, service: str) -> str:
        return (self.folder / f"{service}.log").read_text(errors="replace")


@contextmanager
def running_nats(folder: Path) -> Iterator[NatsServer]:
    server = NatsServer(folder / "nats", log_file=folder / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
