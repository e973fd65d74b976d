"""Ingest's Segment-compatible HTTP API, as an SDK would call it, storing into real JetStream."""

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from google.protobuf import json_format

from engage.bus import Bus
from engage.v1 import common_pb2
from tests.harness import INGEST_KEY, SUPPORT_KEY, Suite, stored_events

EventType = common_pb2.EventType


def basic(key: str) -> dict[str, str]:
    """Segment's Basic auth: the write key as user name, an empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


class Client:
    def __init__(self, session: aiohttp.ClientSession, address: str) -> None:
        self.session = session
        self.base = f"http://{address}"

    async def post(
        self, path: str, body: object, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else None
        json_body = None if isinstance(body, bytes) else body
        async with self.session.post(
            self.base + path,
            json=json_body,
            data=data,
            headers=basic(INGEST_KEY) if headers is None else headers,
        ) as response:
            return response.status, await response.json()


@pytest.fixture
async def http(bare_suite: Suite) -> AsyncIterator[Client]:
    bare_suite.start("ingest")
    async with aiohttp.ClientSession() as session:
        yield Client(session, bare_suite.processes["ingest"].http_address)


def as_dict(event: common_pb2.Event) -> dict[str, Any]:
    return json_format.MessageToDict(event)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/v1/track",
            {"userId": "u-1", "event": "Item Purchased", "properties": {"revenue": 14.99}},
            {
                "type": "EVENT_TYPE_TRACK",
                "event": "Item Purchased",
                "properties": {"revenue": 14.99},
            },
        ),
        (
            "/v1/identify",
            {"userId": "u-1", "traits": {"email": "p@example.com"}, "context": {"ip": "1.2.3.4"}},
            {
                "type": "EVENT_TYPE_IDENTIFY",
                "traits": {"email": "p@example.com"},
                "context": {"ip": "1.2.3.4"},
            },
        ),
        (
            "/v1/alias",
            {"userId": "u-1", "previousId": "anon-7"},
            {"type": "EVENT_TYPE_ALIAS", "previousId": "anon-7"},
        ),
        (
            "/v1/page",
            {"userId": "u-1", "name": "Pricing", "properties": {"path": "/pricing"}},
            {"type": "EVENT_TYPE_PAGE", "event": "Pricing", "properties": {"path": "/pricing"}},
        ),
        (
            "/v1/screen",
            {"userId": "u-1", "name": "Home"},
            {"type": "EVENT_TYPE_SCREEN", "event": "Home"},
        ),
        (
            "/v1/group",
            {"userId": "u-1", "groupId": "g-9", "traits": {"name": "Initech"}},
            {
                "type": "EVENT_TYPE_GROUP",
                "properties": {"groupId": "g-9"},
                "traits": {"name": "Initech"},
            },
        ),
    ],
)
async def test_each_call_stores_its_event(
    http: Client, bare_suite: Suite, path: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    status, answer = await http.post(path, {**body, "messageId": "m-1"})

    assert (status, answer) == (200, {"success": True})
    [event] = await stored_events(bare_suite)
    stored = as_dict(event)
    assert {key: stored.get(key) for key in expected} == expected
    assert (stored["messageId"], stored["userId"]) == ("m-1", "u-1")


async def test_timestamp_is_corrected_by_the_sending_devices_clock_skew(
    http: Client, bare_suite: Suite
) -> None:
    # The device's clock runs an hour ahead: it says it sent at 13:00 what happened at 12:30.
    status, _ = await http.post(
        "/v1/track",
        {
            "userId": "u-1",
            "event": "e",
            "timestamp": "2026-01-01T12:30:00Z",
            "sentAt": "2026-01-01T13:00:00Z",
        },
    )

    assert status == 200
    [event] = await stored_events(bare_suite)
    skew = event.received_at.ToDatetime(tzinfo=UTC) - event.timestamp.ToDatetime(tzinfo=UTC)
    assert abs(skew.total_seconds() - 1800) < 1


async def test_batch_stores_each_call_with_the_batch_context(
    http: Client, bare_suite: Suite
) -> None:
    body = {
        "batch": [
            {"type": "identify", "messageId": "b-1", "userId": "u-1", "traits": {"age": 26}},
            {"type": "track", "messageId": "b-2", "userId": "u-1", "event": "Song Played"},
            {"type": "page", "messageId": "b-3", "anonymousId": "a-1", "context": {"ip": "x"}},
        ],
        "context": {"device": {"type": "phone"}, "ip": "batch"},
        "sentAt": datetime.now(UTC).isoformat(),
    }
    status, answer = await http.post("/v1/batch", body)

    assert (status, answer) == (200, {"success": True})
    stored = {e.message_id: as_dict(e) for e in await stored_events(bare_suite)}
    assert sorted(stored) == ["b-1", "b-2", "b-3"]
    assert stored["b-1"]["context"] == {"device": {"type": "phone"}, "ip": "batch"}
    assert stored["b-3"]["context"] == {"device": {"type": "phone"}, "ip": "x"}
    assert stored["b-2"]["type"] == "EVENT_TYPE_TRACK"


async def test_import_and_analytics_js_short_paths_are_batch_and_calls(
    http: Client, bare_suite: Suite
) -> None:
    call = {"type": "track", "userId": "u-1", "event": "e"}
    for path, body in [
        ("/v1/import", {"batch": [{**call, "messageId": "i-1"}]}),
        ("/v1/b", {"batch": [{**call, "messageId": "i-2"}]}),
        ("/v1/t", {**call, "messageId": "i-3"}),
        ("/v1/p", {"userId": "u-1", "messageId": "i-4"}),
    ]:
        assert (await http.post(path, body))[0] == 200, path

    stored = await stored_events(bare_suite)
    assert [e.message_id for e in stored] == ["i-1", "i-2", "i-3", "i-4"]
    assert stored[3].type == EventType.EVENT_TYPE_PAGE


async def test_write_key_in_the_body_authenticates(http: Client, bare_suite: Suite) -> None:
    body = {"userId": "u-1", "event": "e", "writeKey": INGEST_KEY}
    status, answer = await http.post("/v1/track", body, headers={})

    assert (status, answer) == (200, {"success": True})
    assert len(await stored_events(bare_suite)) == 1


@pytest.mark.parametrize(
    ("headers", "body_key", "status"),
    [
        ({}, None, 401),
        (basic("not-a-key"), None, 401),
        ({}, "not-a-key", 401),
        ({"Authorization": "Basic !!!"}, None, 401),
        (basic(SUPPORT_KEY), None, 403),
        ({}, SUPPORT_KEY, 403),
    ],
)
async def test_missing_or_wrong_key_is_refused_and_nothing_stored(
    http: Client, bare_suite: Suite, headers: dict[str, str], body_key: str | None, status: int
) -> None:
    body: dict[str, Any] = {"userId": "u-1", "event": "e"}
    if body_key:
        body["writeKey"] = body_key
    got, answer = await http.post("/v1/track", body, headers=headers)

    assert got == status
    assert answer["success"] is False
    assert await stored_events(bare_suite) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/track", b"{not json", "body"),
        ("/v1/track", b"[1, 2]", "body"),
        ("/v1/track", {"event": "e"}, "userId"),
        ("/v1/track", {"userId": "u-1"}, "event"),
        ("/v1/track", {"userId": "u-1", "event": "e", "properties": [1]}, "properties"),
        ("/v1/track", {"userId": "u-1", "event": "e", "timestamp": "2015-2-02"}, "timestamp"),
        ("/v1/page", {"userId": "u-1", "name": "x" * 201}, "name"),
        ("/v1/group", {"userId": "u-1"}, "groupId"),
        ("/v1/alias", {"userId": "u-1"}, "previousId"),
        ("/v1/batch", {"batch": "nope"}, "batch"),
    ],
)
async def test_malformed_request_is_400_naming_the_field(
    http: Client, bare_suite: Suite, path: str, body: object, field: str
) -> None:
    status, answer = await http.post(path, body)

    assert status == 400
    assert answer["success"] is False
    assert answer["error"]["field"] == field
    assert answer["error"]["message"].startswith(field)
    assert await stored_events(bare_suite) == []


async def test_batch_stores_good_calls_and_lists_bad_ones_by_index_and_field(
    http: Client, bare_suite: Suite
) -> None:
    batch: list[object] = [
        {"type": "track", "messageId": "g-1", "userId": "u-1", "event": "viewed"},
        {"type": "track", "messageId": "g-2", "event": "viewed"},
        {"type": "launch", "messageId": "g-3", "userId": "u-1"},
        "not an object",
        {"type": "screen", "messageId": "g-5", "anonymousId": "a-1", "name": "Home"},
        {"type": "identify", "messageId": "g-6", "userId": "u-2", "traits": "tall"},
    ]
    status, answer = await http.post("/v1/batch", {"batch": batch})

    assert status == 200 and answer["success"] is True
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [
        (1, "batch[1].userId"),
        (2, "batch[2].type"),
        (3, "batch[3]"),
        (5, "batch[5].traits"),
    ]
    assert sorted(e.message_id for e in await stored_events(bare_suite)) == ["g-1", "g-5"]


async def test_requests_over_segments_size_limits_are_refused(
    http: Client, bare_suite: Suite
) -> None:
    big = {"blob": "x" * 33 * 1024}
    small = {"type": "track", "userId": "u-1", "event": "e"}
    too_many_bytes = [{**small, "properties": {"blob": "x" * 30 * 1024}}] * 17
    cases = [
        ("/v1/track", {"userId": "u-1", "event": "e", "properties": big}, "body"),
        ("/v1/batch", {"batch": too_many_bytes}, "body"),
        ("/v1/batch", {"batch": [small] * 2501}, "batch"),
    ]
    for path, body, field in cases:
        status, answer = await http.post(path, body)
        assert (status, answer["error"]["field"]) == (400, field), field

    assert await stored_events(bare_suite) == []


async def test_a_batched_call_over_32_kb_is_refused_alone(http: Client, bare_suite: Suite) -> None:
    small = {"type": "track", "userId": "u-1", "event": "e"}
    batch = [{**small, "messageId": "s-1"}, {**small, "properties": {"blob": "x" * 33 * 1024}}]
    status, answer = await http.post("/v1/batch", {"batch": batch})

    assert (status, [e["field"] for e in answer["errors"]]) == (200, ["batch[1]"])
    assert [e.message_id for e in await stored_events(bare_suite)] == ["s-1"]


async def test_repeated_message_id_is_success_flagged_duplicate_and_stored_once(
    http: Client, bare_suite: Suite
) -> None:
    body = {"messageId": "dup-1", "userId": "u-1", "event": "e"}
    first = await http.post("/v1/track", body)
    second = await http.post("/v1/track", body)

    assert first == (200, {"success": True})
    assert second == (200, {"success": True, "duplicate": True})
    assert len(await stored_events(bare_suite)) == 1


async def test_trace_context_of_the_request_travels_with_the_event(
    http: Client, bare_suite: Suite
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {**basic(INGEST_KEY), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    assert (await http.post("/v1/track", {"userId": "u", "event": "e"}, headers))[0] == 200

    bus = await Bus.connect(bare_suite.nats.url, "test-reader")
    try:
        message = await bus.js.get_msg("EVENTS", 1)
    finally:
        await bus.close()
    assert trace_id in (message.headers or {}).get("traceparent", "")
