"""The rule language: its YAML and proto forms, validation with field paths, what a rule reads."""

from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf import struct_pb2

from engage.durations import format_duration, parse_duration
from engage.errors import InvalidArgument
from engage.rules.language import (
    All,
    AnyOf,
    Day,
    EventCondition,
    InSegment,
    Not,
    Operator,
    PropertyCondition,
    Relative,
    Sample,
    TraitCondition,
    date_micros,
    dependencies,
    is_time_dependent,
    micros,
    validate,
)
from engage.rules.proto import from_proto, to_proto
from engage.v1 import segment_pb2
from tests.rules import from_yaml, to_yaml

DAY = timedelta(days=1)
STORY_1 = """
all:
  - {trait: drug_type, in: [pill, tablet]}
  - {trait: prescribed_at, between: [{ago: 18d}, {ago: 1d}]}
  - not: {event: payment_completed, since: {trait: prescribed_at}}
  - any:
      - {event: app_opened, at_least: 2, at_most: 5, within: 12h}
      - {trait: contract_months, greater_or_equal: 11}
      - {in_segment: active}
      - {sample: {percent: 12.5, seed: reminder-ab}}
  - {trait: email, exists: false}
  - {trait: renewal_at, after: {trait: prescribed_at, offset: -7d}}
  - {trait: signed_up_at, before: 2025-01-01}
  - {event: search, within: 7d, where: [{property: route, equals: NRT-HNL}]}
"""
PARSED = All(
    (
        TraitCondition("drug_type", Operator.IN, ("pill", "tablet")),
        TraitCondition(
            "prescribed_at", Operator.BETWEEN, (Relative("", -18 * DAY), Relative("", -DAY))
        ),
        Not(EventCondition("payment_completed", since=Relative("prescribed_at"))),
        AnyOf(
            (
                EventCondition("app_opened", at_least=2, at_most=5, within=timedelta(hours=12)),
                TraitCondition("contract_months", Operator.GREATER_OR_EQUAL, 11.0),
                InSegment("active"),
                Sample(12.5, "reminder-ab"),
            )
        ),
        Not(TraitCondition("email", Operator.EXISTS)),
        TraitCondition("renewal_at", Operator.AFTER, Relative("prescribed_at", -7 * DAY)),
        TraitCondition("signed_up_at", Operator.BEFORE, Day(date(2025, 1, 1))),
        EventCondition(
            "search",
            where=(PropertyCondition("route", Operator.EQUALS, "NRT-HNL"),),
            within=7 * DAY,
        ),
    )
)


def test_yaml_reads_into_the_typed_model() -> None:
    assert from_yaml(STORY_1) == PARSED


def test_yaml_and_proto_forms_round_trip() -> None:
    assert from_yaml(to_yaml(PARSED)) == PARSED
    assert from_proto(to_proto(PARSED)) == PARSED
    assert from_proto(segment_pb2.Rule.FromString(to_proto(PARSED).SerializeToString())) == PARSED


def test_relative_between_travels_as_an_anchor_and_two_offsets() -> None:
    trait = to_proto(PARSED.rules[1]).trait
    assert trait.operator == segment_pb2.OPERATOR_BETWEEN
    assert trait.HasField("relative_to") and trait.relative_to.trait == ""
    assert [v.string_value for v in trait.value.list_value.values] == ["-18d", "-1d"]


def test_durations_parse_and_print_in_the_largest_exact_unit() -> None:
    assert parse_duration("1d12h", "f") == timedelta(hours=36)
    assert parse_duration("-7d", "f") == -7 * DAY
    assert format_duration(timedelta(hours=36)) == "1d12h"
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(-14 * DAY) == "-2w"
    for bad in ("", "7", "d", "7 days", "1.5d"):
        with pytest.raises(InvalidArgument):
            parse_duration(bad, "f")


