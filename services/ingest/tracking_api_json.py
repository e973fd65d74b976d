"""Segment's HTTP Tracking API JSON → engage.v1 `Event` (pure: no I/O).

The mapping, per call (the route names it; a batch item names it in `type`):

| Segment call | Event.type          | call-specific fields                                       |
|--------------|---------------------|------------------------------------------------------------|
| track        | EVENT_TYPE_TRACK    | event → event; properties → properties                     |
| identify     | EVENT_TYPE_IDENTIFY | traits → traits                                            |
| alias        | EVENT_TYPE_ALIAS    | previousId → previous_id                                   |
| page         | EVENT_TYPE_PAGE     | name → event; properties → properties                      |
| screen       | EVENT_TYPE_SCREEN   | name → event; properties → properties                      |
| group        | EVENT_TYPE_GROUP    | groupId → properties.groupId; traits (the group's) → traits |

Common to every call: messageId → message_id, userId → user_id, anonymousId → anonymous_id,
context → context (a batch's `context` is merged under each item's own), timestamp (ISO-8601;
without a zone, UTC) → timestamp. When `sentAt` is given too (on the item, or on the batch for
all its items) the timestamp is corrected for the device's clock skew as Segment does:
receivedAt - (sentAt - timestamp). Numeric ids (some server SDKs send them) become strings.
`integrations`, `writeKey` and any other field are accepted and ignored: Engage has no
destinations to select.

A group event's `traits` describe the group, not the user: the `Event` has no group field, so
the group id travels in `properties.groupId`, and consumers must never merge a group event's
traits into the user's profile (segments merges traits from identify events only).

Errors name the JSON field (`userId`, `name`), never the proto one; `json_field` translates the
fields that `validation.check_and_stamp` names. The limits (per request, batch and event) are
the same as over gRPC: see `limits`.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct

from engage.errors import InvalidArgument
from engage.v1 import common_pb2
from services.ingest import limits

EventType = common_pb2.EventType
CALLS: Mapping[str, common_pb2.EventType] = {
    "track": EventType.EVENT_TYPE_TRACK,
    "identify": EventType.EVENT_TYPE_IDENTIFY,
    "alias": EventType.EVENT_TYPE_ALIAS,
    "page": EventType.EVENT_TYPE_PAGE,
    "screen": EventType.EVENT_TYPE_SCREEN,
    "group": EventType.EVENT_TYPE_GROUP,
}
_NAMED_BY_NAME = (EventType.EVENT_TYPE_PAGE, EventType.EVENT_TYPE_SCREEN)
# A lone `\ud800` escape in JSON decodes to Python text that no UTF-8 can hold.
_NOT_UNICODE = "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
_JSON_NAMES = {
    "message_id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "previous_id": "previousId",
}


def to_event(
    call: str,
    body: Mapping[str, Any],
    received_at: datetime,
    batch_context: Mapping[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
) -> common_pb2.Event:
    """The Event of one Segment call; raises InvalidArgument naming the JSON field."""
    event_type = CALLS[call]
    event = common_pb2.Event(
        type=event_type,
        message_id=_text(body, "messageId"),
        user_id=_text(body, "userId"),
        anonymous_id=_text(body, "anonymousId"),
    )
    if event_type == EventType.EVENT_TYPE_TRACK:
        event.event = _text(body, "event")
    elif event_type in _NAMED_BY_NAME:
        event.event = _text(body, "name")
    elif event_type == EventType.EVENT_TYPE_ALIAS:
        event.previous_id = _text(body, "previousId")
    if event_type in (EventType.EVENT_TYPE_TRACK, *_NAMED_BY_NAME):
        _fill(event.properties, "properties", _object(body, "properties"))
    if event_type in (EventType.EVENT_TYPE_IDENTIFY, EventType.EVENT_TYPE_GROUP):
        _fill(event.traits, "traits", _object(body, "traits"))
    if event_type == EventType.EVENT_TYPE_GROUP:
        event.properties.update({"groupId": _group_id(body)})
    context = _object(body, "context")
    if batch_context:
        context = {**batch_context, **(context or {})}
    _fill(event.context, "context", context)
    happened = _timestamp(body, "timestamp")
    if happened is not None:
        sent_at = _timestamp(body, "sentAt") or batch_sent_at
        try:
            corrected = received_at - (sent_at - happened) if sent_at else happened
            event.timestamp.FromDatetime(corrected)
        except (OverflowError, ValueError):
            raise InvalidArgument("timestamp", "out of range") from None
    return event


def batch_events(
    body: Mapping[str, Any], received_at: datetime
) -> list[common_pb2.Event | InvalidArgument]:
    """The events of a `/v1/batch` body, each bad item in its place as the error saying why.

    Raises for what fails the whole request: InvalidArgument without a `batch` array,
    ResourceExhausted for more than 2,500 items.
    """
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidArgument("batch", "required: an array of calls")
    limits.check_batch_events(len(items), "batch")
    context = _object(body, "context")
    sent_at = _timestamp(body, "sentAt")
    events: list[common_pb2.Event | InvalidArgument] = []
    for index, item in enumerate(items):
        try:
            events.append(_batch_item(index, item, received_at, context, sent_at))
        except InvalidArgument as error:
            events.append(error)
    return events


def json_field(field: str, event_type: common_pb2.EventType) -> str:
    """The JSON name of an event field that validation names (`user_id` → `userId`); paths
    into properties, traits and context (`properties.note`) are the same in both."""
    if field == "event" and event_type in _NAMED_BY_NAME:
        return "name"
    if field == "properties.groupId" and event_type == EventType.EVENT_TYPE_GROUP:
        return "groupId"
    return _JSON_NAMES.get(field, field)


def _batch_item(
    index: int,
    item: object,
    received_at: datetime,
    context: Mapping[str, Any] | None,
    sent_at: datetime | None,
) -> common_pb2.Event:
    if not isinstance(item, dict):
        raise InvalidArgument("", "must be a JSON object")
    call = item.get("type")
    if not isinstance(call, str) or call not in CALLS:
        raise InvalidArgument("type", f"must be one of {', '.join(CALLS)}")
    return to_event(call, item, received_at, context, sent_at)


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        if not value.isascii():
            _check_unicode(key, value)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidArgument(key, "must be a string")


def _group_id(body: Mapping[str, Any]) -> str:
    group_id = _text(body, "groupId")
    if not group_id:
        raise InvalidArgument("groupId", "required for group")
    if len(group_id) > limits.MAX_ID_LENGTH:
        raise InvalidArgument("groupId", f"at most {limits.MAX_ID_LENGTH} characters")
    return group_id


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise InvalidArgument(key, "must be a JSON object")


def _fill(struct: Struct, key: str, value: dict[str, Any] | None) -> None:
    if not value:
        return
    try:
        struct.update(value)
    except UnicodeEncodeError:
        raise InvalidArgument(key, _NOT_UNICODE) from None
    except RecursionError:
        raise InvalidArgument(key, f"nested more than {limits.MAX_NESTING} levels") from None
    except (ValueError, TypeError, OverflowError):
        # Only integers too large for a double get here: JSON gives nothing else odd.
        raise InvalidArgument(key, "holds a number too large to store") from None


def _check_unicode(key: str, value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(key, _NOT_UNICODE) from None


def _timestamp(body: Mapping[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(key, "must be an ISO-8601 date string") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
