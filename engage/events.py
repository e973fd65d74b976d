"""How events travel on EVENTS, for every publisher (ingest, and the scheduler's trait updates):
one `EventBatch` per partition, the partition picked by the profile key, the batch named by the
message ids it holds and published under `<workspace>:<batch id>`."""

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from engage import subjects
from engage.v1 import bus_pb2, common_pb2


def profile_key(event: common_pb2.Event) -> str:
    """The key that picks the event's partition: the user id when there is one."""
    return event.user_id or event.anonymous_id


def subject_of(workspace: str, event: common_pb2.Event, partitions: int) -> str:
    return subjects.events(workspace, profile_key(event), partitions)


def batch(workspace: str, events: Sequence[common_pb2.Event], now: datetime) -> bus_pb2.EventBatch:
    """Events of one partition as one message. A lone event goes under its own message id, so
    its repeat is dropped however it comes (a retried single call, or a batch's lone event of a
    partition); a group under a digest of its message ids."""
    if len(events) == 1:
        batch_id = events[0].message_id
    else:
        digest = hashlib.sha256("\n".join(e.message_id for e in events).encode()).hexdigest()
        batch_id = f"batch:{digest}"
    made = bus_pb2.EventBatch(id=batch_id, workspace=workspace)
    # extend() copies events faster than the constructor does (upb), on the hot path.
    made.events.extend(events)
    made.occurred_at.FromDatetime(now)
    return made


def event_time(event: common_pb2.Event, fallback: datetime) -> datetime:
    """When the event happened: the client's timestamp, else when ingest received it."""
    if event.HasField("timestamp"):
        return event.timestamp.ToDatetime(tzinfo=UTC)
    if event.HasField("received_at"):
        return event.received_at.ToDatetime(tzinfo=UTC)
    return fallback


def msg_id(made: bus_pb2.EventBatch) -> str:
    """The batch's `Nats-Msg-Id`: JetStream drops a repeat of it within the dedupe window."""
    return f"{made.workspace}:{made.id}"