def test_dates_are_iso_extended_strings_read_as_utc() -> None:
    utc = micros(datetime(2025, 3, 1, tzinfo=UTC))
    assert date_micros("2025-03-01") == utc
    assert date_micros("2025-03-01T09:00:00+09:00") == utc
    assert date_micros("2025-03-01T00:00:00Z") == utc
    assert date_micros("2025-03-01 00:00:00.000001") == utc + 1
    for not_a_date in (
        "2025-02-30",
        "20250301",
        "2025-3-1",
        "March 1",
        20250301,
        None,
        "0000-01-01",
    ):
        assert date_micros(not_a_date) is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("all: [{trait: a, equals: 1}, {trait: b, equals: [1]}]", "rule.all.rules[1].trait.value"),
        ("any: [{trait: a, equals: 1, exists: true}]", "rule.any.rules[0].trait.operator"),
        ("not: {trait: a, resembles: 1}", "rule.not.trait.resembles"),
        ("{trait: a, greater_than: x}", "rule.trait.value"),
        ("{trait: 'a\"b', exists: true}", "rule.trait.trait"),
        ("{trait: a, before: {ago: 7x}}", "rule.trait.relative_to"),
        ("{trait: a, between: [{ago: 1d}, {trait: b}]}", "rule.trait.value"),
        ("{trait: a, between: [3, 1]}", "rule.trait.value"),
        ("{event: e, at_least: 2, at_most: 1}", "rule.event.at_most"),
        ("{event: e, at_least: -1}", "rule.event.at_least"),
        ("{event: e, at_most: -1}", "rule.event.at_most"),
        ("{event: e, at_least: 1.5}", "rule.event.at_least"),
        ("{trait: a., exists: true}", "rule.trait.trait"),
        ("{trait: 'a.\"b', exists: true}", "rule.trait.trait"),
        ("{trait: a.b.c.d.e.f.g.h.i, exists: true}", "rule.trait.trait"),
        ("{event: e, where: [{property: 'x..y', equals: 1}]}", "rule.event.where[0].property"),
        ("{trait: a, before: {trait: 'b.'}}", "rule.trait.relative_to.trait"),
        ("{event: e, within: -1d}", "rule.event.within"),
        ("{event: e, since: 2025-01-01}", "rule.event.since"),
        ("{event: e, where: [{property: p, before: {ago: 1d}}]}", "rule.event.where[0].operator"),
        ("{in_segment: Not An Id}", "rule.in_segment.segment"),
        ("{sample: {percent: 101}}", "rule.sample.percent"),
        ("{trait: a, equals: 1, event: e}", "rule"),
        ("all: []", "rule.all.rules"),
        ("[1, 2]", "rule"),
    ],
)
def test_invalid_rules_name_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        from_yaml(text)
    assert raised.value.field == field


def test_proto_errors_carry_the_callers_prefix() -> None:
    rule = segment_pb2.Rule(
        any=segment_pb2.RuleGroup(
            rules=[segment_pb2.Rule(trait=segment_pb2.TraitCondition(trait="plan"))]
        )
    )
    with pytest.raises(InvalidArgument) as raised:
        from_proto(rule, "segment.rule")
    assert raised.value.field == "segment.rule.any.rules[0].trait.operator"
    with pytest.raises(InvalidArgument) as raised:
        from_proto(segment_pb2.Rule(), "segment.rule")
    assert raised.value.field == "segment.rule"
    bad_value = segment_pb2.TraitCondition(
        trait="plan",
        operator=segment_pb2.OPERATOR_IN,
        value=struct_pb2.Value(string_value="pro"),
    )
    with pytest.raises(InvalidArgument) as raised:
        from_proto(segment_pb2.Rule(trait=bad_value), "rule")
    assert raised.value.field == "rule.trait.value"


def test_in_segment_accepts_a_resource_name() -> None:
    reference = segment_pb2.SegmentReference(segment="workspaces/acme/segments/vip")
    assert from_proto(segment_pb2.Rule(in_segment=reference)) == InSegment("vip")


def test_limits_on_depth_and_size() -> None:
    leaf = TraitCondition("a", Operator.EXISTS)
    deep: Not | TraitCondition = leaf
    for _ in range(9):
        deep = Not(deep)
    validate(deep)
    with pytest.raises(InvalidArgument) as raised:
        validate(Not(deep))
    assert raised.value.field == "rule" + ".not" * 10
    validate(All((leaf,) * 100))
    with pytest.raises(InvalidArgument, match="101 conditions"):
        validate(All((leaf,) * 101))


def test_dependencies_list_every_trait_event_and_segment_read() -> None:
    reads = dependencies(PARSED)
    assert reads.traits == {
        "drug_type",
        "prescribed_at",
        "contract_months",
        "email",
        "renewal_at",
        "signed_up_at",
        # Dates are read on the profile's calendar: a new time zone can change the result.
        "$time_zone",
    }
    assert reads.events == {"payment_completed", "app_opened", "search"}
    assert reads.segments == {"active"}


