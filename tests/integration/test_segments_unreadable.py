"""A rule whose SQL cannot run on some stored value fails that evaluation with a clear
FAILED_PRECONDITION naming the rule's field, never INTERNAL, and without the value: PreviewSegment,
CreateSegment and UpdateSegment, over real gRPC to the segments service process. PostgreSQL
refuses to read an old event's properties holding a `\\u0000` escape as jsonb; SQLite reads
them, so there the same calls simply answer.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engage import subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, segment_pb2, segment_pb2_grpc
from engage_cli.rules_yaml import from_yaml
from tests.harness import MARKETER_KEY, Suite, auth, eventually

PARENT = "workspaces/acme"
MARKETER = auth(MARKETER_KEY)
NOTED = "{event: noted, where: [{property: note, equals: hello}]}"
NOTE = "call me at jane.roe@example.com\x00"


@dataclass
class Service:
    segments: segment_pb2_grpc.SegmentServiceStub
    backend: str


@pytest.fixture
async def service(bare_suite: Suite) -> AsyncIterator[Service]:
    await asyncio.to_thread(bare_suite.start, "segments")
    bus = await Bus.open(bare_suite.nats.url, "test")
    channel = bare_suite.channel("segments")
    stub = segment_pb2_grpc.SegmentServiceStub(channel)
    try:
        noted = common_pb2.Event(
            message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_TRACK, user_id="u0"
        )
        noted.event = "noted"
        noted.timestamp.FromDatetime(datetime.now(UTC))
        noted.properties.update({"note": NOTE})
        batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace="acme", events=[noted])
        await bus.publish(subjects.events("acme", "u0", 8), batch, f"acme:{batch.id}", "acme")
        # Stored: a rule on the event alone (no property read) counts it.
        await eventually(lambda: _count(stub, "{event: noted}"))
        yield Service(stub, bare_suite.databases.backend)
    finally:
        await channel.close()
        await bus.close()


async def _count(stub: segment_pb2_grpc.SegmentServiceStub, rule: str) -> int:
    request = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=from_yaml(rule))
    answer = await stub.PreviewSegment(request, metadata=MARKETER)
    return int(answer.member_count)


def create(segment_id: str, rule: str) -> segment_pb2.CreateSegmentRequest:
    return segment_pb2.CreateSegmentRequest(
        parent=PARENT, segment_id=segment_id, segment=segment_pb2.Segment(rule=from_yaml(rule))
    )


async def refused(call: Any, field: str) -> None:
    """The call fails FAILED_PRECONDITION on `field`, without the stored value."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "cannot be evaluated" in (error.details() or "")
    assert "jane.roe" not in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            fields.append(info.metadata["field"])
    assert fields == [field]


async def test_preview_of_a_rule_that_cannot_read_a_stored_value(service: Service) -> None:
    request = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=from_yaml(NOTED))
    if service.backend == "sqlite":
        assert (await service.segments.PreviewSegment(request, metadata=MARKETER)).member_count == 0
        return
    await refused(service.segments.PreviewSegment(request, metadata=MARKETER), "rule")


async def test_create_and_update_to_a_rule_that_cannot_read_a_stored_value(
    service: Service,
) -> None:
    stub = service.segments
    if service.backend == "sqlite":
        assert (await stub.CreateSegment(create("noted", NOTED), metadata=MARKETER)).version == 1
        return
    await refused(stub.CreateSegment(create("noted", NOTED), metadata=MARKETER), "segment.rule")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        name = f"{PARENT}/segments/noted"
        await stub.GetSegment(segment_pb2.GetSegmentRequest(name=name), metadata=MARKETER)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    made = await stub.CreateSegment(create("any-note", "{event: noted}"), metadata=MARKETER)
    assert made.member_count == 1
    update = segment_pb2.UpdateSegmentRequest(
        segment=segment_pb2.Segment(name=made.name, rule=from_yaml(NOTED)),
        update_mask=field_mask_pb2.FieldMask(paths=["rule"]),
    )
    await refused(stub.UpdateSegment(update, metadata=MARKETER), "segment.rule")
    kept = await stub.GetSegment(segment_pb2.GetSegmentRequest(name=made.name), metadata=MARKETER)
    assert (kept.version, kept.member_count) == (1, 1)
