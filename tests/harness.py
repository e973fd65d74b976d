"""The real parts tests run against: nats-server, SMTP sink, databases, service processes."""

import asyncio
import importlib
import inspect
import os
import pkgutil
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import asyncpg
import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from nats.js import api
from nats.js.errors import NotFoundError
from sqlalchemy.engine import make_url

import engage.v1
from engage import subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2
from engage_cli.processes import LocalSuite, NatsServer

T = TypeVar("T")

WORKSPACE = "acme"
ADMIN_KEY = "test-admin-key"
INGEST_KEY = "test-ingest-key"
MARKETER_KEY = "test-marketer-key"
SUPPORT_KEY = "test-support-key"
OTHER_WORKSPACE_KEY = "test-other-workspace-key"
SERVICE_KEY = "test-service-key"
API_KEYS = ",".join(
    [
        f"{ADMIN_KEY}={WORKSPACE}:admin",
        f"{INGEST_KEY}={WORKSPACE}:ingest",
        f"{MARKETER_KEY}={WORKSPACE}:marketer",
        f"{SUPPORT_KEY}={WORKSPACE}:support",
        f"{OTHER_WORKSPACE_KEY}=globex:admin",
        f"{SERVICE_KEY}=*:admin",
    ]
)

POSTGRES_URL = os.environ.get("ENGAGE_TEST_POSTGRES", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def auth(key: str = ADMIN_KEY) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key."""
    return (("x-api-key", key),)


@overload
async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = ...) -> T: ...
@overload
async def eventually(check: Callable[[], T | None], timeout: float = ...) -> T: ...
async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check` (a coroutine function, or a plain one for state already at hand) until it
    returns something truthy without raising; fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            answer = check()
            result = await answer if inspect.isawaitable(answer) else answer
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
        self._run_on_postgres(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        server = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        return server.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            self._run_on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run_on_postgres(self, statement: str) -> None:
        """Run on a thread of its own: callers may be inside a running event loop or not."""
        with ThreadPoolExecutor(1) as worker:
            worker.submit(asyncio.run, self._postgres(statement)).result()

    async def _postgres(self, statement: str) -> None:
        admin = make_url(POSTGRES_URL).set(drivername="postgresql")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()


class Suite(LocalSuite):
    """The services as separate processes on free ports, each with a fresh database."""

    def __init__(
        self, nats: NatsServer, databases: Databases, folder: Path, smtp_port: int
    ) -> None:
        super().__init__(
            folder,
            {
                "ENGAGE_NATS_URL": nats.url,
                "ENGAGE_GRPC_PORT": "0",
                "ENGAGE_HTTP_PORT": "0",
                "ENGAGE_API_KEYS": API_KEYS,
                "ENGAGE_SERVICE_API_KEY": SERVICE_KEY,
                "ENGAGE_VAR_DIR": str(folder / "var"),
                "ENGAGE_SMTP_PORT": str(smtp_port),
            },
        )
        self.nats = nats
        self.databases = databases
        self._urls: dict[str, str] = {}

    def service_env(self, name: str) -> dict[str, str]:
        if name not in self._urls:
            self._urls[name] = self.databases.url(name)
        return {"ENGAGE_DATABASE_URL": self._urls[name]}

    def channel(self, service: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address(service))

    def log(self, service: str) -> str:
        return (self.run_dir / f"{service}.log").read_text(errors="replace")


def contract_services() -> list[ServiceDescriptor]:
    """Every service of every generated contract module, found by walking `engage.v1`."""
    found = []
    for module in pkgutil.iter_modules(engage.v1.__path__):
        if module.name.endswith("_pb2"):
            contract = importlib.import_module(f"engage.v1.{module.name}")
            found += list(contract.DESCRIPTOR.services_by_name.values())
    return sorted(found, key=lambda service: service.full_name)


async def hosts(suite: Suite) -> dict[str, str]:
    """Which running process hosts each gRPC service, as its reflection lists them."""
    hosted: dict[str, str] = {}
    for process in suite.processes:
        async with suite.channel(process) as channel:
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for answer in reflection.ServerReflectionInfo(iter([request])):
                hosted |= {s.name: process for s in answer.list_services_response.service}
    return hosted


async def stored_events(suite: Suite) -> list[common_pb2.Event]:
    """Every event JetStream holds on the EVENTS stream, in order."""
    bus = await Bus.connect(suite.nats.url, "test-reader")
    try:
        info = await bus.js.stream_info("EVENTS")
        events: list[common_pb2.Event] = []
        if info.state.messages == 0:
            return events
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await bus.js.get_msg("EVENTS", sequence)
            batch = bus_pb2.EventBatch.FromString(raw.data or b"")
            assert batch.workspace == WORKSPACE
            events.extend(batch.events)
        return events
    finally:
        await bus.close()


async def publish_sends(bus: Bus, *sends: bus_pb2.SendRequested, msg_id: str = "") -> None:
    """Publish sends as the scheduler does, in one SendRequests (on the first one's channel);
    a `msg_id` other than the first key's gets a repeat past JetStream's dedupe."""
    requests = bus_pb2.SendRequests(id=msg_id or sends[0].id, workspace=WORKSPACE, sends=sends)
    await bus.publish(subjects.sends(sends[0].channel), requests, requests.id, WORKSPACE)


async def sends_settled(bus: Bus) -> bool:
    """Every send published so far was handled and acknowledged by channels (the work queue
    is empty and nothing is in flight); not before channels has made its consumer."""
    if (await bus.js.stream_info("SENDS")).state.messages:
        return False
    try:
        consumer = await bus.js.consumer_info("SENDS", "channels-sends")
    except NotFoundError:
        return False
    return int(consumer.num_ack_pending or 0) == 0


async def dead_letters(bus: Bus, durable: str = "") -> list[api.RawStreamMsg]:
    """What the DEADLETTER stream holds (for consumer `durable`, or all), read from the stream
    as it is now: no waiting for silence."""
    subject = subjects.dead_letter(durable) if durable else subjects.DEAD_LETTERS
    state = (await bus.js.stream_info("DEADLETTER", subjects_filter=subject)).state
    found = []
    for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        stored = await bus.js.get_msg("DEADLETTER", sequence)
        if not durable or stored.subject == subject:
            found.append(stored)
    return found


@contextmanager
def running_nats(folder: Path) -> Iterator[NatsServer]:
    server = NatsServer(folder / "nats", log_file=folder / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class MembershipFeed:
    """The membership changes published on `engage.memberships.<workspace>` from now on, one
    change at a time (they travel as MembershipChanges, several to a message)."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription
        self.pending: deque[bus_pb2.MembershipChanged] = deque()

    @classmethod
    async def watch(cls, bus: Bus, workspace: str = WORKSPACE) -> "MembershipFeed":
        subscription = await bus.js.subscribe(
            subjects.memberships(workspace),
            deliver_policy=api.DeliverPolicy.NEW,
            ordered_consumer=True,
        )
        return cls(subscription)

    async def next(self, timeout: float = 10.0) -> bus_pb2.MembershipChanged:
        while not self.pending:
            message = await self.subscription.next_msg(timeout=timeout)
            self.pending.extend(bus_pb2.MembershipChanges.FromString(message.data).changes)
        return self.pending.popleft()

    async def take(self, count: int, timeout: float = 10.0) -> list[tuple[str, str, int]]:
        """(segment id, profile name, change) of the next `count` changes, sorted."""
        got = [await self.next(timeout) for _ in range(count)]
        return sorted((m.segment.rsplit("/", 1)[1], m.profile, m.change) for m in got)
