"""Event validation and stamping rules of ingest."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from engage.errors import InvalidArgument
from engage.v1 import common_pb2
from services.ingest.events import normalize

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TRACK = common_pb2.EventType.EVENT_TYPE_TRACK


def track(**fields: object) -> common_pb2.Event:
    return common_pb2.Event(type=TRACK, **fields)  # type: ignore[arg-type]


def test_missing_timestamp_and_message_id_are_filled_in() -> None:
    event = normalize(track(user_id="u", event="viewed"), NOW)

    assert event.timestamp.ToDatetime(tzinfo=UTC) == NOW
    assert event.received_at.ToDatetime(tzinfo=UTC) == NOW
    assert len(event.message_id) == 32


def test_late_event_keeps_its_own_timestamp() -> None:
    event = track(user_id="u", event="viewed")
    event.timestamp.FromDatetime(NOW - timedelta(days=30))

    assert normalize(event, NOW).timestamp.ToDatetime(tzinfo=UTC) == NOW - timedelta(days=30)


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
        normalize(event, NOW)
    else:
        with pytest.raises(InvalidArgument) as raised:
            normalize(event, NOW, "events[2].")
        assert raised.value.field == "events[2].timestamp"


def test_alias_needs_user_and_previous_id() -> None:
    alias = common_pb2.Event(type=common_pb2.EventType.EVENT_TYPE_ALIAS, user_id="u")
    with pytest.raises(InvalidArgument) as raised:
        normalize(alias, NOW)
    assert raised.value.field == "previous_id"


def test_deeply_nested_properties_are_rejected() -> None:
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(9):
        nested = {"level": nested}
    properties = Struct()
    properties.update(nested)

    with pytest.raises(InvalidArgument) as raised:
        normalize(track(user_id="u", event="e", properties=properties), NOW)
    assert raised.value.field == "properties"


def test_oversized_properties_are_rejected() -> None:
    properties = Struct()
    properties.update({"blob": "x" * 40_000})

    with pytest.raises(InvalidArgument, match="exceed"):
        normalize(track(user_id="u", event="e", properties=properties), NOW)


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_non_finite_numbers_are_rejected(field: str) -> None:
    payload = Struct()
    payload.update({"price": {"amounts": [1.0, float("nan")]}})
    event = track(user_id="u", event="e")
    getattr(event, field).CopyFrom(payload)

    with pytest.raises(InvalidArgument) as raised:
        normalize(event, NOW)
    assert raised.value.field == field
