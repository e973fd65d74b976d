"""Checking and stamping an incoming event (pure: no I/O), the same for every door.

Rules, per event (the figures are in `limits`):
- `user_id` or `anonymous_id` is required (alias: `user_id` and `previous_id`); ids are at most
  255 characters;
- track events need an `event` name of at most 200 characters (page and screen events may name
  the page or screen in `event`, with the same limit);
- `message_id` is optional: when empty, ingest assigns a random one (no dedupe is possible then);
- `timestamp` defaults to `received_at`; more than 24 hours ahead of ingest's clock, or before
  2000-01-01, is rejected rather than clamped, so a wrong clock shows instead of skewing reports;
- properties, traits and context nest at most 8 levels deep and hold finite numbers only;
- no text holds U+0000 (NUL), neither the name, the ids, nor any key or string value of
  properties, traits or context at any depth: PostgreSQL cannot store it in text or jsonb, so
  it is refused here, naming the field (`properties.items[2].note`), before it reaches the bus;
- the event's JSON form is at most 32 KB (see `limits`).

Each event takes effect once. Single events (Track, Identify, Alias, one HTTP call) are
grouped per partition with those arriving at the same time (`group_commit`); a message of one
event travels under that event's message id, and JetStream drops a repeat within the EVENTS
stream's dedupe window (`dedupe_window_hours`, at least 24 h), so the caller is told it was a
duplicate. A batch, or a group of single events, travels as one message per partition, deduped
as a whole (the same batch retried is stored once); a repeat of an event inside one message is
dropped there and counted (or answered) as a duplicate, and an event repeated across different
messages is dropped downstream, where each event id counts once (consumers apply events
idempotently by message id).
"""

import json
import math
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import ListValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from engage.errors import InvalidArgument
from engage.v1 import common_pb2
from services.ingest.limits import (
    EARLIEST,
    MAX_EVENT_BYTES,
    MAX_EVENT_NAME_LENGTH,
    MAX_FUTURE,
    MAX_ID_LENGTH,
    MAX_NESTING,
)

# Plain ints: reading the enum wrapper's attributes for every event costs more than the check.
_UNSPECIFIED = int(common_pb2.EventType.EVENT_TYPE_UNSPECIFIED)
_TRACK = int(common_pb2.EventType.EVENT_TYPE_TRACK)
_ALIAS = int(common_pb2.EventType.EVENT_TYPE_ALIAS)
_KNOWN_TYPES = frozenset(common_pb2.EventType.values()) - {_UNSPECIFIED}
_EARLIEST_SECONDS = int(EARLIEST.timestamp())
_MAX_FUTURE_SECONDS = int(MAX_FUTURE.total_seconds())
_IDS = ("message_id", "user_id", "anonymous_id", "previous_id")
_NUL = "\x00"
_HOLDS_NUL = "holds U+0000 (NUL), which cannot be stored"
# The JSON form of an event is at most this many times its protobuf size, plus the names of
# its fields: escaping a control character (`\u0001`) is the worst case, 6 bytes for 1.
_JSON_PER_PROTO_BYTE = 6
_JSON_FIELD_NAMES = 256
_MEASURE_ABOVE = (MAX_EVENT_BYTES - _JSON_FIELD_NAMES) // _JSON_PER_PROTO_BYTE
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


class Stamp:
    """The moment of acceptance, in the forms the checks need: worked out once per call, not
    once per event (a batch has up to 2,500 events and this is ingest's hot path).
    """

    def __init__(self, now: datetime) -> None:
        self.received_at = Timestamp()
        self.received_at.FromDatetime(now)
        self.latest = (self.received_at.seconds + _MAX_FUTURE_SECONDS, self.received_at.nanos)


def check_and_stamp(event: common_pb2.Event, stamp: Stamp) -> None:
    """Check `event` in place and fill in its message id, timestamp and `received_at`.

    Raises InvalidArgument naming the event's field (`user_id`, `properties.note`; "" for the
    event as a whole); the event is then half-stamped and must be dropped.
    """
    _check_ids(event)
    _check_name(event)
    _check_payload(event)
    _check_timestamp(event, stamp)
    _check_size(event)
    _stamp_times(event, stamp)
    if not event.message_id:
        event.message_id = uuid.uuid4().hex


def json_size(event: common_pb2.Event) -> int:
    """The UTF-8 size of the event's compact JSON form: what the 32 KB per event limit counts."""
    form = json_format.MessageToDict(event)
    return len(json.dumps(form, ensure_ascii=False, separators=(",", ":")).encode())


