"""Group commit of single events: the Track, Identify and Alias calls (and single HTTP calls)
that arrive while a partition's previous publish is on its way to JetStream are gathered into
the partition's next bus message, so a thousand one-event requests cost a few dozen JetStream
writes instead of a thousand. Each caller is still answered only once JetStream has stored
the message holding its event.

- A partition with nothing on its way gathers for `linger` seconds (a millisecond) before it
  publishes, then keeps publishing while events queue behind the publish in flight: so a lone
  event waits a millisecond at most, and under load a message carries many events. One
  publish at a time per partition keeps the events of a profile in the order they arrived.
- A group is at most `MAX_GROUP_EVENTS` events and `MAX_GROUP_BYTES` bytes, so it fits a bus
  message like a client's batch does.
- A failed publish fails exactly its own events and those queued behind it (never
  published); their callers get Unavailable and retry. Events of earlier, acknowledged
  groups are stored.
- At most `max_waiting` events wait at once; one more is refused at the door (Unavailable),
  so memory stays bounded while the bus is slow or away.
- Dedupe: a lone event travels under its own message id, as a single publish always did, so
  a repeat is dropped by JetStream and reported duplicate. An event repeated inside a group
  (two concurrent calls with one id) is stored once and both calls answered. An event
  repeated in a later group is stored again and dropped downstream, where every consumer
  applies an event once by its message id.
"""

import asyncio
from collections import deque
from dataclasses import dataclass, field

from opentelemetry import context as otel_context

from engage.clock import Clock, utc_now
from engage.errors import Unavailable
from engage.events import subject_of
from engage.v1 import common_pb2
from services.ingest.limits import MAX_REQUEST_BYTES
from services.ingest.publisher import EventPublisher, bus_unavailable

MAX_GROUP_EVENTS = 500
MAX_GROUP_BYTES = MAX_REQUEST_BYTES
DEFAULT_MAX_WAITING = 20_000
DEFAULT_LINGER_SECONDS = 0.001


@dataclass
class _Group:
    """Events bound for one bus message, and the callers waiting for it (one per message id:
    a repeat inside the group shares the first one's answer)."""

    events: list[common_pb2.Event] = field(default_factory=list)
    answers: dict[str, "asyncio.Future[bool]"] = field(default_factory=dict)
    size: int = 0
    # The trace of the call whose event opened the group: the bus message continues it, as
    # a batch's message continues the batch's call.
    trace: otel_context.Context = field(default_factory=otel_context.get_current)

    def has_room(self, event_bytes: int) -> bool:
        return len(self.events) < MAX_GROUP_EVENTS and self.size + event_bytes <= MAX_GROUP_BYTES

    def add(self, event: common_pb2.Event, event_bytes: int) -> "asyncio.Future[bool]":
        answer = asyncio.get_running_loop().create_future()
        self.events.append(event)
        self.answers[event.message_id] = answer
        self.size += event_bytes
        return answer

    def answer(self, duplicate: bool) -> None:
        for answer in self.answers.values():
            if not answer.done():
                answer.set_result(duplicate)

    def fail(self, error: Exception) -> None:
        for answer in self.answers.values():
            if not answer.done():
                answer.set_exception(error)


@dataclass
class _Partition:
    """The groups of one subject waiting their turn, oldest first; it exists while its
    drain runs."""

    workspace: str
    queue: deque[_Group] = field(default_factory=deque)

    def fail_queued(self, error: Exception) -> None:
        while self.queue:
            self.queue.popleft().fail(error)


class GroupCommit:
    """Publishes single events grouped per partition; see the module's docstring."""

    def __init__(
        self,
        publisher: EventPublisher,
        max_waiting: int = DEFAULT_MAX_WAITING,
        clock: Clock = utc_now,
        linger: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        self.publisher = publisher
        self.max_waiting = max_waiting
        self.linger = linger
        self.clock = clock
        self.waiting = 0
        self._partitions: dict[str, _Partition] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def publish(self, workspace: str, event: common_pb2.Event) -> bool:
        """Publish a validated event with the others arriving meanwhile; True when its message
        id was already stored. Raises Unavailable when it could not be stored (or queued)."""
        if self.waiting >= self.max_waiting:
            raise Unavailable("ingest is busy: too many events waiting for the bus; retry")
        subject = subject_of(workspace, event, self.publisher.partitions)
        partition = self._partitions.get(subject)
        if partition is None:
            partition = self._partitions[subject] = _Partition(workspace)
            drain = asyncio.create_task(self._drain(subject, partition))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        answer, repeat = _enqueue(partition, event)
        self.waiting += 1
        try:
            # Shielded: a caller that goes away must not cancel an answer others share.
            return await asyncio.shield(answer) or repeat
        finally:
            self.waiting -= 1

    async def _drain(self, subject: str, partition: _Partition) -> None:
        """Publish the partition's groups one after the other until none is left."""
        try:
            if self.linger:
                await asyncio.sleep(self.linger)
            while partition.queue:
                group = partition.queue.popleft()
                token = otel_context.attach(group.trace)
                try:
                    with bus_unavailable():
                        duplicate = await self.publisher.publish_group(
                            partition.workspace, subject, group.events, self.clock()
                        )
                except Exception as error:
                    # The bus is likely away: those queued behind are told now, to retry,
                    # rather than after one timeout per group.
                    group.fail(error)
                    partition.fail_queued(error)
                except BaseException:
                    group.fail(Unavailable("ingest stopped before the event was stored"))
                    raise
                else:
                    group.answer(duplicate)
                finally:
                    otel_context.detach(token)
        finally:
            del self._partitions[subject]
            partition.fail_queued(Unavailable("ingest stopped before the event was stored"))


def _enqueue(partition: _Partition, event: common_pb2.Event) -> tuple["asyncio.Future[bool]", bool]:
    """The answer the event waits for, and whether it repeats an event waiting already."""
    last = partition.queue[-1] if partition.queue else None
    if last is not None and event.message_id in last.answers:
        return last.answers[event.message_id], True
    event_bytes = event.ByteSize()
    if last is None or not last.has_room(event_bytes):
        last = _Group()
        partition.queue.append(last)
    return last.add(event, event_bytes), False
