"""Campaigns served by the scheduler, with segments listing the audience: a broadcast decides
and queues each member once (variants stable, holdout kept back), is completed only when
channels has reported every queued send, and a scheduler killed mid-broadcast goes on where it
was without sending anybody twice."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from engage import subjects
from engage.bus import Bus
from engage.rules.proto import to_proto
from engage.v1 import (
    bus_pb2,
    campaign_pb2,
    campaign_pb2_grpc,
    common_pb2,
    segment_pb2,
    segment_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)
from tests.grpc_errors import violated_fields
from tests.harness import MARKETER_KEY, WORKSPACE, Suite, auth, eventually
from tests.journeys import (
    PARENT,
    TEMPLATE,
    WireTap,
    identify,
    move,
    now_on,
    report,
    start_scheduler,
    track,
    with_moving_clock,
)
from tests.rules import from_yaml

SEGMENT = f"{PARENT}/segments/buyers"
OTHER_TEMPLATE = f"{PARENT}/templates/welcome-b"
GOLD_RULE = "{trait: plan, equals: gold}"
Campaign = campaign_pb2.Campaign
SENT, CLICKED = bus_pb2.DeliveryEvent.KIND_SENT, bus_pb2.DeliveryEvent.KIND_CLICKED
TOKYO = ZoneInfo("Asia/Tokyo")
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    # Every service reads a clock the test may move (the recurring campaign's test does).
    with_moving_clock(bare_suite)
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


@pytest.fixture
async def stub(bare_suite: Suite, bus: Bus) -> AsyncIterator[campaign_pb2_grpc.CampaignServiceStub]:
    async with bare_suite.channel("scheduler") as channel:
        yield campaign_pb2_grpc.CampaignServiceStub(channel)


async def buyers(
    suite: Suite, bus: Bus, count: int, anonymous: int = 0, expected: int | None = None
) -> None:
    """`count` identified buyers (and `anonymous` ones) and the `buyers` segment, once it holds
    `expected` profiles (by default those)."""
    events = [_identify(common_pb2.Event(user_id=f"buyer-{n:05}")) for n in range(count)] + [
        _identify(common_pb2.Event(anonymous_id=f"anon-{n}")) for n in range(anonymous)
    ]
    for start in range(0, len(events), 500):  # no batch for none
        batch = bus_pb2.EventBatch(
            id=uuid.uuid4().hex, workspace=WORKSPACE, events=events[start : start + 500]
        )
        subject = subjects.events(WORKSPACE, f"b{start}", 8)
        await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", workspace=WORKSPACE)
    async with suite.channel("segments") as channel:
        stub = segment_pb2_grpc.SegmentServiceStub(channel)

        async def all_applied() -> bool:
            preview = await stub.PreviewSegment(
                segment_pb2.PreviewSegmentRequest(
                    parent=PARENT, rule=to_proto(from_yaml(GOLD_RULE))
                ),
                metadata=auth(MARKETER_KEY),
            )
            wanted = count + anonymous if expected is None else expected
            return bool(preview.member_count == wanted)

        await eventually(all_applied, timeout=60)
        await stub.CreateSegment(
            segment_pb2.CreateSegmentRequest(
                parent=PARENT,
                segment_id="buyers",
                segment=segment_pb2.Segment(
                    rule=to_proto(from_yaml("{trait: plan, equals: gold}"))
                ),
            ),
            metadata=auth(MARKETER_KEY),
        )


def _identify(event: common_pb2.Event) -> common_pb2.Event:
    event.message_id = uuid.uuid4().hex
    event.type = common_pb2.EVENT_TYPE_IDENTIFY
    event.traits.update({"plan": "gold"})
    return event


def a_campaign(**fields: object) -> campaign_pb2.Campaign:
    campaign = Campaign(
        display_name="Spring sale",
        state=Campaign.STATE_SCHEDULED,
        segment=SEGMENT,
        channel=common_pb2.CHANNEL_EMAIL,
        variants=[
            campaign_pb2.CampaignVariant(id="a", template=TEMPLATE, weight=50),
            campaign_pb2.CampaignVariant(id="b", template=OTHER_TEMPLATE, weight=50),
        ],
    )
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(campaign, name).CopyFrom(value)
        else:
            setattr(campaign, name, value)
    return campaign


async def create(
    stub: campaign_pb2_grpc.CampaignServiceStub, campaign_id: str, campaign: campaign_pb2.Campaign
) -> campaign_pb2.Campaign:
    made: campaign_pb2.Campaign = await stub.CreateCampaign(
        campaign_pb2.CreateCampaignRequest(
            parent=PARENT, campaign_id=campaign_id, campaign=campaign
        ),
        metadata=auth(MARKETER_KEY),
    )
    return made


async def get(stub: campaign_pb2_grpc.CampaignServiceStub, name: str) -> campaign_pb2.Campaign:
    got: campaign_pb2.Campaign = await stub.GetCampaign(
        campaign_pb2.GetCampaignRequest(name=name), metadata=auth(MARKETER_KEY)
    )
    return got


async def audience_done(
    stub: campaign_pb2_grpc.CampaignServiceStub, name: str
) -> campaign_pb2.Campaign:
    """The campaign once its broadcast has gone through the whole audience."""

    async def done() -> campaign_pb2.Campaign | None:
        campaign = await get(stub, name)
        return campaign if campaign.progress.audience_done else None

    found: campaign_pb2.Campaign = await eventually(done, timeout=30)
    return found


def winner_rule(
    metric: "campaign_pb2.WinnerRule.Metric", test_percent: int
) -> campaign_pb2.WinnerRule:
    """A winner chosen by `metric` four hours after its test share was sent."""
    rule = campaign_pb2.WinnerRule(metric=metric, test_percent=test_percent)
    rule.after.FromTimedelta(timedelta(hours=4))
    return rule


async def test_a_broadcast_sends_each_member_once_and_completes_only_when_all_are_reported(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    await buyers(bare_suite, bus, 300, anonymous=2)
    tap = WireTap()
    await tap.start(bus)
    made = await create(stub, "spring", a_campaign(holdout_percent=10))

    campaign = await audience_done(stub, made.name)
    progress = campaign.progress
    held_out = progress.skipped["holdout"]
    assert 10 < held_out < 60
    assert dict(progress.skipped) == {"holdout": held_out, "anonymous": 2}
    assert (progress.targeted, progress.queued) == (302, 300 - held_out)
    assert campaign.state == Campaign.STATE_SENDING
    # The outbox relay publishes what the broadcast committed.
    await eventually(lambda: len(tap.seen) == progress.queued)
    sent = tap.requests()
    assert tap.fired_twice() == []
    by_variant = Counter(s.template for s in sent)
    assert set(by_variant) == {TEMPLATE, OTHER_TEMPLATE}
    assert min(by_variant.values()) > progress.queued * 0.35

    await report(bus, sent[:-1], SENT)
    await eventually(lambda: _sent_count(stub, made.name, len(sent) - 1))
    assert (await get(stub, made.name)).state == Campaign.STATE_SENDING
    await report(bus, sent[-1:], SENT)

    async def completed() -> bool:
        return (await get(stub, made.name)).state == Campaign.STATE_COMPLETED

    await eventually(completed)


async def _sent_count(stub: campaign_pb2_grpc.CampaignServiceStub, name: str, count: int) -> bool:
    return (await get(stub, name)).progress.sent == count


async def test_a_scheduler_killed_mid_broadcast_goes_on_and_sends_nobody_twice(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    await buyers(bare_suite, bus, 1_000)
    tap = WireTap()
    await tap.start(bus)
    # 6,000 a minute: 100 sends a second, so the broadcast takes about ten seconds.
    made = await create(stub, "slow", a_campaign(max_sends_per_minute=6_000))
    await eventually(lambda: 100 <= len(tap.seen) < 900, timeout=30)
    bare_suite.kill("scheduler")
    await asyncio.to_thread(bare_suite.start, "scheduler")
    async with bare_suite.channel("scheduler") as channel:
        restarted = campaign_pb2_grpc.CampaignServiceStub(channel)

        async def gone_through() -> bool:
            return (await get(restarted, made.name)).progress.audience_done

        await eventually(gone_through, timeout=60)
        await eventually(lambda: len(tap.seen) >= 1_000)
        assert len(tap.seen) == 1_000
        assert tap.fired_twice() == []
        assert (await get(restarted, made.name)).progress.queued == 1_000


async def test_invalid_campaigns_are_refused_naming_the_field(
    stub: campaign_pb2_grpc.CampaignServiceStub,
) -> None:
    cases = {
        "campaign.segment": a_campaign(segment="buyers"),
        "campaign.channel": a_campaign(channel=common_pb2.CHANNEL_UNSPECIFIED),
        "campaign.holdout_percent": a_campaign(holdout_percent=100),
        "campaign.state": a_campaign(state=Campaign.STATE_SENDING),
    }
    same_id = a_campaign()
    same_id.variants[1].id = "a"
    cases["campaign.variants[1].id"] = same_id
    both = a_campaign(template=TEMPLATE)
    cases["campaign.template"] = both
    for field, campaign in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create(stub, "bad", campaign)
        assert violated_fields(raised.value) == [field], field

    draft = await create(stub, "draft", a_campaign(state=Campaign.STATE_DRAFT))
    renamed = await stub.UpdateCampaign(
        campaign_pb2.UpdateCampaignRequest(
            campaign=Campaign(name=draft.name, display_name="Summer sale"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=auth(MARKETER_KEY),
    )
    assert (renamed.display_name, renamed.state, len(renamed.variants)) == (
        "Summer sale",
        Campaign.STATE_DRAFT,
        2,
    )
    cancelled = await stub.CancelCampaign(
        campaign_pb2.CancelCampaignRequest(name=draft.name), metadata=auth(MARKETER_KEY)
    )
    assert cancelled.state == Campaign.STATE_CANCELLED


async def test_a_recurring_campaign_runs_at_its_hour_on_the_workspaces_calendar(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    clock_file = with_moving_clock(bare_suite)
    # Before any event: the scheduler keeps the settings it read for 10 seconds.
    await workspace_zone(bare_suite, "Asia/Tokyo")
    await buyers(bare_suite, bus, 3)
    tap = WireTap()
    await tap.start(bus)
    made = await create(stub, "daily", a_campaign(recurrence="0 9 * * *"))
    scheduled = await eventually(lambda: _scheduled(stub, made.name))
    first = scheduled.send_time.ToDatetime(tzinfo=UTC).astimezone(TOKYO)
    assert (first.hour, first.minute) == (9, 0)

    move(clock_file, first - now_on(clock_file) - MINUTE)
    await asyncio.sleep(1.5)
    assert tap.seen == {}
    move(clock_file, 2 * MINUTE)
    await eventually(lambda: len(tap.seen) == 3)
    second = await eventually(lambda: _scheduled(stub, made.name, after=first))
    assert second.send_time.ToDatetime(tzinfo=UTC) == first + timedelta(days=1)
    assert second.runs == 1

    move(clock_file, timedelta(days=1))
    await eventually(lambda: len(tap.seen) == 6)
    sends = tap.requests()
    assert len({s.user_id for s in sends}) == 3 and tap.fired_twice() == []
    hours = {s.occurred_at.ToDatetime(tzinfo=UTC).astimezone(TOKYO).hour for s in sends}
    assert hours == {9}


async def _scheduled(
    stub: campaign_pb2_grpc.CampaignServiceStub, name: str, after: datetime | None = None
) -> campaign_pb2.Campaign | None:
    campaign = await get(stub, name)
    if campaign.state != Campaign.STATE_SCHEDULED or not campaign.HasField("send_time"):
        return None
    at = campaign.send_time.ToDatetime(tzinfo=UTC)
    return campaign if after is None or at > after else None


async def workspace_zone(suite: Suite, zone: str) -> None:
    async with suite.channel("segments") as channel:
        await workspace_pb2_grpc.WorkspaceServiceStub(channel).UpdateWorkspaceSettings(
            workspace_pb2.UpdateWorkspaceSettingsRequest(
                settings=workspace_pb2.WorkspaceSettings(name=f"{PARENT}/settings", time_zone=zone),
                update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
            ),
            metadata=auth(MARKETER_KEY),
        )


async def test_an_ab_test_sends_the_winner_to_the_rest_once_the_wait_is_over(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    clock_file = with_moving_clock(bare_suite)
    await buyers(bare_suite, bus, 200)
    tap = WireTap()
    await tap.start(bus)
    rule = winner_rule(campaign_pb2.WinnerRule.METRIC_CLICK_RATE, test_percent=30)
    made = await create(stub, "ab", a_campaign(winner_rule=rule))

    campaign = await audience_done(stub, made.name)
    in_test = campaign.progress.queued
    assert 30 < in_test < 90
    assert campaign.progress.pending == 200 - in_test
    await eventually(lambda: len(tap.seen) == in_test)
    test_sends = tap.requests()
    # Variant b (OTHER_TEMPLATE) is clicked by everyone it reached; a by nobody.
    await report(bus, test_sends, SENT)
    await report(bus, [s for s in test_sends if s.template == OTHER_TEMPLATE], CLICKED)
    await eventually(lambda: _sent_count(stub, made.name, in_test))
    assert len(tap.seen) == in_test

    move(clock_file, timedelta(hours=4, minutes=1))
    await eventually(lambda: len(tap.seen) == 200)
    rest = [s for s in tap.requests() if s.id not in {t.id for t in test_sends}]
    assert {s.template for s in rest} == {OTHER_TEMPLATE}
    decided = await get(stub, made.name)
    assert (decided.winner, decided.progress.pending) == ("b", 0)
    assert decided.state == Campaign.STATE_SENDING
    await report(bus, rest, SENT)

    async def completed() -> bool:
        return (await get(stub, made.name)).state == Campaign.STATE_COMPLETED

    await eventually(completed)


async def test_an_ab_test_by_conversion_rate_keeps_the_variant_whose_recipients_did_the_goal(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    clock_file = with_moving_clock(bare_suite)
    await buyers(bare_suite, bus, 120)
    tap = WireTap()
    await tap.start(bus)
    rule = winner_rule(campaign_pb2.WinnerRule.METRIC_CONVERSION_RATE, test_percent=40)
    goal = campaign_pb2.CampaignGoal(event="purchase")
    made = await create(stub, "ab-goal", a_campaign(winner_rule=rule, goal=goal))

    in_test = (await audience_done(stub, made.name)).progress.queued
    await eventually(lambda: len(tap.seen) == in_test)
    test_sends = tap.requests()
    await report(bus, test_sends, SENT)
    await eventually(lambda: _sent_count(stub, made.name, in_test))
    # Variant b (OTHER_TEMPLATE) is bought from by everyone it reached, a only clicked: by
    # clicks (or with no conversion counted, on a tie) a would win.
    buyers_of_b = [s.user_id for s in test_sends if s.template == OTHER_TEMPLATE]
    await track(bus, "purchase", buyers_of_b[0], "", *buyers_of_b[1:])
    await report(bus, [s for s in test_sends if s.template == TEMPLATE], CLICKED)

    move(clock_file, timedelta(hours=4, minutes=1))
    await eventually(lambda: len(tap.seen) == 120)
    rest = [s for s in tap.requests() if s.id not in {t.id for t in test_sends}]
    assert {s.template for s in rest} == {OTHER_TEMPLATE}
    assert (await get(stub, made.name)).winner == "b"


async def test_a_local_send_time_reaches_each_recipient_at_that_hour_in_their_zone(
    bare_suite: Suite, bus: Bus, stub: campaign_pb2_grpc.CampaignServiceStub
) -> None:
    clock_file = with_moving_clock(bare_suite)
    zones = {"tokyo-buyer": "Asia/Tokyo", "paris-buyer": "Europe/Paris"}
    for user_id, zone in zones.items():
        await identify(bus, user_id, {"timezone": zone, "plan": "gold"})
    await buyers(bare_suite, bus, 0, anonymous=0, expected=2)
    tap = WireTap()
    await tap.start(bus)
    made = await create(stub, "local", a_campaign(local_send_time=common_pb2.LocalTime(hours=9)))

    async def all_pending() -> bool:
        return (await get(stub, made.name)).progress.pending == 2

    await eventually(all_pending)
    for user_id, zone in sorted(zones.items(), key=lambda item: _next_nine(clock_file, item[1])):
        move(clock_file, _next_nine(clock_file, zone) - now_on(clock_file) + MINUTE)
        await eventually(partial(_sent_to, tap, user_id))
        [sent] = [s for s in tap.requests() if s.user_id == user_id]
        local = sent.occurred_at.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 1), user_id
    assert len(tap.seen) == 2


def _sent_to(tap: WireTap, user_id: str) -> bool:
    return any(s.user_id == user_id for s in tap.requests())


def _next_nine(clock_file: Path, zone: str) -> datetime:
    local = now_on(clock_file).astimezone(ZoneInfo(zone))
    nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
    return nine if nine > local else nine + timedelta(days=1)
