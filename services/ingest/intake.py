"""Accepting events, whichever door they come in by (gRPC, or the Segment-compatible HTTP API):
each is checked by `validation.check_and_stamp`, the good ones are published, the bad ones
reported by index and field. The front ends only translate requests into events and outcomes
into answers.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from engage.clock import Clock, utc_now
from engage.errors import InvalidArgument
from engage.v1 import common_pb2
from services.ingest.group_commit import DEFAULT_LINGER_SECONDS, DEFAULT_MAX_WAITING, GroupCommit
from services.ingest.publisher import EventPublisher
from services.ingest.validation import Stamp, check_and_stamp


@dataclass(frozen=True)
class Refused:
    """An event of a batch that was not accepted: its position, the field at fault and why.

    `field` is the event's own field (`user_id`, `properties.note`; "" for the whole event),
    without the batch's prefix: each front end names it its own way (`events[3].user_id` over
    gRPC, `batch[3].userId` over HTTP).
    """

    index: int
    field: str
    description: str


@dataclass
class BatchOutcome:
    accepted: int = 0
    duplicates: int = 0
    refused: list[Refused] = field(default_factory=list)


class Intake:
    """Events handed in are checked and stamped in place, without a copy (this is the hot
    path): callers hand over events they own, a request just received or events just built.
    """

    def __init__(
        self,
        publisher: EventPublisher,
        clock: Clock = utc_now,
        max_waiting_singles: int = DEFAULT_MAX_WAITING,
        linger: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        self.publisher = publisher
        self.clock = clock
        self.singles = GroupCommit(publisher, max_waiting_singles, clock, linger)

    async def accept_one(
        self, workspace: str, event: common_pb2.Event
    ) -> tuple[common_pb2.Event, bool]:
        """Validate and publish one event, grouped with other single events arriving at the
        same time (`group_commit`): the event as stored, and whether it was a repeat.

        Raises InvalidArgument naming the field (before any grouping, so one caller's mistake
        never fails another's call), or Unavailable when the bus does not store it.
        """
        check_and_stamp(event, Stamp(self.clock()))
        duplicate = await self.singles.publish(workspace, event)
        return event, duplicate

    async def accept_many(
        self, workspace: str, events: Sequence[common_pb2.Event | InvalidArgument]
    ) -> BatchOutcome:
        """Publish the valid events of a batch; report each invalid one by index and field.

        A front end passes an item it could not even decode as the InvalidArgument that says
        why, so every item is reported at its own index. A repeat of a message id within the
        batch counts as a duplicate and is dropped.
        """
        now = self.clock()
        stamp = Stamp(now)
        outcome = BatchOutcome()
        accepted: list[common_pb2.Event] = []
        seen: set[str] = set()
        for index, item in enumerate(events):
            try:
                if isinstance(item, InvalidArgument):
                    raise item
                check_and_stamp(item, stamp)
            except InvalidArgument as error:
                outcome.refused.append(Refused(index, error.field, error.description))
                continue
            if item.message_id in seen:
                outcome.duplicates += 1
                continue
            seen.add(item.message_id)
            accepted.append(item)
        if accepted:
            await self.publisher.publish_many(workspace, accepted, now)
        outcome.accepted = len(accepted)
        return outcome
