"""ListProfiles `filter` over gRPC: user id, email, typed traits, segment membership, AND."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from engage import subjects
from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import (
    bus_pb2,
    common_pb2,
    profile_pb2,
    profile_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from tests.grpc_errors import violated_fields
from tests.harness import MARKETER_KEY, OTHER_WORKSPACE_KEY, Suite, auth, eventually
from tests.rules import from_yaml

WORKSPACE = "acme"
PARENT = f"workspaces/{WORKSPACE}"
PEOPLE: dict[str, dict[str, Any]] = {
    "ann": {"email": "ann@example.com", "plan": "gold", "seats": 3, "trial": False},
    "bob": {"email": "bob@example.com", "plan": "gold", "seats": 5, "trial": True},
    "cid": {"email": "cid@example.com", "plan": "free", "seats": 3, "trial": True},
    # A text "3" is the number 3, as in segment rules; "03" is not (a zip code stays a text).
    "dee": {"email": "dee@example.com", "plan": "3", "seats": "3"},
    "eve": {"email": "eve@example.com", "plan": "03", "seats": "03"},
}


@pytest.fixture
async def running(bare_suite: Suite) -> AsyncIterator[grpc.aio.Channel]:
    await asyncio.to_thread(bare_suite.start, "segments")
    bus = await Bus.open(bare_suite.nats.url, "test")
    events = []
    for user_id, traits in PEOPLE.items():
        made = common_pb2.Event(
            message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
        )
        made.timestamp.FromDatetime(datetime.now(UTC))
        made.traits.update(traits)
        events.append(made)
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=events)
    await bus.publish(subjects.events(WORKSPACE, "ann", 8), batch, batch.id, WORKSPACE)
    channel = bare_suite.channel("segments")
    yield channel
    await channel.close()
    await bus.close()


async def users(profiles: profile_pb2_grpc.ProfileServiceStub, text: str) -> list[str]:
    found: list[str] = []
    token = ""
    while True:
        page = await profiles.ListProfiles(
            profile_pb2.ListProfilesRequest(
                parent=PARENT, filter=text, page_size=1, page_token=token
            ),
            metadata=auth(),
        )
        found += [profile.user_id for profile in page.profiles]
        token = page.next_page_token
        if not token:
            return sorted(found)


async def test_list_profiles_filters(running: grpc.aio.Channel) -> None:
    profiles = profile_pb2_grpc.ProfileServiceStub(running)
    await eventually(lambda: _equal(users(profiles, ""), ["ann", "bob", "cid", "dee", "eve"]))

    assert await users(profiles, 'user_id = "bob"') == ["bob"]
    assert await users(profiles, 'email = "cid@example.com"') == ["cid"]
    assert await users(profiles, 'traits.plan = "gold"') == ["ann", "bob"]
    assert await users(profiles, "traits.seats = 3") == ["ann", "cid", "dee"]
    assert await users(profiles, 'traits.seats = "3"') == ["ann", "cid", "dee"]
    assert await users(profiles, 'traits.plan = "03"') == ["eve"]
    assert await users(profiles, "traits.trial = true") == ["bob", "cid"]
    assert await users(profiles, 'traits.plan = "gold" AND traits.trial = false') == ["ann"]
    assert await users(profiles, 'traits.plan = "platinum"') == []
    other = await profiles.ListProfiles(
        profile_pb2.ListProfilesRequest(parent="workspaces/globex", filter='user_id = "ann"'),
        metadata=auth(OTHER_WORKSPACE_KEY),
    )
    assert list(other.profiles) == []

    segments = segment_pb2_grpc.SegmentServiceStub(running)
    await segments.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=PARENT,
            segment_id="trialists",
            segment=segment_pb2.Segment(rule=to_proto(from_yaml("{trait: trial, equals: true}"))),
        ),
        metadata=auth(MARKETER_KEY),
    )
    in_segment = f'segment = "{PARENT}/segments/trialists"'
    await eventually(lambda: _equal(users(profiles, in_segment), ["bob", "cid"]))
    assert await users(profiles, f'{in_segment} AND traits.plan = "free"') == ["cid"]
    assert await users(profiles, f'segment = "{PARENT}/segments/nobody-here"') == []


async def _equal(found: Any, expected: list[str]) -> bool:
    return bool(await found == expected)


UNSUPPORTED = [
    'user_id = "a" OR email = "b"',
    'NOT user_id = "a"',
    'user_id != "a"',
    "traits.seats > 3",
    'name = "x"',
    "user_id = 3",
    'segment = "workspaces/globex/segments/s"',
    'segment = "s"',
    'traits.plan = "gold" AND',
    "traits. = 1",
    '(user_id = "a")',
]


async def test_unsupported_filters_are_invalid_argument_on_filter(
    running: grpc.aio.Channel,
) -> None:
    profiles = profile_pb2_grpc.ProfileServiceStub(running)
    for text in UNSUPPORTED:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await profiles.ListProfiles(
                profile_pb2.ListProfilesRequest(parent=PARENT, filter=text), metadata=auth()
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, text
        assert violated_fields(caught.value) == ["filter"], text
