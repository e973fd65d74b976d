"""WorkspaceService over real gRPC, served by the segments process on a real nats-server and
database (SQLite, and PostgreSQL when configured): the workspace's time zone is validated, and
setting it moves the customers without a zone of their own onto its calendar, with the
membership changes announced.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from engage import subjects
from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import (
    bus_pb2,
    common_pb2,
    segment_pb2,
    segment_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)
from tests.grpc_errors import violated_fields
from tests.harness import (
    INGEST_KEY,
    MARKETER_KEY,
    SUPPORT_KEY,
    MembershipFeed,
    Suite,
    auth,
    eventually,
)
from tests.rules import from_yaml

WORKSPACE = "acme"
PARENT = f"workspaces/{WORKSPACE}"
SETTINGS = f"{PARENT}/settings"
MARKETER = auth(MARKETER_KEY)
Change = bus_pb2.MembershipChanged


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    await asyncio.to_thread(bare_suite.start, "segments")
    connection = await Bus.open(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


@pytest.fixture
async def channel(bare_suite: Suite, bus: Bus) -> AsyncIterator[grpc.aio.Channel]:
    opened = bare_suite.channel("segments")
    yield opened
    await opened.close()


def update(time_zone: str, name: str = SETTINGS, mask: tuple[str, ...] = ("time_zone",)) -> Any:
    return workspace_pb2.UpdateWorkspaceSettingsRequest(
        settings=workspace_pb2.WorkspaceSettings(name=name, time_zone=time_zone),
        update_mask=field_mask_pb2.FieldMask(paths=list(mask)),
    )


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def identify(bus: Bus, user_id: str, traits: dict[str, Any], time_zone: str = "") -> None:
    event = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
    )
    event.timestamp.FromDatetime(datetime.now(UTC))
    event.traits.update(traits)
    if time_zone:
        event.context.update({"timezone": time_zone})
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
    subject = subjects.events(WORKSPACE, user_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)


async def test_settings_are_read_by_any_role_and_validated_on_update(
    channel: grpc.aio.Channel,
) -> None:
    stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
    read = workspace_pb2.GetWorkspaceSettingsRequest(name=SETTINGS)
    defaults = await stub.GetWorkspaceSettings(read, metadata=auth(SUPPORT_KEY))
    assert (defaults.name, defaults.time_zone, defaults.HasField("update_time")) == (
        SETTINGS,
        "",
        False,
    )
    for bad in ("Mars/Olympus", "asia/tokyo", "+09:00", "JST-9 ", "../etc/passwd"):
        error = await failure(stub.UpdateWorkspaceSettings(update(bad), metadata=MARKETER))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(error) == ["settings.time_zone"], bad
    error = await failure(stub.UpdateWorkspaceSettings(update("UTC", "acme"), metadata=MARKETER))
    assert violated_fields(error) == ["settings.name"]
    error = await failure(
        stub.UpdateWorkspaceSettings(update("UTC", mask=("locale",)), metadata=MARKETER)
    )
    assert violated_fields(error) == ["update_mask"]
    error = await failure(stub.UpdateWorkspaceSettings(update("UTC"), metadata=auth(SUPPORT_KEY)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await failure(stub.GetWorkspaceSettings(read, metadata=auth(INGEST_KEY)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    updated = await stub.UpdateWorkspaceSettings(update("Asia/Tokyo"), metadata=MARKETER)
    assert updated.time_zone == "Asia/Tokyo" and updated.HasField("update_time")
    assert (await stub.GetWorkspaceSettings(read, metadata=MARKETER)).time_zone == "Asia/Tokyo"


async def test_a_new_workspace_zone_moves_customers_without_their_own(
    channel: grpc.aio.Channel, bus: Bus
) -> None:
    """`prescribed_at: 2026-03-01` before 2026-03-01T00:00Z holds only where that day starts
    earlier than in UTC: in Tokyo (15:00Z the day before), not in New York (05:00Z)."""
    settings = workspace_pb2_grpc.WorkspaceServiceStub(channel)
    segments = segment_pb2_grpc.SegmentServiceStub(channel)
    await identify(bus, "no-zone", {"prescribed_at": "2026-03-01"})
    await identify(bus, "bad-zone", {"prescribed_at": "2026-03-01"}, "Nowhere/Land")
    await identify(bus, "new-york", {"prescribed_at": "2026-03-01"}, "America/New_York")
    await identify(bus, "tokyo", {"prescribed_at": "2026-03-01"}, "Asia/Tokyo")
    everyone = to_proto(from_yaml("{trait: prescribed_at, exists: true}"))

    async def counted() -> bool:
        preview = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=everyone)
        answer = await segments.PreviewSegment(preview, metadata=MARKETER)
        return bool(answer.member_count == 4)

    await eventually(counted)
    watch = await MembershipFeed.watch(bus, WORKSPACE)
    made = await segments.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=PARENT,
            segment_id="early",
            segment=segment_pb2.Segment(
                rule=to_proto(from_yaml("{trait: prescribed_at, before: 2026-03-01T00:00Z}"))
            ),
        ),
        metadata=MARKETER,
    )
    assert made.member_count == 1

    async def changes(count: int) -> set[tuple[str, int]]:
        found: set[tuple[str, int]] = set()
        for _ in range(count):
            change = await watch.next()
            user = change.user_id or change.profile
            found.add((user, change.change))
        return found

    assert await changes(1) == {("tokyo", Change.CHANGE_ENTERED)}  # in her own zone
    await settings.UpdateWorkspaceSettings(update("Asia/Tokyo"), metadata=MARKETER)
    assert await changes(2) == {
        ("no-zone", Change.CHANGE_ENTERED),
        ("bad-zone", Change.CHANGE_ENTERED),
    }
    get = segment_pb2.GetSegmentRequest(name=made.name)
    assert (await segments.GetSegment(get, metadata=MARKETER)).member_count == 3

    # A customer who arrives later is read in the workspace's zone at once.
    await identify(bus, "later", {"prescribed_at": "2026-03-01"})
    assert await changes(1) == {("later", Change.CHANGE_ENTERED)}

    await settings.UpdateWorkspaceSettings(update(""), metadata=MARKETER)
    assert await changes(3) == {
        (user, Change.CHANGE_EXITED) for user in ("no-zone", "bad-zone", "later")
    }
    assert (await segments.GetSegment(get, metadata=MARKETER)).member_count == 1


async def test_the_tokyo_customer_who_paid_on_the_prescription_day_gets_no_reminder(
    channel: grpc.aio.Channel, bus: Bus
) -> None:
    """Prescribed on 2026-03-01, paid at 2026-02-28T23:00Z (08:00 JST on the 1st): in Tokyo she
    paid on the prescription day; read in UTC she paid the day before and is reminded. Real
    time (the event path) and SQL (a preview) agree."""
    segments = segment_pb2_grpc.SegmentServiceStub(channel)
    reminder = to_proto(
        from_yaml(
            """
            all:
              - {trait: prescribed_at, before: today}
              - not: {event: payment_completed, since: {trait: prescribed_at}}
            """
        )
    )
    watch = await MembershipFeed.watch(bus, WORKSPACE)
    await segments.CreateSegment(
        segment_pb2.CreateSegmentRequest(
            parent=PARENT, segment_id="reminder", segment=segment_pb2.Segment(rule=reminder)
        ),
        metadata=MARKETER,
    )
    for user, zone in (("hana", "Asia/Tokyo"), ("uma", "")):
        # One batch: the prescription and the payment arrive together.
        prescribed = common_pb2.Event(
            message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user
        )
        prescribed.timestamp.FromDatetime(datetime(2026, 2, 28, 22, tzinfo=UTC))
        prescribed.traits.update({"prescribed_at": "2026-03-01"})
        if zone:
            prescribed.context.update({"timezone": zone})
        paid = common_pb2.Event(
            message_id=uuid.uuid4().hex,
            type=common_pb2.EVENT_TYPE_TRACK,
            user_id=user,
            event="payment_completed",
        )
        paid.timestamp.FromDatetime(datetime(2026, 2, 28, 23, tzinfo=UTC))
        batch = bus_pb2.EventBatch(
            id=uuid.uuid4().hex, workspace=WORKSPACE, events=[prescribed, paid]
        )
        await bus.publish(
            subjects.events(WORKSPACE, user, 8), batch, f"{WORKSPACE}:{batch.id}", WORKSPACE
        )
    entered = await watch.next()
    assert (entered.user_id, entered.change) == ("uma", Change.CHANGE_ENTERED)
    preview = segment_pb2.PreviewSegmentRequest(parent=PARENT, rule=reminder, sample_size=5)
    answer = await segments.PreviewSegment(preview, metadata=MARKETER)
    assert (answer.member_count, list(answer.sample_profiles)) == (1, [entered.profile])


async def test_the_messaging_policy_is_validated_kept_and_left_alone_by_other_updates(
    channel: grpc.aio.Channel,
) -> None:
    stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
    cap = workspace_pb2.FrequencyCap(channel=common_pb2.CHANNEL_EMAIL, max_sends=3)
    cap.window.FromTimedelta(timedelta(days=7))
    policy = workspace_pb2.WorkspaceSettings(
        name=SETTINGS, frequency_caps=[cap], global_control_percent=5.0
    )
    mask = field_mask_pb2.FieldMask(paths=["frequency_caps", "global_control_percent"])
    request = workspace_pb2.UpdateWorkspaceSettingsRequest(settings=policy, update_mask=mask)
    updated = await stub.UpdateWorkspaceSettings(request, metadata=MARKETER)
    assert (list(updated.frequency_caps), updated.global_control_percent) == ([cap], 5.0)

    await stub.UpdateWorkspaceSettings(update("Asia/Tokyo"), metadata=MARKETER)
    read = await stub.GetWorkspaceSettings(
        workspace_pb2.GetWorkspaceSettingsRequest(name=SETTINGS), metadata=auth(SUPPORT_KEY)
    )
    assert (read.time_zone, list(read.frequency_caps)) == ("Asia/Tokyo", [cap])

    bad_caps = {
        "settings.frequency_caps[0].channel": workspace_pb2.FrequencyCap(max_sends=1),
        "settings.frequency_caps[0].max_sends": workspace_pb2.FrequencyCap(
            channel=common_pb2.CHANNEL_SMS
        ),
    }
    for field, bad in bad_caps.items():
        bad.window.FromTimedelta(timedelta(days=1))
        wrong = workspace_pb2.WorkspaceSettings(name=SETTINGS, frequency_caps=[bad])
        error = await failure(
            stub.UpdateWorkspaceSettings(
                workspace_pb2.UpdateWorkspaceSettingsRequest(settings=wrong, update_mask=mask),
                metadata=MARKETER,
            )
        )
        assert violated_fields(error) == [field]
    no_window = workspace_pb2.FrequencyCap(channel=common_pb2.CHANNEL_SMS, max_sends=1)
    everyone = workspace_pb2.WorkspaceSettings(name=SETTINGS, global_control_percent=100)
    for settings, field in (
        (
            workspace_pb2.WorkspaceSettings(name=SETTINGS, frequency_caps=[no_window]),
            "settings.frequency_caps[0].window",
        ),
        (everyone, "settings.global_control_percent"),
    ):
        error = await failure(
            stub.UpdateWorkspaceSettings(
                workspace_pb2.UpdateWorkspaceSettingsRequest(settings=settings, update_mask=mask),
                metadata=MARKETER,
            )
        )
        assert violated_fields(error) == [field]


async def test_quiet_hours_are_kept_and_an_empty_window_is_refused(
    channel: grpc.aio.Channel,
) -> None:
    stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
    mask = field_mask_pb2.FieldMask(paths=["quiet_hours"])

    def request(start: int, end: int) -> workspace_pb2.UpdateWorkspaceSettingsRequest:
        quiet = workspace_pb2.QuietHours(
            start=common_pb2.LocalTime(hours=start), end=common_pb2.LocalTime(hours=end)
        )
        settings = workspace_pb2.WorkspaceSettings(name=SETTINGS, quiet_hours=quiet)
        return workspace_pb2.UpdateWorkspaceSettingsRequest(settings=settings, update_mask=mask)

    updated = await stub.UpdateWorkspaceSettings(request(21, 9), metadata=MARKETER)
    assert (updated.quiet_hours.start.hours, updated.quiet_hours.end.hours) == (21, 9)
    error = await failure(stub.UpdateWorkspaceSettings(request(9, 9), metadata=MARKETER))
    assert violated_fields(error) == ["settings.quiet_hours.end"]
    error = await failure(stub.UpdateWorkspaceSettings(request(25, 9), metadata=MARKETER))
    assert violated_fields(error) == ["settings.quiet_hours.start"]
    cleared = workspace_pb2.UpdateWorkspaceSettingsRequest(
        settings=workspace_pb2.WorkspaceSettings(name=SETTINGS), update_mask=mask
    )
    assert not (await stub.UpdateWorkspaceSettings(cleared, metadata=MARKETER)).HasField(
        "quiet_hours"
    )
