"""SegmentService over real gRPC, with the segments service as its own process on a real
nats-server and database (SQLite, and PostgreSQL when configured): CRUD and its errors,
preview, streaming members, and batch re-evaluation on update, with its announcements.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from engage import subjects
from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import bus_pb2, common_pb2, segment_pb2, segment_pb2_grpc
from tests.grpc_errors import violated_fields
from tests.harness import MARKETER_KEY, SUPPORT_KEY, MembershipFeed, Suite, auth, eventually
from tests.rules import from_yaml

WORKSPACE = "acme"
PARENT = f"workspaces/{WORKSPACE}"
MARKETER = auth(MARKETER_KEY)
Change = bus_pb2.MembershipChanged
Stub = segment_pb2_grpc.SegmentServiceStub


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    await asyncio.to_thread(bare_suite.start, "segments")
    connection = await Bus.open(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


@pytest.fixture
async def segments(bare_suite: Suite, bus: Bus) -> AsyncIterator[Stub]:
    channel = bare_suite.channel("segments")
    yield Stub(channel)
    await channel.close()


def rule(text: str) -> segment_pb2.Rule:
    return to_proto(from_yaml(text))


def create(
    segment_id: str, rule_yaml: str, display_name: str = ""
) -> segment_pb2.CreateSegmentRequest:
    return segment_pb2.CreateSegmentRequest(
        parent=PARENT,
        segment_id=segment_id,
        segment=segment_pb2.Segment(rule=rule(rule_yaml), display_name=display_name),
    )


async def identify(bus: Bus, people: dict[str, dict[str, Any]]) -> None:
    """One EventBatch with an identify per user id."""
    now = datetime.now(UTC)
    events = []
    for user_id, traits in people.items():
        made = common_pb2.Event(
            message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
        )
        made.timestamp.FromDatetime(now)
        made.traits.update(traits)
        events.append(made)
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=events)
    subject = subjects.events(WORKSPACE, events[0].user_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)


async def count_of(segments: Stub, rule_yaml: str) -> int:
    request = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=rule(rule_yaml))
    answer: segment_pb2.PreviewSegmentResponse = await segments.PreviewSegment(
        request, metadata=MARKETER
    )
    return answer.member_count


async def profiles_ready(segments: Stub, rule_yaml: str, expected: int) -> None:
    async def counted() -> bool:
        return await count_of(segments, rule_yaml) == expected

    await eventually(counted)


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_create_get_list_update_delete(segments: Stub) -> None:
    made = await segments.CreateSegment(
        create("pill-users", "{trait: drug_type, equals: pill}", display_name="Pill users"),
        metadata=MARKETER,
    )
    assert (made.name, made.version, made.member_count) == (f"{PARENT}/segments/pill-users", 1, 0)
    for index in range(3):
        await segments.CreateSegment(
            create(f"s-{index}", "{trait: x, exists: true}"), metadata=MARKETER
        )
    got = await segments.GetSegment(
        segment_pb2.GetSegmentRequest(name=made.name), metadata=auth(SUPPORT_KEY)
    )
    assert got.display_name == "Pill users" and got.rule == made.rule
    names, token = [], ""
    while True:
        page = await segments.ListSegments(
            segment_pb2.ListSegmentsRequest(parent=PARENT, page_size=3, page_token=token),
            metadata=MARKETER,
        )
        names += [s.name.rsplit("/", 1)[1] for s in page.segments]
        token = page.next_page_token
        if not token:
            break
    assert names == ["pill-users", "s-0", "s-1", "s-2"]
    updated = await segments.UpdateSegment(
        segment_pb2.UpdateSegmentRequest(
            segment=segment_pb2.Segment(name=made.name, description="on pills"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=MARKETER,
    )
    assert (updated.version, updated.description, updated.display_name) == (
        2,
        "on pills",
        "Pill users",
    )
    await segments.DeleteSegment(
        segment_pb2.DeleteSegmentRequest(name=made.name), metadata=MARKETER
    )
    gone = await failure(
        segments.GetSegment(segment_pb2.GetSegmentRequest(name=made.name), metadata=MARKETER)
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_errors_name_the_field(segments: Stub) -> None:
    bad_id = await failure(
        segments.CreateSegment(create("Bad_Id", "{trait: a, exists: true}"), metadata=MARKETER)
    )
    assert violated_fields(bad_id) == ["segment_id"]
    bad_rule = create("ok", "{trait: a, exists: true}")
    bad_rule.segment.rule.trait.operator = segment_pb2.OPERATOR_UNSPECIFIED
    invalid = await failure(segments.CreateSegment(bad_rule, metadata=MARKETER))
    assert violated_fields(invalid) == ["segment.rule.trait.operator"]
    missing = await failure(
        segments.CreateSegment(
            create("refers", "all: [{trait: a, exists: true}, {in_segment: nowhere}]"),
            metadata=MARKETER,
        )
    )
    assert violated_fields(missing) == ["segment.rule"]
    await segments.CreateSegment(create("ok", "{trait: a, exists: true}"), metadata=MARKETER)
    again = await failure(
        segments.CreateSegment(create("ok", "{trait: b, exists: true}"), metadata=MARKETER)
    )
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    update = segment_pb2.UpdateSegmentRequest(
        segment=segment_pb2.Segment(name=f"{PARENT}/segments/ok"),
        update_mask=field_mask_pb2.FieldMask(paths=["version"]),
    )
    assert violated_fields(await failure(segments.UpdateSegment(update, metadata=MARKETER))) == [
        "update_mask"
    ]
    denied = await failure(
        segments.CreateSegment(
            create("mine", "{trait: a, exists: true}"), metadata=auth(SUPPORT_KEY)
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    await segments.CreateSegment(create("uses-ok", "{in_segment: ok}"), metadata=MARKETER)
    cycle = segment_pb2.UpdateSegmentRequest(
        segment=segment_pb2.Segment(
            name=f"{PARENT}/segments/ok", rule=rule("{in_segment: uses-ok}")
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["rule"]),
    )
    assert violated_fields(await failure(segments.UpdateSegment(cycle, metadata=MARKETER))) == [
        "segment.rule"
    ]
    referenced = await failure(
        segments.DeleteSegment(
            segment_pb2.DeleteSegmentRequest(name=f"{PARENT}/segments/ok"), metadata=MARKETER
        )
    )
    assert referenced.code() == grpc.StatusCode.FAILED_PRECONDITION
    check = segment_pb2.CheckMembershipRequest(segment=f"{PARENT}/segments/ok", profile="nope")
    assert violated_fields(await failure(segments.CheckMembership(check, metadata=MARKETER))) == [
        "profile"
    ]


async def test_preview_counts_and_samples_without_saving(segments: Stub, bus: Bus) -> None:
    await identify(bus, {f"p{i}": {"plan": "pro" if i % 3 == 0 else "free"} for i in range(30)})
    await profiles_ready(segments, "{trait: plan, exists: true}", 30)
    answer = await segments.PreviewSegment(
        segment_pb2.PreviewSegmentRequest(
            parent=PARENT, rule=rule("{trait: plan, equals: pro}"), sample_size=4
        ),
        metadata=auth(SUPPORT_KEY),
    )
    assert answer.member_count == 10
    assert len(answer.sample_profiles) == 4
    assert all(name.startswith(f"{PARENT}/profiles/") for name in answer.sample_profiles)
    listed = await segments.ListSegments(
        segment_pb2.ListSegmentsRequest(parent=PARENT), metadata=MARKETER
    )
    assert not listed.segments
    negative = segment_pb2.PreviewSegmentRequest(
        parent=PARENT, rule=rule("{trait: a, exists: true}"), sample_size=-1
    )
    assert violated_fields(await failure(segments.PreviewSegment(negative, metadata=MARKETER))) == [
        "sample_size"
    ]


async def test_members_stream_in_chunks_and_update_reevaluates(segments: Stub, bus: Bus) -> None:
    await identify(bus, {f"m{i:04}": {"score": i} for i in range(1500)})
    await profiles_ready(segments, "{trait: score, exists: true}", 1500)
    feed = await MembershipFeed.watch(bus, WORKSPACE)
    made = await segments.CreateSegment(
        create("engaged", "{trait: score, greater_or_equal: 100}"), metadata=MARKETER
    )
    assert made.member_count == 1400
    await segments.CreateSegment(
        create("engaged-top", "all: [{in_segment: engaged}, {trait: score, less_than: 300}]"),
        metadata=MARKETER,
    )
    chunks = [
        chunk
        async for chunk in segments.ListSegmentMembers(
            segment_pb2.ListSegmentMembersRequest(segment=made.name), metadata=MARKETER
        )
    ]
    assert [len(chunk.profiles) for chunk in chunks] == [1000, 400]
    first = chunks[0].members[0]
    assert (first.profile, first.calendar_time_zone) == (chunks[0].profiles[0], "UTC")
    assert first.user_id.startswith("m")
    resumed = [
        chunk
        async for chunk in segments.ListSegmentMembers(
            segment_pb2.ListSegmentMembersRequest(
                segment=made.name, start_after=chunks[1].profiles[199]
            ),
            metadata=MARKETER,
        )
    ]
    assert [member.profile for member in resumed[0].members] == list(chunks[1].profiles[200:])

    updated = await segments.UpdateSegment(
        segment_pb2.UpdateSegmentRequest(
            segment=segment_pb2.Segment(
                name=made.name, rule=rule("{trait: score, greater_or_equal: 200}")
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["rule"]),
        ),
        metadata=MARKETER,
    )
    assert (updated.version, updated.member_count) == (2, 1300)
    changes = [await feed.next() for _ in range(1400 + 200 + 100 + 100)]
    tally = Counter((c.segment.rsplit("/", 1)[1], c.change, c.segment_version) for c in changes)
    assert tally == {
        ("engaged", Change.CHANGE_ENTERED, 1): 1400,
        ("engaged-top", Change.CHANGE_ENTERED, 1): 200,
        ("engaged", Change.CHANGE_EXITED, 2): 100,
        ("engaged-top", Change.CHANGE_EXITED, 1): 100,
    }
    assert len({c.id for c in changes}) == len(changes)
    top = await segments.GetSegment(
        segment_pb2.GetSegmentRequest(name=f"{PARENT}/segments/engaged-top"), metadata=MARKETER
    )
    assert top.member_count == 100
    exited = next(c for c in changes if c.change == Change.CHANGE_EXITED)
    check = await segments.CheckMembership(
        segment_pb2.CheckMembershipRequest(segment=exited.segment, profile=exited.profile),
        metadata=MARKETER,
    )
    assert not check.member
