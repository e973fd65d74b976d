"""What the segments service does with bus messages: EVENTS batches update profiles, and the
segments that read what changed are re-evaluated for those profiles in the same transaction.

Pace. Each of the EVENTS partitions has a durable consumer of its own (`segments-events-<p>`),
so replicas share the partitions (`ENGAGE_REPLICA_INDEX` of `ENGAGE_REPLICA_COUNT` owns every
partition p with p % count == index) while each partition is read in order by one process. A
process applies what its partitions' fetches bring in one transaction (a group commit: while one
transaction runs, the next fetches gather and go together into the next), so one statement
writes the history of thousands of events.

Poison never spreads. A batch that fails on its data (a value the database refuses, one that
cannot be parsed) is applied again one event at a time, each in a transaction of its own: only
an event that fails alone is dead-lettered (as an EventBatch of that one event, with the
reason), the others are applied and the message is acked. A transient failure (the database
unreachable, a timeout, a concurrent merge) fails the whole message, which the bus retries;
each event applies once (keyed by its message id), so a retry applies only what is left.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, privacy
from engage.bus import Bus, ConsumerSpec, PermanentError, receive
from engage.clock import Clock, utc_now
from engage.v1 import bus_pb2
from services.segments import data_errors, realtime
from services.segments.event_applier import EventApplier
from services.segments.traits import SummedProperties

log = logging.getLogger(__name__)

Item = TypeVar("Item")

# Where the events that fail alone are parked, whichever partition they came on.
EVENTS_DEAD_LETTERS = "segments-events"
# Bus messages per fetch of one partition; the unacked limit of its durable too, so that only
# one process at a time works on a partition (see ConsumerSpec.max_ack_pending).
PARTITION_FETCH = 128
# Events per transaction at most, so that one transaction stays short however deep the backlog.
TRANSACTION_EVENTS = 5_000


def partition_consumer(partition: int) -> ConsumerSpec:
    """The durable consumer of one EVENTS partition (`engage.events.<workspace>.<p>`)."""
    return ConsumerSpec(
        durable=f"segments-events-{partition}",
        stream="EVENTS",
        filter_subjects=[f"engage.events.*.{partition}"],
        fetch_batch=PARTITION_FETCH,
        max_ack_pending=PARTITION_FETCH,
        dead_letter_name=EVENTS_DEAD_LETTERS,
    )


def owned_partitions(partitions: int, index: int, count: int) -> list[int]:
    """The partitions replica `index` of `count` reads: every count-th from its index."""
    return [partition for partition in range(partitions) if partition % count == index]


def is_permanent(error: BaseException) -> bool:
    """Whether the same data can never be applied: the database refused a value (a data or
    integrity error), a value could not be bound or parsed. Connection errors, timeouts and
    anything else are transient."""
    if isinstance(error, PermanentError | ValueError):
        return True
    if isinstance(error, exc.DBAPIError):
        return data_errors.refused_value(error) or data_errors.violated_constraint(error)
    # Not from the database: SQLAlchemy could not turn a value into a parameter.
    return isinstance(error, exc.StatementError) and isinstance(error.orig, TypeError | ValueError)


def reason_of(error: BaseException) -> str:
    """What failed, without the values involved: drivers and parsers quote the offending value
    in their messages, so only the kind of error and the statement's opening are kept."""
    if isinstance(error, exc.StatementError):
        cause = error.orig
        code = data_errors.sqlstate(error) if isinstance(error, exc.DBAPIError) else ""
        statement = " ".join((error.statement or "").split())[:60]
        detail = f"{type(cause).__name__}" + (f" (SQLSTATE {code})" if code else "")
        return privacy.redact(f"{type(error).__name__}: {detail} in {statement!r}")
    # A parser's message up to where it would quote the input.
    message = str(error).split(":", 1)[0].split("'", 1)[0].split('"', 1)[0].strip()
    return privacy.redact(f"{type(error).__name__}: {message}"[:300])


@dataclass
class Outcome:
    """What applying one message did."""

    applied: int = 0
    membership_changes: int = 0
    dead_lettered: int = 0

    def add(self, other: "Outcome") -> None:
        self.applied += other.applied
        self.membership_changes += other.membership_changes
        self.dead_lettered += other.dead_lettered


