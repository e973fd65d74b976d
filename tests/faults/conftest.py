from collections.abc import AsyncIterator

import pytest

from engage.bus import Bus
from tests.harness import Suite


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    """The test's own connection to the suite's NATS, streams declared."""
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()
