"""Hostile bytes sent to the real ingest process, over gRPC and over Segment's HTTP API: each
gets a clear client-error status (never UNKNOWN, INTERNAL or a 500) and leaves no traceback in
ingest's log."""

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from engage.v1 import common_pb2, ingest_pb2
from tests.grpc_errors import violated_fields
from tests.harness import INGEST_KEY, Suite, auth, stored_events
from tests.integration.test_ingest_http import basic

BATCH = "/engage.v1.IngestService/Batch"
STREAM = "/engage.v1.IngestService/StreamEvents"
# Field 1 (BatchRequest.events), length 0xffffffff: more bytes than the message holds.
NOT_PROTOBUF = bytes.fromhex("0a ff ff ff ff 0f")
_EVENT_PROPERTIES = common_pb2.Event.DESCRIPTOR.fields_by_name["properties"].number


def _varint(number: int) -> bytes:
    out = b""
    while True:
        low, number = number & 0x7F, number >> 7
        if not number:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_past_the_recursion_limit(levels: int = 200) -> bytes:
    """A BatchRequest whose one event's properties nest `levels` Structs deep, as raw bytes
    (no protobuf library would build it: parsing stops at 100 levels)."""
    struct = b""
    for _ in range(levels):
        value = _field(5, struct)  # Value.struct_value
        struct = _field(1, _field(1, b"k") + _field(2, value))  # Struct.fields: {"k": value}
    return _field(1, _field(_EVENT_PROPERTIES, struct))


def assert_logged_as_refused(suite: Suite, message: str) -> None:
    """Ingest logged the request as refused (a client error), and no crash."""
    log = suite.log("ingest")
    assert "Traceback" not in log and "unhandled error" not in log, log[-2000:]
    refusals = [json.loads(line) for line in log.splitlines() if message in line]
    assert refusals and {line["level"] for line in refusals} == {"info"}, log[-2000:]


@pytest.fixture
async def channel(bare_suite: Suite) -> AsyncIterator[grpc.aio.Channel]:
    bare_suite.start("ingest")
    async with bare_suite.channel("ingest") as opened:
        yield opened


@pytest.mark.parametrize(
    "request_bytes", [NOT_PROTOBUF, nested_past_the_recursion_limit()], ids=["bad", "nested"]
)
async def test_batch_bytes_that_are_no_protobuf_message_are_invalid_argument(
    channel: grpc.aio.Channel, bare_suite: Suite, request_bytes: bytes
) -> None:
    batch = channel.unary_unary(
        BATCH,
        request_serializer=None,
        response_deserializer=ingest_pb2.BatchResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await batch(request_bytes, metadata=auth(INGEST_KEY))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(raised.value) == ["request"]
    assert await stored_events(bare_suite) == []
    assert_logged_as_refused(bare_suite, "call refused")


async def test_a_stream_ends_invalid_argument_at_its_first_undecodable_message(
    channel: grpc.aio.Channel, bare_suite: Suite
) -> None:
    event = common_pb2.Event(type=common_pb2.EventType.EVENT_TYPE_TRACK, user_id="u", event="e")
    good = ingest_pb2.StreamEventsRequest(batch_id="ok", events=[event]).SerializeToString()
    stream = channel.stream_stream(
        STREAM,
        request_serializer=None,
        response_deserializer=ingest_pb2.StreamEventsResponse.FromString,
    )

    async def requests() -> AsyncIterator[bytes]:
        yield good
        yield NOT_PROTOBUF
        yield good

    answers: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for answer in stream(requests(), metadata=auth(INGEST_KEY)):
            answers.append(answer.batch_id)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(raised.value) == ["request"]
    assert answers == ["ok"]
    assert len(await stored_events(bare_suite)) == 1
    assert_logged_as_refused(bare_suite, "call refused")


@pytest.fixture
async def http(bare_suite: Suite) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    bare_suite.start("ingest")
    # One connection: a bad body must not cost the caller its keep-alive connection either.
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        yield session, f"http://{bare_suite.processes['ingest'].http_address}"


TRACK = json.dumps({"messageId": "m-1", "userId": "u-1", "event": "e"}).encode()


@pytest.mark.parametrize(
    ("body", "headers", "field", "message"),
    [
        (TRACK, {"Content-Encoding": "gzip"}, "body", "not valid gzip"),
        (gzip.compress(TRACK)[:-12], {"Content-Encoding": "gzip"}, "body", "truncated"),
        (TRACK, {"Content-Encoding": "deflate"}, "body", "not valid deflate"),
        (TRACK, {"Content-Encoding": "br"}, "Content-Encoding", "unsupported"),
        (gzip.compress(b" " * 2_000_000), {"Content-Encoding": "gzip"}, "body", "512000 bytes"),
        (b'{"userId": "u-1", "event": "\xff"}', {}, "body", "not UTF-8"),
        (TRACK.decode().encode("utf-16"), {}, "body", "not UTF-8"),
        (b"{not json", {}, "body", "not valid JSON"),
        (b"[" * 100_000, {}, "body", "nested too deep"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {}, "body", "nested too deep"),
    ],
    ids=[
        "not-gzip",
        "truncated-gzip",
        "not-deflate",
        "unknown-coding",
        "gzip-bomb",
        "not-utf8",
        "utf16",
        "not-json",
        "deep-array",
        "deep-object",
    ],
)
async def test_a_body_that_is_not_what_it_says_is_400_with_a_json_error(
    http: tuple[aiohttp.ClientSession, str],
    bare_suite: Suite,
    body: bytes,
    headers: dict[str, str],
    field: str,
    message: str,
) -> None:
    session, base = http
    async with session.post(
        f"{base}/v1/track", data=body, headers={**basic(INGEST_KEY), **headers}
    ) as response:
        status, answer = response.status, await response.json()

    assert status == 400
    assert answer["success"] is False
    assert answer["error"]["field"] == field
    assert message in answer["error"]["message"]
    # The same connection still serves the next request.
    async with session.post(f"{base}/v1/track", data=TRACK, headers=basic(INGEST_KEY)) as good:
        assert good.status == 200
    assert len(await stored_events(bare_suite)) == 1
    assert_logged_as_refused(bare_suite, "request refused")


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_batch_is_stored(
    http: tuple[aiohttp.ClientSession, str], bare_suite: Suite, coding: str
) -> None:
    session, base = http
    calls = [
        {"type": "track", "messageId": f"z-{i}", "userId": "u", "event": "e"} for i in range(3)
    ]
    body = json.dumps({"batch": calls}).encode()
    compressed = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    async with session.post(
        f"{base}/v1/batch",
        data=compressed,
        headers={**basic(INGEST_KEY), "Content-Encoding": coding},
    ) as response:
        assert (response.status, await response.json()) == (200, {"success": True})

    assert sorted(e.message_id for e in await stored_events(bare_suite)) == ["z-0", "z-1", "z-2"]


async def test_a_write_key_that_is_no_text_is_401(
    http: tuple[aiohttp.ClientSession, str], bare_suite: Suite
) -> None:
    session, base = http
    body = b'{"writeKey": "\\ud800", "userId": "u-1", "event": "e"}'
    async with session.post(f"{base}/v1/track", data=body) as response:
        assert response.status == 401
        assert (await response.json())["success"] is False
    assert_logged_as_refused(bare_suite, "request refused")
