"""The customer's calendar in rules: which texts are dates, the zone a profile's dates are read
in, calendar days against elapsed durations across DST, and how such rules are written (YAML,
proto) and refused."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engage.dates import DAY, date_value, day_start, local_day, profile_zone
from engage.errors import InvalidArgument
from engage.rules.evaluate import EventFacts, Facts, evaluate
from engage.rules.language import (
    At,
    CalendarDay,
    Day,
    EventCondition,
    Not,
    Operator,
    Relative,
    TraitCondition,
    Wall,
    date_micros,
    dependencies,
    is_time_dependent,
    micros,
    validate,
)
from engage.rules.proto import from_proto, to_proto
from engage.v1 import segment_pb2
from tests.rules import from_yaml, to_yaml

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> int:
    return micros(datetime.fromisoformat(text))


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T09:00:00.1234567Z",  # .NET: 7 digits, kept to the microsecond
        "2026-03-01T18:00:00.123456+0900",  # no colon in the offset
        "2026-03-01t09:00:00.123456z",  # lower-case letters
        "2026-03-01 18:00:00.123456789+09",  # 9 digits, hours-only offset
        "2026-03-01T09:00:00,123456Z",  # comma fraction
    ],
)
def test_every_timestamp_form_ingest_accepts_is_a_date(text: str) -> None:
    assert date_micros(text) == utc("2026-03-01T09:00:00.123456+00:00")


@pytest.mark.parametrize(
    "text", ["2026-02-30", "2026-03-01T24:00", "2026-03-01T09:00+24:00", "20260301", "2026-3-1"]
)
def test_texts_that_name_no_real_time_are_not_dates(text: str) -> None:
    assert date_value(text, TOKYO) is None


def test_a_date_alone_is_local_midnight_in_the_profiles_zone() -> None:
    found = date_value("2026-03-01", TOKYO)
    assert found is not None
    assert found.at == utc("2026-02-28T15:00:00+00:00")
    assert found.local // DAY == (date(2026, 3, 1) - date(1970, 1, 1)).days
    zoneless = date_value("2026-03-01T09:00", NEW_YORK)
    assert zoneless is not None and zoneless.at == utc("2026-03-01T14:00:00+00:00")
    # An instant written with an offset is the same instant everywhere; its local day moves.
    instant = date_value("2026-02-28T23:00:00Z", TOKYO)
    assert instant is not None and instant.local // DAY == found.local // DAY


def test_an_invalid_or_missing_zone_falls_back_to_the_workspaces_then_utc() -> None:
    assert profile_zone("Asia/Tokyo", "America/New_York") == TOKYO
    assert profile_zone("Nowhere/Land", "America/New_York") == NEW_YORK
    assert profile_zone("", "not a zone") is UTC
    assert profile_zone("../../etc/passwd") is UTC


def test_calendar_days_follow_the_wall_clock_across_dst() -> None:
    """New York's clocks went forward on 2026-03-08: that day is 23 hours long."""
    march_8 = (date(2026, 3, 8) - date(1970, 1, 1)).days
    assert day_start(march_8, NEW_YORK) == utc("2026-03-08T05:00:00+00:00")
    assert day_start(march_8 + 1, NEW_YORK) == utc("2026-03-09T04:00:00+00:00")
    now = datetime(2026, 3, 9, 4, 30, tzinfo=UTC)  # 00:30 EDT on the 9th
    assert local_day(micros(now), NEW_YORK) == march_8 + 1
    yesterday = TraitCondition("seen", Operator.BETWEEN, (CalendarDay("", -1), CalendarDay("", -1)))
    last_24h = TraitCondition("seen", Operator.AFTER, Relative("", -timedelta(hours=24)))
    cases = {  # seen at (UTC) -> (on the calendar day before, within the last 24 hours)
        "2026-03-08T04:29:59Z": (False, False),  # 23:29:59 EST on the 7th, 24 h + 1 s ago
        "2026-03-08T04:59:59Z": (False, True),  # 23:59:59 EST on the 7th
        "2026-03-08T05:00:00Z": (True, True),  # 00:00 EST on the 8th
        "2026-03-09T03:59:59Z": (True, True),  # 23:59:59 EDT on the 8th
        "2026-03-09T04:00:00Z": (False, True),  # 00:00 EDT on the 9th: today
    }
    for seen, expected in cases.items():
        facts = Facts({"seen": seen}, zone=NEW_YORK)
        assert (evaluate(yesterday, facts, now), evaluate(last_24h, facts, now)) == expected, seen


def test_the_tokyo_customer_who_paid_on_the_prescription_day_has_paid() -> None:
    reminder = from_yaml(
        """
        all:
          - {trait: prescribed_at, before: today}
          - not: {event: payment_completed, since: {trait: prescribed_at}}
        """
    )
    paid: EventFacts = {"payment_completed": [(datetime(2026, 2, 28, 23, tzinfo=UTC), {})]}
    now = datetime(2026, 3, 2, 3, tzinfo=UTC)
    in_tokyo = Facts({"prescribed_at": "2026-03-01"}, paid, zone=TOKYO)
    assert not evaluate(reminder, in_tokyo, now)
    # Read in UTC, as before, she would have paid the day before and be reminded.
    assert evaluate(reminder, Facts({"prescribed_at": "2026-03-01"}, paid), now)


