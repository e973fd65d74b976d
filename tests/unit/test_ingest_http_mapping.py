"""Segment HTTP Tracking API JSON → engage.v1 Event: the mapping and its errors."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import json_format

from engage.errors import InvalidArgument, ResourceExhausted
from engage.v1 import common_pb2
from services.ingest.limits import MAX_BATCH_EVENTS
from services.ingest.tracking_api_json import batch_events, json_field, to_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EventType = common_pb2.EventType


def mapped(call: str, body: dict[str, Any]) -> dict[str, Any]:
    return json_format.MessageToDict(to_event(call, body, NOW))


def test_track_keeps_segments_fields_under_their_proto_names() -> None:
    body = {
        "messageId": "m-1",
        "userId": "u-1",
        "anonymousId": "a-1",
        "event": "Item Purchased",
        "properties": {"revenue": 14.99, "tags": ["a", None], "nested": {"ok": True}},
        "context": {"ip": "24.5.68.47"},
        "integrations": {"All": False},
        "writeKey": "ignored",
    }

    assert mapped("track", body) == {
        "messageId": "m-1",
        "type": "EVENT_TYPE_TRACK",
        "userId": "u-1",
        "anonymousId": "a-1",
        "event": "Item Purchased",
        "properties": {"revenue": 14.99, "tags": ["a", None], "nested": {"ok": True}},
        "context": {"ip": "24.5.68.47"},
    }


@pytest.mark.parametrize(
    ("call", "body", "expected"),
    [
        ("identify", {"userId": "u", "traits": {"a": 1}}, {"traits": {"a": 1.0}}),
        ("alias", {"userId": "u", "previousId": "p"}, {"previousId": "p"}),
        ("page", {"userId": "u", "name": "Home", "properties": {"p": 1}}, {"event": "Home"}),
        ("screen", {"userId": "u", "name": "Cart"}, {"event": "Cart"}),
        (
            "group",
            {"userId": "u", "groupId": "g", "traits": {"n": "x"}},
            {"properties": {"groupId": "g"}, "traits": {"n": "x"}},
        ),
    ],
)
def test_each_call_maps_to_its_event_type(
    call: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    event = mapped(call, body)

    assert event["type"] == f"EVENT_TYPE_{call.upper()}"
    assert {key: event.get(key) for key in expected} == expected


def test_numeric_ids_become_strings() -> None:
    assert mapped("identify", {"userId": 42})["userId"] == "42"


def test_timestamp_without_sent_at_is_kept_and_without_zone_is_utc() -> None:
    event = to_event("track", {"userId": "u", "event": "e", "timestamp": "2026-11-01T08:00"}, NOW)

    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, 8, tzinfo=UTC)


def test_sent_at_corrects_the_devices_clock_skew() -> None:
    # The device's clock is two hours slow: its 10:00 sentAt is the server's 12:00.
    body = {"timestamp": "2026-11-22T09:55:00Z", "sentAt": "2026-11-22T10:00:00Z"}
    event = to_event("track", {"userId": "u", "event": "e", **body}, NOW)

    assert event.timestamp.ToDatetime(tzinfo=UTC) == NOW - timedelta(minutes=5)


def test_batch_context_and_sent_at_apply_to_every_item_under_its_own() -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "e", "context": {"ip": "item"}},
            {"type": "identify", "userId": "u", "timestamp": "2026-11-22T09:00:00Z"},
        ],
        "context": {"ip": "batch", "locale": "ja-JP"},
        "sentAt": "2026-11-22T10:00:00Z",
    }
    first, second = batch_events(body, NOW)

    assert isinstance(first, common_pb2.Event) and isinstance(second, common_pb2.Event)
    assert json_format.MessageToDict(first.context) == {"ip": "item", "locale": "ja-JP"}
    assert second.timestamp.ToDatetime(tzinfo=UTC) == NOW - timedelta(hours=1)


def test_bad_batch_items_stand_in_place_as_the_error_naming_the_field() -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "e"}, 7, {"type": "x"}]}
    good, not_object, bad_type = batch_events(body, NOW)

    assert isinstance(good, common_pb2.Event)
    assert isinstance(not_object, InvalidArgument) and not_object.field == ""
    assert isinstance(bad_type, InvalidArgument) and bad_type.field == "type"


def test_a_batch_of_more_than_2500_calls_is_refused_whole() -> None:
    item = {"type": "track", "userId": "u", "event": "e"}
    assert len(batch_events({"batch": [item] * MAX_BATCH_EVENTS}, NOW)) == MAX_BATCH_EVENTS

    with pytest.raises(ResourceExhausted) as raised:
        batch_events({"batch": [item] * (MAX_BATCH_EVENTS + 1)}, NOW)
    assert raised.value.field == "batch"


@pytest.mark.parametrize(
    ("call", "body", "field"),
    [
        ("track", {"userId": ["u"]}, "userId"),
        ("track", {"userId": "u", "event": 3.5}, "event"),
        ("track", {"userId": "u", "properties": "x"}, "properties"),
        ("identify", {"userId": "u", "context": []}, "context"),
        ("track", {"userId": "u", "timestamp": 1700000000}, "timestamp"),
        ("track", {"userId": "u", "timestamp": "2026-11-22", "sentAt": "soon"}, "sentAt"),
        ("group", {"userId": "u"}, "groupId"),
        ("identify", {"userId": "u", "traits": {"n": 10**400}}, "traits"),
        # `\ud800` in JSON decodes to a lone surrogate: not text, and no UTF-8 for it.
        ("track", {"userId": "u\ud800", "event": "e"}, "userId"),
        ("track", {"userId": "u", "event": "e", "properties": {"a": "\udfff"}}, "properties"),
        ("identify", {"userId": "u", "traits": {"\ud800": 1}}, "traits"),
    ],
)
def test_wrongly_typed_field_is_named(call: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        to_event(call, body, NOW)

    assert raised.value.field == field


def test_fields_named_by_validation_translate_to_json_names() -> None:
    assert json_field("user_id", EventType.EVENT_TYPE_TRACK) == "userId"
    assert json_field("previous_id", EventType.EVENT_TYPE_ALIAS) == "previousId"
    assert json_field("event", EventType.EVENT_TYPE_TRACK) == "event"
    assert json_field("event", EventType.EVENT_TYPE_PAGE) == "name"
    assert json_field("properties", EventType.EVENT_TYPE_TRACK) == "properties"
    assert json_field("properties.note", EventType.EVENT_TYPE_TRACK) == "properties.note"
    assert json_field("properties.groupId", EventType.EVENT_TYPE_GROUP) == "groupId"
