"""The segments service's profile half on real parts: nats-server, its database, gRPC."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engage import subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, profile_pb2, profile_pb2_grpc
from tests.harness import OTHER_WORKSPACE_KEY, Suite, auth, eventually

WORKSPACE = "acme"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    # `start` blocks until ready (and creates PostgreSQL databases with asyncio.run), so it
    # runs off the event loop.
    await asyncio.to_thread(bare_suite.start, "segments")
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
async def profiles(
    bare_suite: Suite, bus: Bus
) -> AsyncIterator[profile_pb2_grpc.ProfileServiceStub]:
    # Made inside the running loop: grpc.aio binds a channel to the loop current at creation.
    channel = bare_suite.channel("segments")
    yield profile_pb2_grpc.ProfileServiceStub(channel)
    await channel.close()


def event(
    kind: "common_pb2.EventType",
    *,
    user_id: str = "",
    anonymous_id: str = "",
    name: str = "",
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    at: datetime = T0,
    message_id: str = "",
    previous_id: str = "",
    properties: dict[str, Any] | None = None,
) -> common_pb2.Event:
    made = common_pb2.Event(
        message_id=message_id or uuid.uuid4().hex,
        type=kind,
        event=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
    )
    made.timestamp.FromDatetime(at)
    if traits:
        made.traits.update(traits)
    if context:
        made.context.update(context)
    if properties:
        made.properties.update(properties)
    return made


async def publish(bus: Bus, *events: common_pb2.Event, batch_id: str = "") -> None:
    batch = bus_pb2.EventBatch(
        id=batch_id or uuid.uuid4().hex, workspace=WORKSPACE, events=list(events)
    )
    key = events[0].user_id or events[0].anonymous_id
    await bus.publish(
        subjects.events(WORKSPACE, key, 8), batch, f"{WORKSPACE}:{batch.id}", WORKSPACE
    )


async def get(stub: profile_pb2_grpc.ProfileServiceStub, **key: str) -> profile_pb2.Profile:
    response: profile_pb2.Profile = await stub.GetProfile(
        profile_pb2.GetProfileRequest(**key), metadata=auth()
    )
    return response


def traits_of(profile: profile_pb2.Profile) -> dict[str, Any]:
    return json_format.MessageToDict(profile.traits)


async def test_identify_sets_traits_time_zone_and_locale(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    await publish(
        bus,
        event(
            common_pb2.EVENT_TYPE_IDENTIFY,
            user_id="u1",
            traits={"email": "ann@example.com", "plan": "pro", "timezone": "Asia/Tokyo"},
            context={"locale": "ja-JP"},
        ),
    )
    profile = await eventually(lambda: get(profiles, user_id="u1"))
    assert traits_of(profile)["plan"] == "pro"
    assert profile.time_zone == "Asia/Tokyo"
    assert profile.locale == "ja-JP"
    assert profile.name.startswith(f"workspaces/{WORKSPACE}/profiles/")
    by_email = await get(profiles, email="ann@example.com")
    assert by_email.name == profile.name
    by_name = await get(profiles, name=profile.name)
    assert by_name.user_id == "u1"


async def test_older_identify_does_not_overwrite_newer_trait(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    newer = event(
        common_pb2.EVENT_TYPE_IDENTIFY,
        user_id="u2",
        traits={"plan": "pro"},
        at=T0 + timedelta(hours=1),
    )
    older = event(common_pb2.EVENT_TYPE_IDENTIFY, user_id="u2", traits={"plan": "free", "a": 1})
    await publish(bus, newer)
    await publish(bus, older)
    profile = await eventually(
        lambda: _has(get(profiles, user_id="u2"), lambda p: "a" in traits_of(p))
    )
    assert traits_of(profile) == {"plan": "pro", "a": 1}


async def test_an_older_page_view_keeps_the_newer_time_zone_and_locale(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    track = common_pb2.EVENT_TYPE_TRACK
    later = {"timezone": "Asia/Tokyo", "locale": "ja-JP"}
    earlier = {"timezone": "Europe/Paris", "locale": "fr-FR"}
    newer = event(track, user_id="u9", name="page_viewed", context=later, at=T0 + timedelta(1))
    await publish(bus, newer)
    # Applied in a transaction of its own before the older event arrives.
    await eventually(lambda: _has(get(profiles, user_id="u9"), lambda p: p.locale == "ja-JP"))
    await publish(bus, event(track, user_id="u9", name="page_viewed", context=earlier))
    profile = await eventually(
        lambda: _has(get(profiles, user_id="u9"), lambda p: p.event_stats["page_viewed"].count == 2)
    )
    assert (profile.time_zone, profile.locale) == ("Asia/Tokyo", "ja-JP")


async def test_track_counts_and_a_redelivered_message_counts_once(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    first = event(common_pb2.EVENT_TYPE_TRACK, user_id="u3", name="viewed", message_id="m-1")
    second = event(
        common_pb2.EVENT_TYPE_TRACK,
        user_id="u3",
        name="viewed",
        message_id="m-2",
        at=T0 + timedelta(minutes=5),
    )
    await publish(bus, first, second)
    # The same event in another bus message (so JetStream's dedupe does not drop it).
    await publish(bus, first)
    await publish(bus, event(common_pb2.EVENT_TYPE_TRACK, user_id="u3", name="done"))
    profile = await eventually(
        lambda: _has(get(profiles, user_id="u3"), lambda p: "done" in p.event_stats)
    )
    stats = profile.event_stats["viewed"]
    assert stats.count == 2
    assert stats.first_time.ToDatetime(tzinfo=UTC) == T0
    assert stats.last_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=5)
    assert profile.first_seen_time.ToDatetime(tzinfo=UTC) == T0


async def test_anonymous_history_merges_into_the_identified_user(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    await publish(bus, event(common_pb2.EVENT_TYPE_IDENTIFY, user_id="u4", traits={"x": 1}))
    await publish(bus, event(common_pb2.EVENT_TYPE_TRACK, user_id="u4", name="viewed"))
    for _ in range(2):
        await publish(bus, event(common_pb2.EVENT_TYPE_TRACK, anonymous_id="a4", name="viewed"))
    await eventually(
        lambda: _has(get(profiles, anonymous_id="a4"), lambda p: p.event_stats["viewed"].count == 2)
    )
    await publish(
        bus,
        event(
            common_pb2.EVENT_TYPE_IDENTIFY,
            user_id="u4",
            anonymous_id="a4",
            traits={"y": 2},
        ),
    )
    profile = await eventually(
        lambda: _has(get(profiles, anonymous_id="a4"), lambda p: p.user_id == "u4")
    )
    assert list(profile.anonymous_ids) == ["a4"]
    assert profile.event_stats["viewed"].count == 3
    assert traits_of(profile) == {"x": 1, "y": 2}
    assert (await get(profiles, user_id="u4")).name == profile.name
    listed = await profiles.ListProfiles(
        profile_pb2.ListProfilesRequest(parent=f"workspaces/{WORKSPACE}"), metadata=auth()
    )
    assert [p.name for p in listed.profiles] == [profile.name]
    exported = await profiles.ExportProfile(
        profile_pb2.ExportProfileRequest(name=profile.name), metadata=auth()
    )
    assert len(exported.events) == 5


async def test_list_profiles_pages_through_everything(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    await publish(
        bus, *[event(common_pb2.EVENT_TYPE_TRACK, user_id=f"p{i}", name="x") for i in range(5)]
    )
    parent = f"workspaces/{WORKSPACE}"

    async def all_five() -> bool:
        response = await profiles.ListProfiles(
            profile_pb2.ListProfilesRequest(parent=parent, page_size=10), metadata=auth()
        )
        return len(response.profiles) == 5

    await eventually(all_five)
    seen: list[str] = []
    token = ""
    while True:
        page = await profiles.ListProfiles(
            profile_pb2.ListProfilesRequest(parent=parent, page_size=2, page_token=token),
            metadata=auth(),
        )
        seen += [p.user_id for p in page.profiles]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"p{i}" for i in range(5)]
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await profiles.ListProfiles(
            profile_pb2.ListProfilesRequest(parent=parent, page_size=-1), metadata=auth()
        )
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_profile_errors(bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing_key:
        await profiles.GetProfile(profile_pb2.GetProfileRequest(), metadata=auth())
    assert missing_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_fields(missing_key.value) == ["key"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await get(profiles, user_id="nobody")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await get(profiles, name="workspaces/globex/profiles/abc")
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as other_key:
        await profiles.GetProfile(
            profile_pb2.GetProfileRequest(name=f"workspaces/{WORKSPACE}/profiles/abc"),
            metadata=auth(OTHER_WORKSPACE_KEY),
        )
    assert other_key.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_delete_profile_erases_it_and_announces_erasure(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    await publish(
        bus, event(common_pb2.EVENT_TYPE_TRACK, user_id="u9", anonymous_id="a9", name="viewed")
    )
    profile = await eventually(lambda: get(profiles, user_id="u9"))
    erased: asyncio.Queue[bus_pb2.ProfileChanged] = asyncio.Queue()

    async def collect(message: Any) -> None:
        for change in bus_pb2.ProfileChanges.FromString(message.data).changes:
            if change.kind == bus_pb2.ProfileChanged.KIND_ERASED:
                await erased.put(change)

    subscription = await bus.js.subscribe(f"engage.profiles.{WORKSPACE}", cb=collect)
    try:
        await profiles.DeleteProfile(
            profile_pb2.DeleteProfileRequest(name=profile.name), metadata=auth()
        )
        change = await asyncio.wait_for(erased.get(), 10)
    finally:
        await subscription.unsubscribe()
    assert change.profile == profile.name
    assert change.user_id == "u9"
    # So that services keyed by anonymous ids erase too.
    assert list(change.anonymous_ids) == ["a9"]
    for key in ({"name": profile.name}, {"user_id": "u9"}):
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await get(profiles, **key)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def _has(
    found: "asyncio.Future[profile_pb2.Profile] | Any", condition: Any
) -> profile_pb2.Profile | None:
    profile: profile_pb2.Profile = await found
    return profile if condition(profile) else None


def _bad_fields(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [violation.field for violation in bad_request.field_violations]
    return fields


async def test_a_profile_is_read_with_a_given_event_applied_or_not_at_all(
    bus: Bus, profiles: profile_pb2_grpc.ProfileServiceStub
) -> None:
    identify = event(
        common_pb2.EVENT_TYPE_IDENTIFY,
        user_id="ana",
        traits={"plan": "gold", "timezone": "Asia/Tokyo"},
    )
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await get(profiles, user_id="ana", applied_event=identify.message_id)
    assert early.value.code() == grpc.StatusCode.UNAVAILABLE

    await publish(bus, identify)
    read = await eventually(lambda: get(profiles, user_id="ana", applied_event=identify.message_id))
    assert traits_of(read)["plan"] == "gold"
    assert (read.time_zone, read.calendar_time_zone) == ("Asia/Tokyo", "Asia/Tokyo")

    await publish(bus, event(common_pb2.EVENT_TYPE_IDENTIFY, user_id="bo", traits={"plan": "x"}))
    bo = await eventually(lambda: get(profiles, user_id="bo"))
    assert (bo.time_zone, bo.calendar_time_zone) == ("", "UTC")
