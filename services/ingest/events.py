"""Validation and normalisation of incoming events (pure: no I/O).

Rules, per event:
- `user_id` or `anonymous_id` is required (alias: `user_id` and `previous_id`); ids are at most
  255 characters;
- track events need an `event` name of at most 200 characters (page and screen events may name
  the page or screen in `event`, with the same limit);
- `message_id` is optional: when empty, ingest assigns a random one (no dedupe is possible then);
- `timestamp` defaults to `received_at`; more than 24 hours ahead of ingest's clock, or before
  2000-01-01, is rejected rather than clamped, so a wrong clock shows instead of skewing reports;
- properties, traits and context together are at most 32 KiB, nested at most 8 levels deep.

Each event is accepted once: a single event (Track, Identify, Alias, or one HTTP call) is
published under its own message id, and JetStream drops a repeat within the EVENTS stream's
dedupe window (`dedupe_window_hours`, at least 24 h), so the caller is told it was a duplicate.
A batch travels as one message per partition, deduped as a whole (the same batch retried is
stored once); a repeat of an event inside a batch is counted as a duplicate and dropped, and
an event repeated across different batches is dropped downstream, where each event id counts
once (consumers apply events idempotently by message id).
"""

import math
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.struct_pb2 import ListValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from engage.errors import InvalidArgument
from engage.v1 import common_pb2

MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200
MAX_PAYLOAD_BYTES = 32 * 1024
MAX_NESTING = 8
MAX_FUTURE = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 512 * 1024

EventType = common_pb2.EventType
# Plain ints: reading the enum wrapper's attributes for every event costs more than the check.
_UNSPECIFIED = int(EventType.EVENT_TYPE_UNSPECIFIED)
_TRACK = int(EventType.EVENT_TYPE_TRACK)
_ALIAS = int(EventType.EVENT_TYPE_ALIAS)
_EARLIEST_SECONDS = int(EARLIEST.timestamp())
_MAX_FUTURE_SECONDS = int(MAX_FUTURE.total_seconds())


class Stamp:
    """The moment of acceptance, in the forms the checks need: worked out once per call, not
    once per event (a batch has up to 500 events and this is ingest's hot path).
    """

    def __init__(self, now: datetime) -> None:
        self.received_at = Timestamp()
        self.received_at.FromDatetime(now)
        self.latest = (self.received_at.seconds + _MAX_FUTURE_SECONDS, self.received_at.nanos)


def normalize(event: common_pb2.Event, now: datetime, field_prefix: str = "") -> common_pb2.Event:
    """A validated copy of `event` with message id, timestamp and `received_at` filled in.

    Raises InvalidArgument naming the field (prefixed, e.g. `events[3].event`).
    """
    checked = common_pb2.Event()
    checked.CopyFrom(event)
    try:
        normalize_in_place(checked, Stamp(now))
    except InvalidArgument as error:
        raise InvalidArgument(field_prefix + error.field, error.description) from None
    return checked


def normalize_in_place(event: common_pb2.Event, stamp: Stamp) -> None:
    """`normalize` without the copy, for a caller that owns the event (ingest's intake).

    Raises InvalidArgument naming the field; the event is then half-stamped and must be
    dropped.
    """
    _check_ids(event)
    _check_name(event)
    _check_payload(event)
    _stamp_times(event, stamp)
    if not event.message_id:
        event.message_id = uuid.uuid4().hex


def profile_key(event: common_pb2.Event) -> str:
    """The key that picks the event's partition: the user id when there is one."""
    return event.user_id or event.anonymous_id


def _check_ids(event: common_pb2.Event) -> None:
    longest = max(
        len(event.message_id), len(event.user_id), len(event.anonymous_id), len(event.previous_id)
    )
    if longest > MAX_ID_LENGTH:
        for field in ("message_id", "user_id", "anonymous_id", "previous_id"):
            if len(getattr(event, field)) > MAX_ID_LENGTH:
                raise InvalidArgument(field, f"at most {MAX_ID_LENGTH} characters")
    event_type = event.type
    if event_type == _ALIAS:
        if not event.user_id:
            raise InvalidArgument("user_id", "required for alias")
        if not event.previous_id:
            raise InvalidArgument("previous_id", "required for alias")
    elif not event.user_id and not event.anonymous_id:
        raise InvalidArgument("user_id", "user_id or anonymous_id is required")
    if event_type == _UNSPECIFIED:
        raise InvalidArgument("type", "required")


def _check_name(event: common_pb2.Event) -> None:
    name = event.event
    if event.type == _TRACK and not name.strip():
        raise InvalidArgument("event", "required for track")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidArgument("event", f"at most {MAX_EVENT_NAME_LENGTH} characters")


def _check_payload(event: common_pb2.Event) -> None:
    # The three structs are part of the event, so only a large event needs them measured.
    if event.ByteSize() > MAX_PAYLOAD_BYTES:
        size = sum(s.ByteSize() for s in (event.properties, event.traits, event.context))
        if size > MAX_PAYLOAD_BYTES:
            raise InvalidArgument(
                "properties", f"properties, traits and context exceed {MAX_PAYLOAD_BYTES} bytes"
            )
    _check_struct("properties", event.properties)
    _check_struct("traits", event.traits)
    _check_struct("context", event.context)


class _NotFinite(Exception):
    pass


def _check_struct(field: str, struct: Struct) -> None:
    if not struct.fields:
        return
    try:
        depth = _depth(struct)
    except _NotFinite:
        # JSON has no NaN or Infinity: no consumer or client could read the event back.
        raise InvalidArgument(field, "numbers must be finite (no NaN or Infinity)") from None
    if depth > MAX_NESTING:
        raise InvalidArgument(field, f"nested more than {MAX_NESTING} levels")


def _depth(node: Struct | ListValue) -> int:
    """How deep a struct or list nests (a flat one: 1); raises _NotFinite at NaN or infinity.

    Parsing bounds the recursion: protobuf refuses messages nested more than 100 deep.
    """
    if isinstance(node, Struct):
        fields = node.fields
        values: Iterable[Value] = [fields[key] for key in fields]  # faster than .values()
    else:
        values = node.values
    deepest = 0
    for value in values:
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            deepest = max(deepest, _depth(value.struct_value))
        elif kind == "list_value":
            deepest = max(deepest, _depth(value.list_value))
        elif kind == "number_value" and not math.isfinite(value.number_value):
            raise _NotFinite
    return 1 + deepest


def _stamp_times(event: common_pb2.Event, stamp: Stamp) -> None:
    event.received_at.CopyFrom(stamp.received_at)
    if not event.HasField("timestamp"):
        event.timestamp.CopyFrom(stamp.received_at)
        return
    happened = event.timestamp
    if (happened.seconds, happened.nanos) > stamp.latest:
        raise InvalidArgument("timestamp", "more than 24 hours in the future")
    if happened.seconds < _EARLIEST_SECONDS:
        raise InvalidArgument("timestamp", "before 2000-01-01")
