"""One set of limits and checks on both of ingest's doors: the same batch sent over gRPC and
over Segment's HTTP API to the real ingest process gets the same verdict."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from engage.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc
from services.ingest.limits import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_REQUEST_BYTES
from services.ingest.validation import json_size
from tests.grpc_errors import violated_fields
from tests.harness import INGEST_KEY, Suite, auth, stored_events
from tests.integration.test_ingest_http import basic

TRACK = common_pb2.EventType.EVENT_TYPE_TRACK


@dataclass
class Doors:
    grpc: ingest_pb2_grpc.IngestServiceStub
    http: aiohttp.ClientSession
    base: str

    async def post(self, path: str, body: object) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.base + path, json=body, headers=basic(INGEST_KEY)) as got:
            return got.status, await got.json()


@pytest.fixture
async def doors(bare_suite: Suite) -> AsyncIterator[Doors]:
    bare_suite.start("ingest")
    async with bare_suite.channel("ingest") as channel, aiohttp.ClientSession() as session:
        address = bare_suite.processes["ingest"].http_address
        yield Doors(ingest_pb2_grpc.IngestServiceStub(channel), session, f"http://{address}")


def track(message_id: str, properties: dict[str, Any] | None = None) -> common_pb2.Event:
    event = common_pb2.Event(type=TRACK, message_id=message_id, user_id="u-1", event="e")
    if properties is not None:
        event.properties.update(properties)
    return event


def sized(message_id: str, json_bytes: int) -> common_pb2.Event:
    """A track event whose JSON form is exactly `json_bytes` long."""
    event = track(message_id, {"blob": ""})
    event.properties["blob"] = "x" * (json_bytes - json_size(event))
    return event


def as_call(event: common_pb2.Event) -> dict[str, Any]:
    """The same event as a Segment batch item."""
    call: dict[str, Any] = {"type": "track", "messageId": event.message_id, "userId": "u-1"}
    call["event"] = event.event
    if event.properties.fields:
        call["properties"] = json_format.MessageToDict(event.properties)
    return call


Verdict = tuple[str, int, list[tuple[int, str]]]


async def grpc_verdict(doors: Doors, events: list[common_pb2.Event]) -> Verdict:
    try:
        answer = await doors.grpc.Batch(
            ingest_pb2.BatchRequest(events=events), metadata=auth(INGEST_KEY)
        )
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return "refused whole", 0, []
    refused = [(e.index, e.field.removeprefix(f"events[{e.index}]")) for e in answer.errors]
    return "answered", answer.accepted_count, refused


async def http_verdict(doors: Doors, events: list[common_pb2.Event]) -> Verdict:
    status, answer = await doors.post("/v1/batch", {"batch": [as_call(e) for e in events]})
    if status == 400:
        return "refused whole", 0, []
    assert status == 200
    errors = answer.get("errors", [])
    refused = [(e["index"], e["field"].removeprefix(f"batch[{e['index']}]")) for e in errors]
    return "answered", len(events) - len(errors), refused


def batch_of(door: str, case: str) -> list[common_pb2.Event]:
    """The case's batch, with message ids of the same length on both doors."""
    if case == "2,500 events":
        return [track(f"{door}-{i:05}") for i in range(MAX_BATCH_EVENTS)]
    if case == "2,501 events":
        return [track(f"{door}-{i:05}") for i in range(MAX_BATCH_EVENTS + 1)]
    if case == "an event at 32 KB and one a byte over":
        return [sized(f"{door}-0", MAX_EVENT_BYTES), sized(f"{door}-1", MAX_EVENT_BYTES + 1)]
    assert case == "over 500 KB"
    return [sized(f"{door}-{i:02}", 30 * 1024) for i in range(MAX_REQUEST_BYTES // 30 // 1024 + 1)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("2,500 events", ("answered", MAX_BATCH_EVENTS, [])),
        ("2,501 events", ("refused whole", 0, [])),
        ("an event at 32 KB and one a byte over", ("answered", 1, [(1, "")])),
        ("over 500 KB", ("refused whole", 0, [])),
    ],
)
async def test_the_same_batch_gets_the_same_verdict_over_grpc_and_http(
    doors: Doors, bare_suite: Suite, case: str, expected: Verdict
) -> None:
    over_grpc = await grpc_verdict(doors, batch_of("g", case))
    over_http = await http_verdict(doors, batch_of("h", case))

    assert over_grpc == over_http == expected
    stored = [e.message_id for e in await stored_events(bare_suite)]
    assert len([i for i in stored if i.startswith("g-")]) == expected[1]
    assert len([i for i in stored if i.startswith("h-")]) == expected[1]


