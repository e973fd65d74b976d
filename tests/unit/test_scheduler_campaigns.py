"""Campaign rules without I/O: recurrence on a calendar, stable variants, what a broadcast
decides for each member, and validation."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engage.errors import FailedPrecondition, InvalidArgument
from engage.v1 import campaign_pb2, common_pb2
from services.scheduler import campaigns, recurrence
from services.scheduler.campaigns import Member, Variant
from services.scheduler.decisions import Decisions, Policy

WS = "acme"
NEW_YORK = ZoneInfo("America/New_York")
TEMPLATE = f"workspaces/{WS}/templates/sale"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_cron_reads_the_wall_clock_of_the_zone_across_dst() -> None:
    daily_nine = recurrence.parse("f", "0 9 * * *")
    # New York springs forward on 2025-03-09: 09:00 there is 14:00 UTC before, 13:00 after.
    saturday = datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
    assert recurrence.next_after(daily_nine, saturday, NEW_YORK) == datetime(
        2025, 3, 9, 13, 0, tzinfo=UTC
    )
    # 02:30 does not exist that night in New York: the next one is the following day's.
    half_past_two = recurrence.parse("f", "30 2 * * *")
    found = recurrence.next_after(half_past_two, saturday, NEW_YORK)
    assert found == datetime(2025, 3, 10, 6, 30, tzinfo=UTC)


def test_cron_days_match_either_field_when_both_are_restricted() -> None:
    first_or_monday = recurrence.parse("f", "0 0 1 * 1")
    days = []
    moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    for _ in range(4):
        found = recurrence.next_after(first_or_monday, moment, UTC)
        assert found is not None
        days.append(found.date().isoformat())
        moment = found
    assert days == ["2025-03-03", "2025-03-10", "2025-03-17", "2025-03-24"]
    every_quarter = recurrence.parse("f", "*/15 8-9 * 1,7 *")
    assert every_quarter.minutes == {0, 15, 30, 45} and every_quarter.months == {1, 7}


@pytest.mark.parametrize("bad", ["* * * *", "60 * * * *", "* 24 * * *", "a * * * *", "*/0 * * * *"])
def test_a_bad_cron_expression_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        recurrence.parse("campaign.recurrence", bad)


def test_variants_are_stable_per_profile_and_follow_the_weights() -> None:
    variants = (Variant("a", TEMPLATE, 20), Variant("b", TEMPLATE, 80))
    chosen = [campaigns.variant_of("uid", f"u{n}", variants).id for n in range(5_000)]
    assert chosen == [campaigns.variant_of("uid", f"u{n}", variants).id for n in range(5_000)]
    assert 900 < Counter(chosen)["a"] < 1_100


def spec(**fields: object) -> campaigns.CampaignSpec:
    campaign = campaign_pb2.Campaign(
        segment=f"workspaces/{WS}/segments/buyers",
        channel=common_pb2.CHANNEL_EMAIL,
        template=TEMPLATE,
        **fields,  # type: ignore[arg-type]
    )
    return campaigns.parse_campaign(campaign, WS)


def test_a_broadcast_decides_each_member_with_a_key_per_run() -> None:
    made = spec(holdout_percent=50)
    decisions = Decisions({WS: Policy()})
    broadcast = campaigns.Broadcast(WS, "sale", "uid", 1, made, NOW)
    first = [
        campaigns.decide_member(broadcast, Member(f"p{n}", f"u{n}"), decisions, NOW)
        for n in range(400)
    ]
    held = [r for r in first if r.skipped == "holdout"]
    assert 150 < len(held) < 250
    queued = [r for r in first if not r.skipped]
    key = queued[0].send_key
    assert key.startswith("campaign:sale:uid:1:") and queued[0].profile_key not in key
    again = campaigns.decide_member(broadcast, Member("p", queued[0].profile_key), decisions, NOW)
    assert again.send_key == key
    anonymous = campaigns.decide_member(broadcast, Member("p-x", ""), decisions, NOW)
    assert anonymous.skipped == campaigns.ANONYMOUS


def test_only_a_draft_or_scheduled_campaign_changes() -> None:
    sending = campaigns.CampaignSpec(**{**spec().__dict__, "state": campaigns.SENDING})
    with pytest.raises(FailedPrecondition):
        campaigns.apply_update(
            sending, campaign_pb2.Campaign(display_name="x"), ["display_name"], WS
        )
    with pytest.raises(InvalidArgument) as raised:
        spec(recurrence="every day")
    assert raised.value.field == "campaign.recurrence"


def test_a_local_send_time_or_quiet_hours_leave_a_member_pending_until_its_moment() -> None:
    made = spec(local_send_time=common_pb2.LocalTime(hours=9))
    broadcast = campaigns.Broadcast(WS, "sale", "uid", 1, made, NOW)
    decisions = Decisions({WS: Policy(quiet_hours=((21, 0), (8, 0)))})
    # NOW is 09:00 UTC: 18:00 in Tokyo (09:00 there is tomorrow), 04:00 in New York.
    tokyo = campaigns.decide_member(broadcast, Member("p1", "u1", "Asia/Tokyo"), decisions, NOW)
    assert (tokyo.pending, tokyo.due_at) == (True, datetime(2025, 3, 2, 0, 0, tzinfo=UTC))
    london = campaigns.decide_member(broadcast, Member("p2", "u2", "UTC"), decisions, NOW)
    assert (london.pending, london.skipped, london.sent is not None) == (False, "", True)

    at_once = campaigns.Broadcast(WS, "sale", "uid", 1, spec(), NOW)
    quiet = campaigns.decide_member(at_once, Member("p3", "u3", "America/New_York"), decisions, NOW)
    assert quiet.due_at == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)


def ab_test(metric: "campaign_pb2.WinnerRule.Metric", **fields: object) -> campaigns.CampaignSpec:
    rule = campaign_pb2.WinnerRule(metric=metric, test_percent=20)
    rule.after.FromTimedelta(timedelta(hours=4))
    variants = [
        campaign_pb2.CampaignVariant(id=v, template=TEMPLATE, weight=50) for v in ("a", "b")
    ]
    campaign = campaign_pb2.Campaign(
        segment=f"workspaces/{WS}/segments/buyers",
        channel=common_pb2.CHANNEL_EMAIL,
        variants=variants,
        winner_rule=rule,
        **fields,  # type: ignore[arg-type]
    )
    return campaigns.parse_campaign(campaign, WS)


def test_a_winner_by_conversion_rate_needs_a_goal_within_its_limits() -> None:
    conversion = campaign_pb2.WinnerRule.METRIC_CONVERSION_RATE
    with pytest.raises(InvalidArgument) as raised:
        ab_test(conversion)
    assert raised.value.field == "campaign.goal"
    too_long = campaign_pb2.CampaignGoal(event="purchase")
    too_long.within.FromTimedelta(timedelta(days=91))
    with pytest.raises(InvalidArgument) as raised:
        ab_test(conversion, goal=too_long)
    assert raised.value.field == "campaign.goal.within"
    with pytest.raises(InvalidArgument) as raised:
        ab_test(conversion, goal=campaign_pb2.CampaignGoal(event=" purchase"))
    assert raised.value.field == "campaign.goal.event"

    made = ab_test(conversion, goal=campaign_pb2.CampaignGoal(event="purchase"))
    assert made.goal == campaigns.Goal("purchase", timedelta(days=3))
    assert campaigns.parse_campaign(campaigns.to_proto(made), WS) == made


def test_the_winner_has_the_best_rate_of_its_metric() -> None:
    variants = ab_test(campaign_pb2.WinnerRule.METRIC_CLICK_RATE).variants
    stats = {
        "a": campaigns.Stats(sent=100, opened=60, clicked=10, converted=2),
        "b": campaigns.Stats(sent=50, opened=20, clicked=8, converted=4),
    }
    rules = {
        campaign_pb2.WinnerRule.METRIC_OPEN_RATE: "a",
        campaign_pb2.WinnerRule.METRIC_CLICK_RATE: "b",
        campaign_pb2.WinnerRule.METRIC_CONVERSION_RATE: "b",
    }
    for metric, winner in rules.items():
        rule = campaigns.WinnerRule(metric, 20, timedelta(hours=4))
        assert campaigns.choose_winner(rule, variants, stats) == winner


def test_an_update_replaces_a_message_field_as_sent() -> None:
    draft = spec()
    patch = campaign_pb2.Campaign(local_send_time=common_pb2.LocalTime(hours=9, minutes=30))
    updated = campaigns.apply_update(draft, patch, ["local_send_time"], WS)
    assert updated.local_send_time == (9, 30)
    cleared = campaigns.apply_update(updated, campaign_pb2.Campaign(), ["local_send_time"], WS)
    assert cleared.local_send_time is None
