"""Identity on real parts (nats-server, the segments process, its database, gRPC): anonymous
history merged by identify or alias whichever partition each side arrives on, merges announced
once, two users never merged, configured property sums, and erasure of everything.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, profile_pb2, profile_pb2_grpc
from tests.harness import Suite, auth, eventually
from tests.integration.test_segments import T0, WORKSPACE, event, get, publish, traits_of

TRACK = common_pb2.EVENT_TYPE_TRACK
IDENTIFY = common_pb2.EVENT_TYPE_IDENTIFY
ALIAS = common_pb2.EVENT_TYPE_ALIAS
MERGED = bus_pb2.ProfileChanged.KIND_MERGED
ERASED = bus_pb2.ProfileChanged.KIND_ERASED
Stub = profile_pb2_grpc.ProfileServiceStub


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    bare_suite.env["ENGAGE_SUMMED_PROPERTIES"] = "order_completed.revenue"
    # `start` blocks until ready (and creates PostgreSQL databases with asyncio.run).
    await asyncio.to_thread(bare_suite.start, "segments")
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
async def profiles(bare_suite: Suite, bus: Bus) -> AsyncIterator[Stub]:
    channel = bare_suite.channel("segments")
    yield profile_pb2_grpc.ProfileServiceStub(channel)
    await channel.close()


@pytest.fixture
async def changes(bus: Bus) -> AsyncIterator[list[bus_pb2.ProfileChanged]]:
    """Every ProfileChanged the service publishes, in order."""
    seen: list[bus_pb2.ProfileChanged] = []

    async def collect(message: Any) -> None:
        seen.extend(bus_pb2.ProfileChanges.FromString(message.data).changes)

    subscription = await bus.js.subscribe(f"engage.profiles.{WORKSPACE}", cb=collect)
    yield seen
    await subscription.unsubscribe()


def when(
    found: Callable[[], Awaitable[profile_pb2.Profile]], condition: Callable[[Any], bool]
) -> Callable[[], Awaitable[profile_pb2.Profile | None]]:
    async def check() -> profile_pb2.Profile | None:
        profile = await found()
        return profile if condition(profile) else None

    return check


async def browse_anonymously(bus: Bus, profiles: Stub, anonymous_id: str) -> None:
    for minute in range(3):
        at = T0 + timedelta(minutes=minute)
        await publish(bus, event(TRACK, anonymous_id=anonymous_id, name="viewed", at=at))
    await eventually(
        when(
            lambda: get(profiles, anonymous_id=anonymous_id),
            lambda p: p.event_stats["viewed"].count == 3,
        )
    )


async def export(profiles: Stub, name: str) -> profile_pb2.ExportProfileResponse:
    response: profile_pb2.ExportProfileResponse = await profiles.ExportProfile(
        profile_pb2.ExportProfileRequest(name=name), metadata=auth()
    )
    return response


async def listed(profiles: Stub) -> list[profile_pb2.Profile]:
    response = await profiles.ListProfiles(
        profile_pb2.ListProfilesRequest(parent=f"workspaces/{WORKSPACE}"), metadata=auth()
    )
    return list(response.profiles)


async def test_identify_merges_anonymous_browsing_into_the_known_user(
    bus: Bus, profiles: Stub, changes: list[bus_pb2.ProfileChanged]
) -> None:
    await publish(bus, event(TRACK, user_id="u1", name="viewed", at=T0 - timedelta(days=1)))
    known = await eventually(lambda: get(profiles, user_id="u1"))
    await browse_anonymously(bus, profiles, "a1")
    anonymous = await get(profiles, anonymous_id="a1")
    identify = event(IDENTIFY, user_id="u1", anonymous_id="a1", traits={"plan": "pro"})
    await publish(bus, identify)
    profile = await eventually(
        when(lambda: get(profiles, anonymous_id="a1"), lambda p: p.user_id == "u1")
    )
    assert profile.name == known.name
    assert list(profile.anonymous_ids) == ["a1"]
    assert profile.event_stats["viewed"].count == 4
    assert profile.first_seen_time.ToDatetime() == (T0 - timedelta(days=1)).replace(tzinfo=None)
    assert traits_of(profile) == {"plan": "pro"}
    exported = await export(profiles, profile.name)
    assert len(exported.events) == 5
    assert [(m.merged_profile, m.into_profile) for m in exported.merges] == [
        (anonymous.name, profile.name)
    ]
    assert exported.merges[0].reason == profile_pb2.ProfileMerge.REASON_IDENTIFY
    assert [p.name for p in await listed(profiles)] == [profile.name]
    merged = await eventually(lambda: _announced(changes, MERGED))
    assert merged[0].profile == profile.name
    assert merged[0].merged_profile == anonymous.name

    # The same identify again, in a new bus message: applied already, so nothing happens. A
    # later identify marks when it has been handled (the consumer takes messages in order).
    await publish(bus, identify)
    await publish(bus, event(IDENTIFY, user_id="u1", traits={"plan": "team"}))
    await eventually(lambda: _plan_announced(changes, "team"))
    assert len(_kinds(changes, MERGED)) == 1
    assert len((await export(profiles, profile.name)).events) == 6


async def test_alias_joins_anonymous_history_and_later_anonymous_events(
    bus: Bus, profiles: Stub, changes: list[bus_pb2.ProfileChanged]
) -> None:
    await publish(bus, event(IDENTIFY, user_id="u2", traits={"plan": "free"}))
    known = await eventually(lambda: get(profiles, user_id="u2"))
    await browse_anonymously(bus, profiles, "a2")
    alias = event(ALIAS, user_id="u2", previous_id="a2")
    # An alias for an id not seen yet: its events resolve to the user whenever they arrive.
    await publish(bus, alias, event(ALIAS, user_id="u2", previous_id="a2-later"))
    await eventually(when(lambda: get(profiles, anonymous_id="a2"), lambda p: p.user_id == "u2"))
    # Events of both anonymous ids after the merge, on their own partitions.
    await publish(bus, event(TRACK, anonymous_id="a2", name="viewed"))
    await publish(bus, event(TRACK, anonymous_id="a2-later", name="viewed"))
    profile = await eventually(
        when(lambda: get(profiles, user_id="u2"), lambda p: p.event_stats["viewed"].count == 5)
    )
    assert profile.name == known.name
    assert list(profile.anonymous_ids) == ["a2", "a2-later"]
    assert len(await listed(profiles)) == 1
    assert (await get(profiles, anonymous_id="a2-later")).name == profile.name
    assert len((await export(profiles, profile.name)).events) == 8
    # Redelivered alias: recorded already, merges nothing.
    await publish(bus, alias)
    await publish(bus, event(IDENTIFY, user_id="u2", traits={"plan": "pro"}))
    await eventually(lambda: _plan_announced(changes, "pro"))
    assert len(_kinds(changes, MERGED)) == 1
    assert (await get(profiles, user_id="u2")).event_stats["viewed"].count == 5


async def test_two_known_users_never_merge_over_a_shared_anonymous_id(
    bus: Bus, bare_suite: Suite, profiles: Stub
) -> None:
    await publish(bus, event(IDENTIFY, user_id="ann", anonymous_id="tablet"))
    await eventually(lambda: get(profiles, anonymous_id="tablet"))
    await publish(bus, event(IDENTIFY, user_id="bob", anonymous_id="tablet"))
    bob = await eventually(lambda: get(profiles, user_id="bob"))
    assert list(bob.anonymous_ids) == []
    tablet = await get(profiles, anonymous_id="tablet")
    assert tablet.user_id == "ann"
    assert tablet.name != bob.name
    assert "anonymous id already belongs to another user" in bare_suite.log("segments")


async def test_erasure_removes_the_user_and_every_merged_anonymous_id(
    bus: Bus, profiles: Stub, changes: list[bus_pb2.ProfileChanged]
) -> None:
    await browse_anonymously(bus, profiles, "a3")
    await publish(bus, event(IDENTIFY, user_id="u3", anonymous_id="a3"))
    await publish(bus, event(ALIAS, user_id="u3", previous_id="a3-phone"))
    await publish(bus, event(TRACK, anonymous_id="a3-phone", name="viewed"))
    profile = await eventually(
        when(lambda: get(profiles, user_id="u3"), lambda p: p.event_stats["viewed"].count == 4)
    )
    await profiles.DeleteProfile(
        profile_pb2.DeleteProfileRequest(name=profile.name), metadata=auth()
    )
    [erased] = await eventually(lambda: _announced(changes, ERASED))
    assert (erased.profile, erased.user_id) == (profile.name, "u3")
    lookups: list[Callable[[], Awaitable[Any]]] = [
        lambda: export(profiles, profile.name),
        lambda: get(profiles, user_id="u3"),
        lambda: get(profiles, anonymous_id="a3"),
        lambda: get(profiles, anonymous_id="a3-phone"),
    ]
    for lookup in lookups:
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await lookup()
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert await listed(profiles) == []


async def test_configured_property_is_summed_across_a_merge(
    bus: Bus, bare_suite: Suite, profiles: Stub
) -> None:
    def order(revenue: Any, user_id: str = "", anonymous_id: str = "") -> common_pb2.Event:
        return event(
            TRACK,
            name="order_completed",
            properties={"revenue": revenue},
            user_id=user_id,
            anonymous_id=anonymous_id,
        )

    await publish(bus, order(20, anonymous_id="a4"), order("n/a", anonymous_id="a4"))
    await publish(bus, order(12.5, user_id="u4"))
    await publish(bus, event(IDENTIFY, user_id="u4", anonymous_id="a4"))
    profile = await eventually(
        when(
            lambda: get(profiles, user_id="u4"),
            lambda p: p.event_stats["order_completed"].count == 3,
        )
    )
    assert dict(profile.event_stats["order_completed"].property_totals) == {"revenue": 32.5}


def _kinds(
    changes: list[bus_pb2.ProfileChanged], kind: "bus_pb2.ProfileChanged.Kind"
) -> list[bus_pb2.ProfileChanged]:
    return [change for change in changes if change.kind == kind]


async def _plan_announced(changes: list[bus_pb2.ProfileChanged], plan: str) -> bool:
    """Whether an update setting this plan went out: the service's outbox publishes in order, so
    everything announced before it has gone out too."""
    return any(
        json_format.MessageToDict(change.changed_traits).get("plan") == plan
        for change in _kinds(changes, bus_pb2.ProfileChanged.KIND_UPDATED)
    )


async def _announced(
    changes: list[bus_pb2.ProfileChanged], kind: "bus_pb2.ProfileChanged.Kind"
) -> list[bus_pb2.ProfileChanged]:
    return _kinds(changes, kind)
