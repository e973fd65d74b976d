"""Ingest's checks and stamping of one event: the rules both doors (gRPC and HTTP) share."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from engage.errors import InvalidArgument
from engage.v1 import common_pb2
from services.ingest.limits import MAX_EVENT_BYTES
from services.ingest.validation import Stamp, check_and_stamp, json_size

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TRACK = common_pb2.EventType.EVENT_TYPE_TRACK


def track(**fields: object) -> common_pb2.Event:
    return common_pb2.Event(type=TRACK, **fields)  # type: ignore[arg-type]


def struct(value: dict[str, Any]) -> Struct:
    built = Struct()
    built.update(value)
    return built


def checked(event: common_pb2.Event) -> common_pb2.Event:
    check_and_stamp(event, Stamp(NOW))
    return event


def refused_field(event: common_pb2.Event) -> str:
    with pytest.raises(InvalidArgument) as raised:
        check_and_stamp(event, Stamp(NOW))
    return raised.value.field


def test_missing_timestamp_and_message_id_are_filled_in() -> None:
    event = checked(track(user_id="u", event="viewed"))

    assert event.timestamp.ToDatetime(tzinfo=UTC) == NOW
    assert event.received_at.ToDatetime(tzinfo=UTC) == NOW
    assert len(event.message_id) == 32


def test_late_event_keeps_its_own_timestamp() -> None:
    event = track(user_id="u", event="viewed")
    event.timestamp.FromDatetime(NOW - timedelta(days=30))

    assert checked(event).timestamp.ToDatetime(tzinfo=UTC) == NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("when", "accepted"),
    [
        (NOW + timedelta(hours=23), True),
        (NOW + timedelta(hours=25), False),
        (datetime(1999, 12, 31, tzinfo=UTC), False),
    ],
)
def test_timestamps_far_ahead_or_before_2000_are_rejected(when: datetime, accepted: bool) -> None:
    event = track(user_id="u", event="viewed")
    event.timestamp.FromDatetime(when)
    if accepted:
        checked(event)
    else:
        assert refused_field(event) == "timestamp"


def test_timestamp_with_nanos_out_of_range_is_rejected() -> None:
    event = track(user_id="u", event="viewed")
    event.timestamp.seconds = int(NOW.timestamp())
    event.timestamp.nanos = 1_000_000_000

    assert refused_field(event) == "timestamp"


def test_alias_needs_user_and_previous_id() -> None:
    alias = common_pb2.Event(type=common_pb2.EventType.EVENT_TYPE_ALIAS, user_id="u")

    assert refused_field(alias) == "previous_id"


def test_deeply_nested_properties_are_rejected() -> None:
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(9):
        nested = {"level": nested}

    assert refused_field(track(user_id="u", event="e", properties=struct(nested))) == "properties"


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_non_finite_numbers_are_rejected_naming_the_value(field: str) -> None:
    event = track(user_id="u", event="e")
    getattr(event, field).CopyFrom(struct({"price": {"amounts": [1.0, float("nan")]}}))

    assert refused_field(event) == f"{field}.price.amounts[1]"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"event": "sign\x00up"}, "event"),
        ({"user_id": "u\x00"}, "user_id"),
        ({"anonymous_id": "\x00", "user_id": ""}, "anonymous_id"),
        ({"message_id": "m\x00"}, "message_id"),
        ({"properties": struct({"note": "a\x00b"})}, "properties.note"),
        (
            {"properties": struct({"cart": {"items": [{"sku": "x"}, {"sku": "\x00"}]}})},
            "properties.cart.items[1].sku",
        ),
        ({"properties": struct({"first name": {"x": "\x00"}})}, 'properties["first name"].x'),
        ({"traits": struct({"plan": "pro", "bio\x00": "x"})}, "traits"),
        ({"traits": struct({"address": {"city\x00": "x"}})}, "traits.address"),
        ({"context": struct({"page": {"title": "\x00"}})}, "context.page.title"),
    ],
)
def test_text_holding_nul_is_refused_naming_the_field(fields: dict[str, Any], path: str) -> None:
    event = track(**{"user_id": "u", "event": "e", **fields})

    with pytest.raises(InvalidArgument, match="U\\+0000") as raised:
        check_and_stamp(event, Stamp(NOW))
    assert raised.value.field == path


def sized(json_bytes: int) -> common_pb2.Event:
    """A track event whose JSON form is exactly `json_bytes` long."""
    event = track(user_id="u", event="e", properties=struct({"blob": ""}))
    event.properties["blob"] = "x" * (json_bytes - json_size(event))
    assert json_size(event) == json_bytes
    return event


def test_an_event_at_32_kb_as_json_is_accepted_and_one_byte_more_refused() -> None:
    checked(sized(MAX_EVENT_BYTES))

    with pytest.raises(InvalidArgument, match="over 32768 bytes as JSON") as raised:
        check_and_stamp(sized(MAX_EVENT_BYTES + 1), Stamp(NOW))
    assert raised.value.field == ""


def test_the_json_form_is_measured_even_when_the_protobuf_form_is_small() -> None:
    # A control character is 1 byte in protobuf and 6 (`\u0001`) in JSON.
    event = track(user_id="u", event="e", properties=struct({"blob": "\x01" * 5600}))

    assert event.ByteSize() < MAX_EVENT_BYTES / 5 < MAX_EVENT_BYTES < json_size(event)
    assert refused_field(event) == ""


def test_size_counts_the_event_as_sent_not_the_stamps_ingest_adds() -> None:
    event = sized(MAX_EVENT_BYTES)  # without message id or timestamp

    assert json_size(checked(event)) > MAX_EVENT_BYTES  # with those ingest filled in


@pytest.mark.parametrize(("event_type", "problem"), [(0, "required"), (99, "not a known")])
def test_an_unspecified_or_unknown_event_type_is_refused(event_type: int, problem: str) -> None:
    event = common_pb2.Event(type=event_type, user_id="u", event="e")  # type: ignore[arg-type]

    with pytest.raises(InvalidArgument, match=problem) as raised:
        check_and_stamp(event, Stamp(NOW))
    assert raised.value.field == "type"
