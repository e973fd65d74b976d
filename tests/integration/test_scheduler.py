"""The scheduler on real parts: nats-server, its database, gRPC; journeys enrolling on events."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import field_mask_pb2

from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, journey_pb2, journey_pb2_grpc
from tests.grpc_errors import violated_fields
from tests.harness import MARKETER_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth, eventually
from tests.journeys import (
    PARENT,
    TEMPLATE,
    a_journey,
    create,
    journey_events,
    send,
    sends,
    sends_to,
    start_scheduler,
    track,
)


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    # `start` blocks (and creates PostgreSQL databases with asyncio.run): off the event loop.
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
async def stub(bare_suite: Suite, bus: Bus) -> AsyncIterator[journey_pb2_grpc.JourneyServiceStub]:
    async with bare_suite.channel("scheduler") as channel:
        yield journey_pb2_grpc.JourneyServiceStub(channel)


async def test_a_matching_event_requests_one_send_even_when_repeated(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub
) -> None:
    await create(stub, "welcome", a_journey())

    await track(bus, "signed_up", user_id="u1")
    [send] = await eventually(lambda: sends_to(bus, "u1"))
    assert send.id == f"welcome:v1:{send.enrollment_id}:welcome-email"
    assert (send.workspace, send.channel, send.template) == (
        WORKSPACE,
        common_pb2.CHANNEL_EMAIL,
        TEMPLATE,
    )
    assert (send.journey, send.journey_version, send.step_id) == (
        f"{PARENT}/journeys/welcome",
        1,
        "welcome-email",
    )

    # The same event again (a new message id, so JetStream does not drop it), then a marker:
    # once the marker's send is out, the repeat has been handled.
    await track(bus, "signed_up", user_id="u1")
    await track(bus, "signed_up", anonymous_id="marker")
    await eventually(lambda: sends_to(bus, ""))
    assert [s.id for s in await sends_to(bus, "u1")] == [send.id]

    kinds = [(e.kind, e.step_id, e.reason) for e in await journey_events(bus, "u1")]
    assert kinds == [
        (bus_pb2.JourneyEvent.KIND_ENROLLED, "", ""),
        (bus_pb2.JourneyEvent.KIND_STEP, "welcome-email", ""),
        (bus_pb2.JourneyEvent.KIND_EXITED, "", "completed"),
    ]
    marker_send = (await sends_to(bus, ""))[0]
    assert marker_send.anonymous_id == "marker"


async def test_drafts_and_other_events_send_nothing(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub
) -> None:
    await create(stub, "draft", a_journey("drafted", state=journey_pb2.Journey.STATE_DRAFT))
    await create(stub, "welcome", a_journey("signed_up"))

    await track(bus, "drafted", user_id="u1")
    await track(bus, "viewed_page", user_id="u2")
    await track(bus, "signed_up", user_id="marker")
    await eventually(lambda: sends_to(bus, "marker"))
    assert [s.user_id for s in await sends(bus)] == ["marker"]


async def test_each_send_step_is_requested_in_order(
    bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub
) -> None:
    await create(stub, "two-steps", a_journey(steps=("first", "second")))
    await track(bus, "signed_up", user_id="u1")
    requests = await eventually(lambda: _at_least(bus, "u1", 2))
    assert [r.step_id for r in requests] == ["first", "second"]
    assert len({r.id for r in requests}) == 2


async def _at_least(bus: Bus, user_id: str, count: int) -> list[bus_pb2.SendRequested]:
    found = await sends_to(bus, user_id)
    return found if len(found) >= count else []


async def test_invalid_journeys_are_refused_naming_the_field(
    stub: journey_pb2_grpc.JourneyServiceStub,
) -> None:
    cases = {
        "journey.trigger.event.event": a_journey(event=""),
        "journey.steps": a_journey(steps=()),
        "journey.steps[1].id": a_journey(steps=("a", "a")),
    }
    no_channel = a_journey()
    no_channel.steps[0].send.channel = common_pb2.CHANNEL_UNSPECIFIED
    cases["journey.steps[0].send.channel"] = no_channel
    for field, journey in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create(stub, "bad", journey)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(raised.value) == [field]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(stub, "Not_An_Id", a_journey())
    assert violated_fields(raised.value) == ["journey_id"]

    await create(stub, "welcome", a_journey())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(stub, "welcome", a_journey())
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_callers_need_a_key_and_a_marketer_role_to_write(
    stub: journey_pb2_grpc.JourneyServiceStub,
) -> None:
    request = journey_pb2.CreateJourneyRequest(
        parent=PARENT, journey_id="welcome", journey=a_journey()
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateJourney(request)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateJourney(request, metadata=auth(SUPPORT_KEY))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    created = await stub.CreateJourney(request, metadata=auth(MARKETER_KEY))
    assert created.name == f"{PARENT}/journeys/welcome"
    got = await stub.GetJourney(
        journey_pb2.GetJourneyRequest(name=created.name), metadata=auth(SUPPORT_KEY)
    )
    # GetJourney adds the enrollments' counts (none yet) to what was created.
    assert (got.counts.enrolled, got.counts.active) == (0, 0)
    got.ClearField("counts")
    assert got == created


async def test_updates_version_what_a_journey_does_and_list_pages_through(
    stub: journey_pb2_grpc.JourneyServiceStub,
) -> None:
    created = await create(stub, "welcome", a_journey(state=journey_pb2.Journey.STATE_DRAFT))
    assert (created.version, created.state) == (1, journey_pb2.Journey.STATE_DRAFT)

    renamed = await stub.UpdateJourney(
        journey_pb2.UpdateJourneyRequest(
            journey=journey_pb2.Journey(name=created.name, display_name="Hello"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=auth(),
    )
    assert (renamed.display_name, renamed.version) == ("Hello", 1)
    changed = a_journey(steps=("one", "two"))
    changed.name = created.name
    updated = await stub.UpdateJourney(
        journey_pb2.UpdateJourneyRequest(
            journey=changed, update_mask=field_mask_pb2.FieldMask(paths=["steps", "state"])
        ),
        metadata=auth(),
    )
    assert updated.version == 2
    assert updated.state == journey_pb2.Journey.STATE_ACTIVE
    assert [step.id for step in updated.steps] == ["one", "two"]
    assert updated.display_name == "Hello"

    for journey_id in ("b-journey", "c-journey"):
        await create(stub, journey_id, a_journey())
    first = await stub.ListJourneys(
        journey_pb2.ListJourneysRequest(parent=PARENT, page_size=2), metadata=auth()
    )
    assert [j.name.rsplit("/", 1)[1] for j in first.journeys] == ["b-journey", "c-journey"]
    second = await stub.ListJourneys(
        journey_pb2.ListJourneysRequest(
            parent=PARENT, page_size=2, page_token=first.next_page_token
        ),
        metadata=auth(),
    )
    assert [j.name for j in second.journeys] == [created.name]
    assert not second.next_page_token

    await stub.DeleteJourney(journey_pb2.DeleteJourneyRequest(name=created.name), metadata=auth())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetJourney(journey_pb2.GetJourneyRequest(name=created.name), metadata=auth())
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_with_segments_away_events_that_move_no_journey_go_on_and_a_trigger_waits(
    bare_suite: Suite, bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub
) -> None:
    await create(stub, "welcome", a_journey())
    address = bare_suite.address("segments")
    bare_suite.kill("segments")
    await track(bus, "viewed_page", user_id="u1")
    await track(bus, "signed_up", user_id="u2")

    async def only_the_trigger_left() -> bool:
        info = await bus.js.consumer_info("EVENTS", "scheduler-events")
        return bool(info.num_pending == 0 and info.num_ack_pending == 1)

    # Without the workspace's policy no send can be decided: the trigger's batch is retried;
    # the other one is done with.
    await eventually(only_the_trigger_left)
    assert await sends_to(bus, "u2") == []
    # Back where the scheduler knows it (as behind a Kubernetes Service).
    bare_suite.env["ENGAGE_GRPC_PORT"] = address.rsplit(":", 1)[1]
    try:
        await asyncio.to_thread(bare_suite.start, "segments")
    finally:
        bare_suite.env["ENGAGE_GRPC_PORT"] = "0"
    [send] = await eventually(lambda: sends_to(bus, "u2"), timeout=40)
    assert send.step_id == "welcome-email"


async def test_a_step_that_reads_the_profile_waits_while_segments_is_away(
    bare_suite: Suite, bus: Bus, stub: journey_pb2_grpc.JourneyServiceStub
) -> None:
    at_nine = journey_pb2.JourneyStep(id="at-nine")
    at_nine.wait.time_of_day.hours = 9
    await create(stub, "morning", a_journey(graph=[at_nine, send("hello")]))
    # A first profile read (and the workspace's policy read and kept) while segments is up.
    await track(bus, "signed_up", user_id="early")
    await eventually(lambda: _reached(bus, "early", "at-nine"))

    address = bare_suite.address("segments")
    bare_suite.kill("segments")
    await track(bus, "signed_up", user_id="ana")
    await eventually(lambda: _reached(bus, "ana", ""))
    await asyncio.sleep(1.5)
    assert not await _reached(bus, "ana", "at-nine")
    assert "firing timers failed" not in bare_suite.log("scheduler")

    bare_suite.env["ENGAGE_GRPC_PORT"] = address.rsplit(":", 1)[1]
    try:
        await asyncio.to_thread(bare_suite.start, "segments")
    finally:
        bare_suite.env["ENGAGE_GRPC_PORT"] = "0"
    await eventually(lambda: _reached(bus, "ana", "at-nine"), timeout=30)


async def _reached(bus: Bus, user_id: str, step_id: str) -> bool:
    """Whether the user's enrollment has entered `step_id` ("": whether it has enrolled)."""
    events = await journey_events(bus, user_id)
    if not step_id:
        return any(e.kind == bus_pb2.JourneyEvent.KIND_ENROLLED for e in events)
    return any(e.step_id == step_id for e in events)
