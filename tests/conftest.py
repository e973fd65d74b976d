from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engage.bus import Bus
from engage_cli.processes import NatsServer
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import BACKENDS, Databases, Suite, running_nats
from tests.journeys import with_moving_clock


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream nats-server of this test's own, on a free port."""
    with running_nats(tmp_path) as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """The test's own connection to its nats-server, every stream declared."""
    connection = await Bus.connect(nats_server.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path / "mail")
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Fresh databases per test, on SQLite, and on PostgreSQL when ENGAGE_TEST_POSTGRES is set."""
    databases = Databases(request.param, tmp_path / "db")
    (tmp_path / "db").mkdir()
    yield databases
    databases.drop_all()


@pytest.fixture
def suite(
    nats_server: NatsServer, smtp_sink: SmtpSink, databases: Databases, tmp_path: Path
) -> Iterator[Suite]:
    """All five services running as separate processes."""
    running = Suite(nats_server, databases, tmp_path, smtp_sink.port)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def bare_suite(
    nats_server: NatsServer, smtp_sink: SmtpSink, databases: Databases, tmp_path: Path
) -> Iterator[Suite]:
    """Nothing started yet: the test starts the services it needs with `start(name, ...)`."""
    running = Suite(nats_server, databases, tmp_path, smtp_sink.port)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def clock_file(bare_suite: Suite) -> Path:
    """A clock the test moves forward (`tests.journeys.move`), read by every service started
    after: days pass in seconds."""
    return with_moving_clock(bare_suite)
