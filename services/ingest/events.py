"""Validation and normalisation of incoming events (pure: no I/O).

Rules, per event:
- `user_id` or `anonymous_id` is required (alias: `user_id` and `previous_id`); ids are at most
  255 characters;
- track events need an `event` name of at most 200 characters;
- `message_id` is optional: when empty, ingest assigns a random one (no dedupe is possible then);
- `timestamp` defaults to `received_at`; more than 24 hours ahead of ingest's clock, or before
  2000-01-01, is rejected rather than clamped, so a wrong clock shows instead of skewing reports;
- properties, traits and context together are at most 32 KiB, nested at most 8 levels deep.
"""

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.struct_pb2 import ListValue, Struct, Value

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


def normalize(event: common_pb2.Event, now: datetime, field_prefix: str = "") -> common_pb2.Event:
    """A validated copy of `event` with message id, timestamp and `received_at` filled in.

    Raises InvalidArgument naming the field (prefixed, e.g. `events[3].event`).
    """
    checked = common_pb2.Event()
    checked.CopyFrom(event)
    try:
        _check_ids(checked)
        _check_name(checked)
        _check_payload(checked)
        _stamp_times(checked, now)
    except InvalidArgument as error:
        raise InvalidArgument(field_prefix + error.field, error.description) from None
    if not checked.message_id:
        checked.message_id = uuid.uuid4().hex
    return checked


def profile_key(event: common_pb2.Event) -> str:
    """The key that picks the event's partition: the user id when there is one."""
    return event.user_id or event.anonymous_id


def _check_ids(event: common_pb2.Event) -> None:
    for field in ("message_id", "user_id", "anonymous_id", "previous_id"):
        if len(getattr(event, field)) > MAX_ID_LENGTH:
            raise InvalidArgument(field, f"at most {MAX_ID_LENGTH} characters")
    if event.type == EventType.EVENT_TYPE_ALIAS:
        if not event.user_id:
            raise InvalidArgument("user_id", "required for alias")
        if not event.previous_id:
            raise InvalidArgument("previous_id", "required for alias")
    elif not event.user_id and not event.anonymous_id:
        raise InvalidArgument("user_id", "user_id or anonymous_id is required")
    if event.type == EventType.EVENT_TYPE_UNSPECIFIED:
        raise InvalidArgument("type", "required")


def _check_name(event: common_pb2.Event) -> None:
    if event.type != EventType.EVENT_TYPE_TRACK:
        return
    if not event.event.strip():
        raise InvalidArgument("event", "required for track")
    if len(event.event) > MAX_EVENT_NAME_LENGTH:
        raise InvalidArgument("event", f"at most {MAX_EVENT_NAME_LENGTH} characters")


def _check_payload(event: common_pb2.Event) -> None:
    size = sum(s.ByteSize() for s in (event.properties, event.traits, event.context))
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidArgument(
            "properties", f"properties, traits and context exceed {MAX_PAYLOAD_BYTES} bytes"
        )
    for field in ("properties", "traits", "context"):
        if _depth(getattr(event, field)) > MAX_NESTING:
            raise InvalidArgument(field, f"nested more than {MAX_NESTING} levels")


def _depth(value: Struct | ListValue | Value) -> int:
    if isinstance(value, Struct):
        return 1 + max((_depth(v) for v in value.fields.values()), default=0)
    if isinstance(value, ListValue):
        return 1 + max((_depth(v) for v in value.values), default=0)
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _depth(value.struct_value)
    if kind == "list_value":
        return _depth(value.list_value)
    return 0


def _stamp_times(event: common_pb2.Event, now: datetime) -> None:
    event.received_at.FromDatetime(now)
    if not event.HasField("timestamp"):
        event.timestamp.FromDatetime(now)
        return
    happened = event.timestamp.ToDatetime(tzinfo=UTC)
    if happened > now + MAX_FUTURE:
        raise InvalidArgument("timestamp", "more than 24 hours in the future")
    if happened < EARLIEST:
        raise InvalidArgument("timestamp", "before 2000-01-01")
