"""gRPC health that tells the truth: a process is SERVING only while every dependency it needs
(its database, NATS) answers, for "" and for each proto service it hosts, and flips back on its
own when they return. Kubernetes' readiness probe reads it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[None]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def unreachable(dependencies: Mapping[str, Ping], timeout: float) -> list[str]:
    """The names of the dependencies that do not answer their ping within `timeout`."""

    async def answers(ping: Ping) -> bool:
        try:
            await asyncio.wait_for(ping(), timeout)
        except Exception:
            return False
        return True

    names = list(dependencies)
    answered = await asyncio.gather(*(answers(dependencies[name]) for name in names))
    return [name for name, ok in zip(names, answered, strict=True) if not ok]


class HealthWatch:
    """Sets every hosted service's status from its dependencies' pings."""

    def __init__(
        self,
        health: health_aio.HealthServicer,
        services: Sequence[str],
        dependencies: Mapping[str, Ping],
        period_seconds: float = 1.0,
    ) -> None:
        self.health = health
        self.services = services
        self.dependencies = dependencies
        self.period_seconds = period_seconds
        self.serving: bool | None = None

    async def check(self) -> None:
        """Ping once and update the status where it changed."""
        down = await unreachable(self.dependencies, timeout=self.period_seconds)
        if (not down) == self.serving:
            return
        self.serving = not down
        status = SERVING if self.serving else NOT_SERVING
        for name in ["", *self.services]:
            await self.health.set(name, status)
        if self.serving:
            log.info("serving")
        else:
            log.warning("not serving: dependencies unreachable", extra={"unreachable": down})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_seconds)
            await self.check()