async def test_nul_in_a_batched_event_refuses_that_event_only_naming_its_field(
    doors: Doors, bare_suite: Suite
) -> None:
    def batch(door: str) -> list[common_pb2.Event]:
        return [
            track(f"{door}-0", {"note": "fine"}),
            track(f"{door}-1"),
            track(f"{door}-2", {"note": "bad\x00byte"}),
            track(f"{door}-3", {"cart": [{"sku": "s-1"}]}),
        ]

    over_grpc = await doors.grpc.Batch(
        ingest_pb2.BatchRequest(events=batch("g")), metadata=auth(INGEST_KEY)
    )
    status, over_http = await doors.post("/v1/batch", {"batch": [as_call(e) for e in batch("h")]})

    assert [(e.index, e.field) for e in over_grpc.errors] == [(2, "events[2].properties.note")]
    assert over_grpc.accepted_count == 3
    assert status == 200
    assert [(e["index"], e["field"]) for e in over_http["errors"]] == [
        (2, "batch[2].properties.note")
    ]
    stored = sorted(e.message_id for e in await stored_events(bare_suite))
    assert stored == ["g-0", "g-1", "g-3", "h-0", "h-1", "h-3"]
    assert all("\x00" not in json_format.MessageToJson(e) for e in await stored_events(bare_suite))


async def test_nul_in_a_single_call_is_refused_naming_the_field_on_both_doors(
    doors: Doors, bare_suite: Suite
) -> None:
    traits = Struct()
    traits.update({"address": {"city": "Ky\x00oto"}})
    with pytest.raises(grpc.aio.AioRpcError) as identify:
        await doors.grpc.Identify(
            ingest_pb2.IdentifyRequest(user_id="u-1", traits=traits), metadata=auth(INGEST_KEY)
        )
    with pytest.raises(grpc.aio.AioRpcError) as track_call:
        await doors.grpc.Track(
            ingest_pb2.TrackRequest(user_id="u-1", event="sign\x00up"), metadata=auth(INGEST_KEY)
        )
    http_identify = await doors.post(
        "/v1/identify", {"userId": "u-1", "traits": {"address": {"city": "Ky\x00oto"}}}
    )
    http_page = await doors.post("/v1/page", {"userId": "u-1", "name": "Ho\x00me"})

    assert identify.value.code() == track_call.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(identify.value) == ["traits.address.city"]
    assert violated_fields(track_call.value) == ["event"]
    assert (http_identify[0], http_identify[1]["error"]["field"]) == (400, "traits.address.city")
    assert (http_page[0], http_page[1]["error"]["field"]) == (400, "name")
    # The refusal names the field, never the text it held.
    assert "Kyoto" not in str(http_identify[1]) and "Ky" not in (identify.value.details() or "")
    assert await stored_events(bare_suite) == []


async def test_a_single_call_over_32_kb_is_refused_on_both_doors(
    doors: Doors, bare_suite: Suite
) -> None:
    event = sized("m-1", MAX_EVENT_BYTES + 1)
    with pytest.raises(grpc.aio.AioRpcError) as over_grpc:
        await doors.grpc.Track(
            ingest_pb2.TrackRequest(
                message_id="m-1", user_id="u-1", event="e", properties=event.properties
            ),
            metadata=auth(INGEST_KEY),
        )
    call = as_call(event)
    status, over_http = await doors.post("/v1/track", {k: call[k] for k in call if k != "type"})

    assert over_grpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(over_grpc.value) == ["request"]
    assert (status, over_http["error"]["field"]) == (400, "body")
    assert await stored_events(bare_suite) == []