class EventsConsumer:
    """Applies each EventBatch in one transaction; the bus acks only after it commits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        published: Callable[[], None],
        summed: SummedProperties = frozenset(),
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.published = published
        self.summed = summed
        self.clock = clock
        self._group: GroupCommit[Msg] = GroupCommit(self._apply_messages)

    async def consume(self, partitions: Sequence[int]) -> None:
        """Apply the events of these partitions until cancelled."""
        async with asyncio.TaskGroup() as group:
            for partition in partitions:
                spec = partition_consumer(partition)
                group.create_task(self.bus.consume(spec, self.handle, self.handle_together))

    async def handle_together(self, messages: list[Msg]) -> None:
        """Apply several messages' events (of any partitions) in as few transactions as the
        workspaces and TRANSACTION_EVENTS allow; any failure fails them all (the bus then
        delivers each alone, through `handle`)."""
        await self._group.submit(messages)

    async def _apply_messages(self, messages: list[Msg]) -> None:
        by_workspace: dict[str, list[bus_pb2.EventBatch]] = defaultdict(list)
        for message in messages:
            workspace, batch = receive(message, bus_pb2.EventBatch)
            by_workspace[workspace].append(batch)
        applied = 0
        for workspace, batches in by_workspace.items():
            for chunk in _chunks(batches, TRANSACTION_EVENTS):
                applied += (await self._apply_all(workspace, chunk)).applied
        log.info(
            "event batches applied together",
            extra={"messages": len(messages), "applied": applied},
        )
        if applied:
            self.published()

    async def handle(self, message: Msg) -> None:
        workspace, batch = receive(message, bus_pb2.EventBatch)
        try:
            outcome = await self._apply(workspace, batch)
        except Exception as error:
            if not is_permanent(error):
                raise
            log.warning(
                "event batch failed on its data; applying its events one at a time: %s",
                reason_of(error),
                extra={"workspace": workspace, "batch": batch.id, "events": len(batch.events)},
            )
            outcome = await self._apply_one_at_a_time(message, workspace, batch)
        log.info(
            "event batch applied",
            extra={
                "workspace": workspace,
                "batch": batch.id,
                "events": len(batch.events),
                "applied": outcome.applied,
                "membership_changes": outcome.membership_changes,
                "dead_lettered": outcome.dead_lettered,
            },
        )
        if outcome.applied:
            self.published()

    async def _apply(self, workspace: str, batch: bus_pb2.EventBatch) -> Outcome:
        return await self._apply_all(workspace, [batch])

    async def _apply_all(self, workspace: str, batches: list[bus_pb2.EventBatch]) -> Outcome:
        async with db.transaction(self.sessions, workspace) as session:
            applier = EventApplier(session, workspace, clock=self.clock, summed=self.summed)
            applied = await applier.apply_all(batches)
            if not applied:
                return Outcome()
            # Same transaction: a membership never disagrees with the profile it follows.
            transitions = await realtime.reevaluate_applied(session, applier, self.clock())
        return Outcome(applied, len(transitions))

    async def _apply_one_at_a_time(
        self, message: Msg, workspace: str, batch: bus_pb2.EventBatch
    ) -> Outcome:
        """Each event alone; one that still fails on its data is dead-lettered by itself."""
        total = Outcome()
        for index, event in enumerate(batch.events):
            single = bus_pb2.EventBatch(id=f"{batch.id}:{index}", workspace=workspace)
            single.events.append(event)
            if batch.HasField("occurred_at"):
                single.occurred_at.CopyFrom(batch.occurred_at)
            try:
                total.add(await self._apply(workspace, single))
            except Exception as error:
                if not is_permanent(error):
                    raise
                reason = reason_of(error)
                log.error(
                    "event dead-lettered: %s",
                    reason,
                    extra={"workspace": workspace, "batch": batch.id, "event_index": index},
                )
                await self.bus.dead_letter(
                    EVENTS_DEAD_LETTERS, message, single.SerializeToString(), reason, str(index)
                )
                total.dead_lettered += 1
        return total


def _chunks(batches: list[bus_pb2.EventBatch], events: int) -> Iterator[list[bus_pb2.EventBatch]]:
    """Consecutive runs of batches holding about `events` events each (a batch is never split)."""
    chunk: list[bus_pb2.EventBatch] = []
    size = 0
    for batch in batches:
        if chunk and size + len(batch.events) > events:
            yield chunk
            chunk, size = [], 0
        chunk.append(batch)
        size += len(batch.events)
    if chunk:
        yield chunk


class GroupCommit(Generic[Item]):
    """Runs `apply` on everything submitted, one call at a time: what is submitted while a call
    runs waits and goes together into the next. Each submitter learns its call's outcome."""

    def __init__(self, apply: Callable[[list[Item]], Awaitable[None]]) -> None:
        self.apply = apply
        self._waiting: list[tuple[list[Item], asyncio.Future[None]]] = []
        self._running = asyncio.Lock()

    async def submit(self, items: list[Item]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, done))
        async with self._running:
            if not done.done():
                taken, self._waiting = self._waiting, []
                try:
                    await self.apply([item for group, _ in taken for item in group])
                except Exception as error:
                    for _, waiter in taken:
                        waiter.set_exception(error)
                else:
                    for _, waiter in taken:
                        waiter.set_result(None)
        await done