def _check_ids(event: common_pb2.Event) -> None:
    ids = (event.message_id, event.user_id, event.anonymous_id, event.previous_id)
    joined = "".join(ids)
    # One look at the four together for the common case; one by one only to name the field.
    if _NUL in joined or (len(joined) > MAX_ID_LENGTH and max(map(len, ids)) > MAX_ID_LENGTH):
        for field, value in zip(_IDS, ids, strict=True):
            if len(value) > MAX_ID_LENGTH:
                raise InvalidArgument(field, f"at most {MAX_ID_LENGTH} characters")
            if _NUL in value:
                raise InvalidArgument(field, _HOLDS_NUL)
    event_type = event.type
    if event_type == _ALIAS:
        if not event.user_id:
            raise InvalidArgument("user_id", "required for alias")
        if not event.previous_id:
            raise InvalidArgument("previous_id", "required for alias")
    elif not event.user_id and not event.anonymous_id:
        raise InvalidArgument("user_id", "user_id or anonymous_id is required")
    if event_type not in _KNOWN_TYPES:
        problem = "required" if event_type == _UNSPECIFIED else "not a known event type"
        raise InvalidArgument("type", problem)


def _check_name(event: common_pb2.Event) -> None:
    name = event.event
    if event.type == _TRACK and not name.strip():
        raise InvalidArgument("event", "required for track")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidArgument("event", f"at most {MAX_EVENT_NAME_LENGTH} characters")
    if _NUL in name:
        raise InvalidArgument("event", _HOLDS_NUL)


def _check_payload(event: common_pb2.Event) -> None:
    _check_struct("properties", event.properties)
    _check_struct("traits", event.traits)
    _check_struct("context", event.context)


def _check_size(event: common_pb2.Event) -> None:
    # Only an event whose protobuf size could put its JSON form over the limit is measured.
    if event.ByteSize() > _MEASURE_ABOVE and json_size(event) > MAX_EVENT_BYTES:
        raise InvalidArgument("", f"over {MAX_EVENT_BYTES} bytes as JSON")


class _Unstorable(Exception):
    """A value of a struct that no consumer could store; `path` grows as the walk unwinds."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
        self.path: list[str | int] = []


def _check_struct(field: str, struct: Struct) -> None:
    if not struct.fields:
        return
    try:
        depth = _depth(struct)
    except _Unstorable as error:
        raise InvalidArgument(_path(field, error.path), error.description) from None
    except RecursionError:
        # Only a struct built from JSON gets this deep: protobuf parsing stops at 100.
        depth = MAX_NESTING + 1
    if depth > MAX_NESTING:
        raise InvalidArgument(field, f"nested more than {MAX_NESTING} levels")


def _depth(node: Struct | ListValue) -> int:
    """How deep a struct or list nests (a flat one: 1); raises _Unstorable at a NaN or an
    infinity (JSON has neither: no consumer or client could read the event back) and at text
    holding NUL.

    Parsing bounds the recursion: protobuf refuses messages nested more than 100 deep.
    """
    container: Any
    steps: Iterable[str | int]
    if isinstance(node, Struct):
        container = steps = node.fields
        if _NUL in "".join(container):
            raise _Unstorable(f"a key {_HOLDS_NUL}")
    else:
        container = node.values
        steps = range(len(container))
    deepest = 0
    # One loop for both, values looked up by step: the fastest walk measured (hot path).
    for step in steps:
        value: Value = container[step]
        try:
            kind = value.WhichOneof("kind")
            if kind == "string_value":
                if _NUL in value.string_value:
                    raise _Unstorable(_HOLDS_NUL)
            elif kind == "struct_value":
                deepest = max(deepest, _depth(value.struct_value))
            elif kind == "list_value":
                deepest = max(deepest, _depth(value.list_value))
            elif kind == "number_value" and not math.isfinite(value.number_value):
                raise _Unstorable("numbers must be finite (no NaN or Infinity)")
        except _Unstorable as error:
            error.path.append(step)
            raise
    return 1 + deepest


def _path(field: str, steps: list[str | int]) -> str:
    """`properties` and the steps from the innermost out → `properties.items[2].note`."""
    path = field
    for step in reversed(steps):
        if isinstance(step, int):
            path += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step):
            path += f".{step}"
        else:
            path += f"[{json.dumps(step, ensure_ascii=False)}]"
    return path


def _check_timestamp(event: common_pb2.Event, stamp: Stamp) -> None:
    if not event.HasField("timestamp"):
        return
    happened = event.timestamp
    if not 0 <= happened.nanos < 1_000_000_000:
        raise InvalidArgument("timestamp", "nanos must be from 0 to 999,999,999")
    if (happened.seconds, happened.nanos) > stamp.latest:
        raise InvalidArgument("timestamp", "more than 24 hours in the future")
    if happened.seconds < _EARLIEST_SECONDS:
        raise InvalidArgument("timestamp", "before 2000-01-01")


def _stamp_times(event: common_pb2.Event, stamp: Stamp) -> None:
    event.received_at.CopyFrom(stamp.received_at)
    if not event.HasField("timestamp"):
        event.timestamp.CopyFrom(stamp.received_at)