def test_date_literals_compare_whole_local_days() -> None:
    on_the_first = Facts({"at": "2026-12-01T23:30:00+09:00"}, zone=TOKYO)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    day = Day(date(2026, 12, 1))
    assert not evaluate(TraitCondition("at", Operator.BEFORE, day), on_the_first, now)
    assert not evaluate(TraitCondition("at", Operator.AFTER, day), on_the_first, now)
    assert evaluate(TraitCondition("at", Operator.BETWEEN, (day, day)), on_the_first, now)
    wall = Wall(datetime(2026, 12, 1, 23))
    assert evaluate(TraitCondition("at", Operator.AFTER, wall), on_the_first, now)


YAML_FORMS = """
all:
  - {trait: a, before: today}
  - {trait: a, after: {days_ago: 3}}
  - {trait: a, between: [{days_ago: 7}, {days_from_now: 2}]}
  - {trait: a, between: [{trait: b, days: -1}, {trait: b, days: 1}]}
  - {trait: a, before: {trait: b, days: 2}}
  - {trait: a, before: 2026-12-01}
  - {trait: a, after: 2026-12-01T09:00}
  - {trait: a, after: 2026-12-01T09:00:00+09:00}
  - {event: paid, since: {days_ago: 1}}
"""


def test_calendar_points_read_and_round_trip_in_yaml_and_proto() -> None:
    rule = from_yaml(YAML_FORMS)
    assert [leaf.operand for leaf in rule.rules[:5]] == [  # type: ignore[union-attr]
        CalendarDay("", 0),
        CalendarDay("", -3),
        (CalendarDay("", -7), CalendarDay("", 2)),
        (CalendarDay("b", -1), CalendarDay("b", 1)),
        CalendarDay("b", 2),
    ]
    assert rule.rules[5].operand == Day(date(2026, 12, 1))  # type: ignore[union-attr]
    assert rule.rules[6].operand == Wall(datetime(2026, 12, 1, 9))  # type: ignore[union-attr]
    assert rule.rules[7].operand == At(datetime(2026, 12, 1, tzinfo=UTC))  # type: ignore[union-attr]
    assert rule.rules[8].since == CalendarDay("", -1)  # type: ignore[union-attr]
    assert from_yaml(to_yaml(rule)) == rule
    assert from_proto(to_proto(rule)) == rule
    assert is_time_dependent(from_yaml("{trait: a, before: today}"))
    assert not is_time_dependent(from_yaml("{trait: a, before: {trait: b, days: 2}}"))
    assert "$time_zone" in dependencies(from_yaml("{trait: a, before: 2026-12-01}")).traits
    assert "$time_zone" not in dependencies(from_yaml("{event: paid, within: 1d}")).traits


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{trait: a, between: [2026-12-02, 2026-12-01]}", "rule.trait.value"),
        ("{trait: a, between: [2026-12-01T10:00Z, 2026-12-01T09:00Z]}", "rule.trait.value"),
        ("{trait: a, between: [{ago: 1d}, {ago: 2d}]}", "rule.trait.value"),
        ("{trait: a, between: [{days_ago: 1}, {days_ago: 2}]}", "rule.trait.value"),
        ("{trait: a, between: [{trait: b, days: 1}, {trait: b, days: 0}]}", "rule.trait.value"),
        ("{trait: a, between: [{days_ago: 1}, now]}", "rule.trait.value"),
        ("{trait: a, before: {days_ago: 40000}}", "rule.trait.relative_to.days"),
        ("{trait: a, before: {days_ago: 1.5}}", "rule.trait.relative_to.days_ago"),
        ("{event: e, since: {trait: b, days: 1}}", "rule.event.since.days"),
        ("{trait: a, before: 2026-13-01}", "rule.trait.value"),
    ],
)
def test_reversed_or_impossible_time_bounds_are_refused_naming_the_field(
    text: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        from_yaml(text)
    assert refused.value.field == field


def test_a_proto_point_cannot_be_both_elapsed_and_calendar_days() -> None:
    point = segment_pb2.RelativeTime(days=1)
    point.offset.FromTimedelta(timedelta(hours=1))
    rule = segment_pb2.Rule(
        trait=segment_pb2.TraitCondition(
            trait="a", operator=segment_pb2.OPERATOR_BEFORE, relative_to=point
        )
    )
    with pytest.raises(InvalidArgument) as refused:
        from_proto(rule)
    assert refused.value.field == "rule.trait.relative_to.offset"


def test_since_a_calendar_day_counts_from_its_local_start() -> None:
    rule = validate(Not(EventCondition("paid", since=CalendarDay("", 0))))
    now = datetime(2026, 3, 1, 3, tzinfo=UTC)  # 12:00 in Tokyo
    paid_at = datetime(2026, 2, 28, 15, tzinfo=UTC)  # 00:00 in Tokyo
    facts = Facts(events={"paid": [(paid_at, {})]}, zone=TOKYO)
    assert not evaluate(rule, facts, now)
    early = Facts(events={"paid": [(paid_at - timedelta(microseconds=1), {})]}, zone=TOKYO)
    assert evaluate(rule, early, now)
