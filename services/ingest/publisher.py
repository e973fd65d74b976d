"""Puts accepted events on the EVENTS stream: one JetStream message per partition and call, so
volume travels in batches; acknowledged only once JetStream has stored it.
"""

import asyncio
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from nats.errors import Error as NatsError

from engage import subjects
from engage.bus import Bus
from engage.errors import Unavailable
from engage.v1 import bus_pb2, common_pb2

PUBLISH_TIMEOUT_ERRORS = (NatsError, TimeoutError, asyncio.TimeoutError)


class EventPublisher:
    def __init__(self, bus: Bus, partitions: int) -> None:
        self.bus = bus
        self.partitions = partitions

    async def publish_one(self, workspace: str, event: common_pb2.Event, now: datetime) -> bool:
        """Publish a single event; True when JetStream had already stored its message id."""
        batch = bus_pb2.EventBatch(id=event.message_id, workspace=workspace, events=[event])
        batch.occurred_at.FromDatetime(now)
        subject = subjects.events(workspace, profile_key(event), self.partitions)
        with _bus_unavailable():
            ack = await self.bus.publish(
                subject, batch, f"{workspace}:{event.message_id}", workspace
            )
        return bool(ack.duplicate)

    async def publish_many(
        self, workspace: str, events: list[common_pb2.Event], now: datetime
    ) -> None:
        """Publish events grouped by partition, all groups at once; fails if any group fails."""
        by_subject: dict[str, list[common_pb2.Event]] = defaultdict(list)
        for event in events:
            by_subject[subjects.events(workspace, profile_key(event), self.partitions)].append(
                event
            )
        with _bus_unavailable():
            await asyncio.gather(
                *(self._publish_group(workspace, s, group, now) for s, group in by_subject.items())
            )

    async def _publish_group(
        self, workspace: str, subject: str, events: list[common_pb2.Event], now: datetime
    ) -> None:
        # The same events resent as the same batch (a client retry) are stored once.
        digest = hashlib.sha256("\n".join(e.message_id for e in events).encode()).hexdigest()
        batch = bus_pb2.EventBatch(id=f"batch:{digest}", workspace=workspace)
        # extend() copies events faster than the constructor does (upb), on the hot path.
        batch.events.extend(events)
        batch.occurred_at.FromDatetime(now)
        await self.bus.publish(subject, batch, f"{workspace}:{batch.id}", workspace)


def profile_key(event: common_pb2.Event) -> str:
    """The key that picks the event's partition: the user id when there is one."""
    return event.user_id or event.anonymous_id


@contextlib.contextmanager
def _bus_unavailable() -> Iterator[None]:
    """Turn the bus not answering into Unavailable, which callers may retry."""
    try:
        yield
    except PUBLISH_TIMEOUT_ERRORS as error:
        raise Unavailable(f"event bus unavailable: {type(error).__name__}") from error
