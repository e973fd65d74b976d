"""IngestService over real gRPC, storing into a real JetStream."""

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from engage.bus import Bus
from engage.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc
from services.ingest.limits import MAX_BATCH_EVENTS
from tests.grpc_errors import violated_fields
from tests.harness import INGEST_KEY, SUPPORT_KEY, Suite, auth, stored_events


@pytest.fixture
async def ingest(bare_suite: Suite) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    bare_suite.start("ingest")
    async with bare_suite.channel("ingest") as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)


async def test_track_is_stored_in_jetstream_before_the_answer(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    answer = await ingest.Track(
        ingest_pb2.TrackRequest(message_id="m-1", user_id="u-1", event="signed_up"),
        metadata=auth(INGEST_KEY),
    )

    assert answer.message_id == "m-1" and not answer.duplicate
    [event] = await stored_events(bare_suite)
    assert (event.event, event.user_id, event.type) == ("signed_up", "u-1", 1)
    assert event.received_at.seconds > 0 and event.timestamp.seconds > 0


async def test_repeated_message_id_is_reported_duplicate_and_stored_once(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    request = ingest_pb2.TrackRequest(message_id="m-dup", user_id="u-1", event="viewed")
    first = await ingest.Track(request, metadata=auth(INGEST_KEY))
    second = await ingest.Track(request, metadata=auth(INGEST_KEY))

    assert (first.duplicate, second.duplicate) == (False, True)
    assert len(await stored_events(bare_suite)) == 1


async def test_identify_and_alias_are_stored_with_their_own_fields(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    traits = Struct()
    traits.update({"plan": "pro"})
    identified = await ingest.Identify(
        ingest_pb2.IdentifyRequest(message_id="m-id", anonymous_id="a-1", traits=traits),
        metadata=auth(INGEST_KEY),
    )
    aliased = await ingest.Alias(
        ingest_pb2.AliasRequest(message_id="m-alias", user_id="u-1", previous_id="a-1"),
        metadata=auth(INGEST_KEY),
    )

    assert (identified.message_id, identified.duplicate) == ("m-id", False)
    assert (aliased.message_id, aliased.duplicate) == ("m-alias", False)
    assert identified.received_at.seconds > 0 and aliased.received_at.seconds > 0
    stored = {event.message_id: event for event in await stored_events(bare_suite)}
    identify, alias = stored["m-id"], stored["m-alias"]
    assert (identify.type, identify.anonymous_id, identify.traits) == (
        common_pb2.EventType.EVENT_TYPE_IDENTIFY,
        "a-1",
        traits,
    )
    assert (alias.type, alias.user_id, alias.previous_id) == (
        common_pb2.EventType.EVENT_TYPE_ALIAS,
        "u-1",
        "a-1",
    )


async def test_call_without_a_valid_key_is_unauthenticated(
    ingest: ingest_pb2_grpc.IngestServiceStub,
) -> None:
    request = ingest_pb2.TrackRequest(user_id="u-1", event="signed_up")
    for metadata in [(), auth("not-a-key")]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ingest.Track(request, metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_key_without_the_ingest_role_is_denied(
    ingest: ingest_pb2_grpc.IngestServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest.Track(
            ingest_pb2.TrackRequest(user_id="u-1", event="signed_up"), metadata=auth(SUPPORT_KEY)
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"event": "signed_up"}, "user_id"),
        ({"user_id": "u-1", "event": ""}, "event"),
        ({"user_id": "u-1", "event": "   "}, "event"),
        ({"user_id": "u-1", "event": "x" * 201}, "event"),
        (
            {"user_id": "u-1", "event": "e", "timestamp": Timestamp(seconds=4_102_444_800)},
            "timestamp",
        ),
    ],
)
async def test_malformed_track_is_invalid_argument_naming_the_field(
    ingest: ingest_pb2_grpc.IngestServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest.Track(ingest_pb2.TrackRequest(**request_fields), metadata=auth(INGEST_KEY))  # type: ignore[arg-type]

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(raised.value) == [field]
    assert field in (raised.value.details() or "")


async def test_batch_accepts_good_events_and_reports_bad_ones_by_index(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    track = common_pb2.EventType.EVENT_TYPE_TRACK
    events = [
        common_pb2.Event(message_id="b-1", type=track, user_id="u-1", event="viewed"),
        common_pb2.Event(message_id="b-2", type=track, event="viewed"),
        common_pb2.Event(message_id="b-3", type=track, anonymous_id="a-9", event="viewed"),
        common_pb2.Event(message_id="b-3", type=track, anonymous_id="a-9", event="viewed"),
        common_pb2.Event(message_id="b-4", type=track, user_id="u-2", event=""),
    ]
    answer = await ingest.Batch(ingest_pb2.BatchRequest(events=events), metadata=auth(INGEST_KEY))

    assert (answer.accepted_count, answer.duplicate_count) == (2, 1)
    assert [(e.index, e.field) for e in answer.errors] == [
        (1, "events[1].user_id"),
        (4, "events[4].event"),
    ]
    assert sorted(e.message_id for e in await stored_events(bare_suite)) == ["b-1", "b-3"]


async def test_batch_over_the_limit_is_refused_whole(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    event = common_pb2.Event(type=common_pb2.EventType.EVENT_TYPE_TRACK, user_id="u", event="e")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest.Batch(
            ingest_pb2.BatchRequest(events=[event] * (MAX_BATCH_EVENTS + 1)),
            metadata=auth(INGEST_KEY),
        )

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await stored_events(bare_suite) == []


async def test_stream_acknowledges_each_batch(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    track = common_pb2.EventType.EVENT_TYPE_TRACK

    async def batches() -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        for number in range(3):
            events = [
                common_pb2.Event(
                    message_id=f"s-{number}-{i}", type=track, user_id=f"u-{i}", event="e"
                )
                for i in range(10)
            ]
            yield ingest_pb2.StreamEventsRequest(batch_id=f"batch-{number}", events=events)

    answers = [a async for a in ingest.StreamEvents(batches(), metadata=auth(INGEST_KEY))]

    assert [(a.batch_id, a.accepted_count) for a in answers] == [
        ("batch-0", 10),
        ("batch-1", 10),
        ("batch-2", 10),
    ]
    assert len(await stored_events(bare_suite)) == 30


async def test_events_stream_remembers_message_ids_as_long_as_ingest_is_configured(
    bare_suite: Suite,
) -> None:
    bare_suite.env["ENGAGE_DEDUPE_WINDOW_HOURS"] = "48"
    bare_suite.start("ingest")
    # A consumer service declaring the streams later keeps the window ingest set.
    consumer = await Bus.open(bare_suite.nats.url, "test-consumer")
    try:
        info = await consumer.js.stream_info("EVENTS")
    finally:
        await consumer.close()

    assert info.config.duplicate_window == 48 * 3600


async def test_events_stream_remembers_message_ids_for_a_day_by_default(
    ingest: ingest_pb2_grpc.IngestServiceStub, bare_suite: Suite
) -> None:
    bus = await Bus.connect(bare_suite.nats.url, "test-reader")
    try:
        info = await bus.js.stream_info("EVENTS")
    finally:
        await bus.close()

    assert info.config.duplicate_window == 24 * 3600


async def test_stream_ends_with_the_error_of_a_batch_over_the_limit(
    ingest: ingest_pb2_grpc.IngestServiceStub,
) -> None:
    event = common_pb2.Event(type=common_pb2.EventType.EVENT_TYPE_TRACK, user_id="u", event="e")

    async def batches() -> AsyncIterator[ingest_pb2.StreamEventsRequest]:
        yield ingest_pb2.StreamEventsRequest(batch_id="ok", events=[event])
        yield ingest_pb2.StreamEventsRequest(
            batch_id="too-big", events=[event] * (MAX_BATCH_EVENTS + 1)
        )
        yield ingest_pb2.StreamEventsRequest(batch_id="after", events=[event])

    answers: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for answer in ingest.StreamEvents(batches(), metadata=auth(INGEST_KEY)):
            answers.append(answer.batch_id)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert answers == ["ok"]