def test_time_dependence_is_anything_relative_to_now() -> None:
    assert is_time_dependent(PARSED)
    assert not is_time_dependent(from_yaml("{trait: a, after: {trait: b, offset: 18d}}"))
    assert not is_time_dependent(from_yaml("{event: paid, since: {trait: prescribed_at}}"))
    assert not is_time_dependent(from_yaml("{trait: a, before: 2025-01-01}"))
    assert is_time_dependent(from_yaml("{event: paid, within: 18d}"))
    assert is_time_dependent(from_yaml("{trait: a, between: [now, {from_now: 7d}]}"))


def test_in_segment_takes_an_id_or_a_name_of_the_rules_own_workspace() -> None:
    def reference(segment: str) -> segment_pb2.Rule:
        return segment_pb2.Rule(in_segment=segment_pb2.SegmentReference(segment=segment))

    assert from_proto(reference("pro"), workspace="acme") == InSegment("pro")
    named = reference("workspaces/acme/segments/pro")
    assert from_proto(named, workspace="acme") == InSegment("pro")
    for other in ("workspaces/globex/segments/pro", "segments/pro", "workspaces/acme/pro/x"):
        with pytest.raises(InvalidArgument) as error:
            from_proto(reference(other), workspace="acme")
        assert error.value.field == "rule.in_segment.segment"


def test_string_operands_with_u0000_are_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate(TraitCondition("plan", Operator.EQUALS, "pro\x00"))
    assert error.value.field == "rule.trait.value"
    with pytest.raises(InvalidArgument):
        validate(TraitCondition("plan", Operator.IN, ("a", "b\x00")))


@pytest.mark.parametrize(
    ("text", "at_least", "at_most"),
    [
        ("{event: e}", 1, None),
        ("{event: e, at_most: 2}", 0, 2),
        ("{event: e, at_most: 0}", 0, 0),
        ("{event: e, at_least: 0}", 0, None),
        ("{event: e, at_least: 0, at_most: 0}", 0, 0),
        ("{event: e, at_least: 1, at_most: 2}", 1, 2),
        ("{event: e, at_least: 3}", 3, None),
    ],
)
def test_counts_mean_what_was_written(text: str, at_least: int, at_most: int | None) -> None:
    rule = from_yaml(text)
    assert isinstance(rule, EventCondition)
    assert (rule.at_least, rule.at_most) == (at_least, at_most)
    assert from_yaml(to_yaml(rule)) == rule
    wire = segment_pb2.Rule.FromString(to_proto(rule).SerializeToString())
    assert from_proto(wire) == rule


def test_an_unset_count_and_a_count_of_zero_differ_on_the_wire() -> None:
    zero_and_one = segment_pb2.EventCondition(event="e", at_least=0, at_most=1)
    wire = segment_pb2.Rule.FromString(segment_pb2.Rule(event=zero_and_one).SerializeToString())
    assert from_proto(wire) == EventCondition("e", at_least=0, at_most=1)
    only_most = segment_pb2.Rule(event=segment_pb2.EventCondition(event="e", at_most=1))
    assert from_proto(only_most) == EventCondition("e", at_least=0, at_most=1)
    assert from_proto(segment_pb2.Rule(event=segment_pb2.EventCondition(event="e"))) == (
        EventCondition("e", at_least=1)
    )


def test_count_errors_use_the_yaml_words() -> None:
    with pytest.raises(InvalidArgument) as raised:
        from_yaml("{event: e, at_least: 3, at_most: 2}")
    assert str(raised.value).endswith("must not be less than at_least")


def test_paths_name_nested_keys_and_quoted_keys_with_dots() -> None:
    rule = from_yaml(
        """
        all:
          - {trait: address.city, equals: Tokyo}
          - {trait: '"utm.source".campaign', equals: spring}
          - {trait: renewal_at, before: {trait: subscription.started_at, offset: 30d}}
          - {event: order, where: [{property: product.sku, equals: A1}]}
        """
    )
    assert from_yaml(to_yaml(rule)) == rule
    assert from_proto(to_proto(rule)) == rule
    # Change detection works on top-level keys.
    assert dependencies(rule).traits == {
        "address",
        "utm.source",
        "renewal_at",
        "subscription",
        "$time_zone",
    }
