"""Puts accepted events on the EVENTS stream: one JetStream message per partition and batch
(single events are grouped by `group_commit`), so volume travels in batches; acknowledged only
once JetStream has stored it.
"""

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from nats.errors import Error as NatsError

from engage.bus import Bus
from engage.errors import Unavailable
from engage.events import batch, msg_id, subject_of
from engage.v1 import common_pb2

PUBLISH_TIMEOUT_ERRORS = (NatsError, TimeoutError, asyncio.TimeoutError)


class EventPublisher:
    def __init__(self, bus: Bus, partitions: int) -> None:
        self.bus = bus
        self.partitions = partitions

    async def publish_many(
        self, workspace: str, events: list[common_pb2.Event], now: datetime
    ) -> None:
        """Publish events grouped by partition, all groups at once; fails if any group fails."""
        by_subject: dict[str, list[common_pb2.Event]] = defaultdict(list)
        for event in events:
            by_subject[subject_of(workspace, event, self.partitions)].append(event)
        with bus_unavailable():
            await asyncio.gather(
                *(self.publish_group(workspace, s, group, now) for s, group in by_subject.items())
            )

    async def publish_group(
        self, workspace: str, subject: str, events: list[common_pb2.Event], now: datetime
    ) -> bool:
        """Publish events of one partition as one message; True when JetStream had already
        stored it (the same events resent, as a client retry does, are stored once)."""
        if not self.bus.client.is_connected:
            # Refused at once rather than buffered for a reconnect that may come after the
            # caller's answer: what is refused here was surely not stored.
            raise Unavailable("event bus unavailable: not connected")
        made = batch(workspace, events, now)
        ack = await self.bus.publish(subject, made, msg_id(made), workspace)
        return bool(ack.duplicate)


@contextlib.contextmanager
def bus_unavailable() -> Iterator[None]:
    """Turn the bus not answering into Unavailable, which callers may retry."""
    try:
        yield
    except PUBLISH_TIMEOUT_ERRORS as error:
        raise Unavailable(f"event bus unavailable: {type(error).__name__}") from error
