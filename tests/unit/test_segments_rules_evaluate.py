"""The Python evaluator: value types, missing traits, dates, event counts and windows, samples."""

from datetime import UTC, datetime, timedelta
from typing import Any

from engage.rules.evaluate import Facts, evaluate
from engage.rules.language import Sample
from tests.rules import from_yaml

NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def matches(rule: str, traits: dict[str, Any] | None = None, **facts: Any) -> bool:
    return evaluate(from_yaml(rule), Facts(traits=traits or {}, **facts), NOW)


def test_numbers_match_numbers_and_texts_that_are_plain_decimals() -> None:
    assert matches("{trait: n, equals: 1}", {"n": 1.0})
    assert matches("{trait: n, equals: 42}", {"n": "42"})
    assert matches("{trait: n, equals: -4.5}", {"n": "-4.50"})
    for not_plain in ("0x2A", " 42", "42 ", "+42", "4.2e1", "042", "42.", ".5", "\uff14\uff12"):
        assert not matches("{trait: n, equals: 42}", {"n": not_plain}), not_plain
    assert not matches("{trait: n, equals: 1}", {"n": True})
    assert matches("{trait: n, greater_than: 2}", {"n": 2.5})
    assert matches("{trait: n, greater_than: 2}", {"n": "3"})
    assert not matches("{trait: n, greater_than: 2}", {"n": "3 items"})
    assert matches("{trait: n, between: [1, 3]}", {"n": 3})
    assert matches("{trait: n, between: [1, 3]}", {"n": "1"})


def test_a_text_operand_that_is_a_number_equals_a_number_trait() -> None:
    assert matches("{trait: n, equals: '42'}", {"n": 42})
    assert matches("{trait: n, equals: '42'}", {"n": "42"})
    # Two texts compare as texts: zip codes keep their zeros.
    assert matches("{trait: zip, equals: '007'}", {"zip": "007"})
    assert not matches("{trait: zip, equals: '007'}", {"zip": "7"})
    assert not matches("{trait: zip, equals: '007'}", {"zip": 7})
    assert not matches("{trait: zip, equals: 7}", {"zip": "007"})
    assert not matches("{trait: n, equals: '42.0'}", {"n": "42"})


def test_equal_operands_of_other_types_are_told_apart_whichever_ran_first() -> None:
    """Python holds 1 == 1.0 == True; the rules do not (`equals: 1` never matches `true`)."""
    assert matches("{trait: n, equals: 1}", {"n": 1})
    assert not matches("{trait: n, equals: true}", {"n": 1})
    assert matches("{trait: n, in: [true]}", {"n": True})
    assert not matches("{trait: n, in: [1]}", {"n": True})
    assert matches("{trait: n, equals: 1.0}", {"n": "1"})
    assert not matches("{trait: n, equals: true}", {"n": "1"})


def test_text_operands_match_the_same_text_alone_and_inside_arrays() -> None:
    assert matches("{trait: plan, equals: pro}", {"plan": "pro"})
    assert matches("{trait: tags, equals: vip}", {"tags": ["new", "vip"]})
    assert not matches("{trait: tags, equals: vip}", {"tags": [["vip"], {"vip": 1}]})
    assert matches("{trait: plan, not_equals: pro}", {})
    assert not matches("{trait: tags, not_equals: vip}", {"tags": ["vip"]})
    assert matches("{trait: country, in: [JP, US]}", {"country": ["FR", "US"]})
    assert not matches("{trait: country, in: [JP, US]}", {"country": [{"JP": 1}, ["US"]]})


def test_booleans_match_booleans_and_the_texts_true_and_false() -> None:
    assert matches("{trait: opted_in, equals: true}", {"opted_in": True})
    assert matches("{trait: opted_in, equals: true}", {"opted_in": "true"})
    assert matches("{trait: opted_in, equals: 'true'}", {"opted_in": True})
    assert not matches("{trait: opted_in, equals: true}", {"opted_in": "True"})
    assert not matches("{trait: opted_in, equals: true}", {"opted_in": 1})
    assert matches("{trait: opted_in, in: [false]}", {"opted_in": "false"})


def test_not_equals_is_the_exact_negation_of_equals() -> None:
    for traits in ({"plan": "free"}, {"plan": 3}, {}, {"plan": None}, {"plan": {"a": 1}}):
        assert matches("{trait: plan, not_equals: pro}", traits)
        assert matches("not: {trait: plan, equals: pro}", traits)
    assert not matches("{trait: plan, not_equals: pro}", {"plan": "pro"})
    assert not matches("{trait: n, not_equals: 42}", {"n": "42"})
    assert matches("not: {trait: plan, in: [pro, team]}", {})
    assert not matches("not: {trait: plan, in: [pro, team]}", {"plan": "team"})


def test_missing_and_null_traits_match_only_negations() -> None:
    for traits in ({}, {"email": None}):
        assert not matches("{trait: email, exists: true}", traits)
        assert matches("{trait: email, exists: false}", traits)
        assert not matches("{trait: email, contains: '@'}", traits)
        assert not matches("{trait: email, equals: ''}", traits)
        assert not matches("{trait: email, less_than: 1}", traits)
    assert matches("{trait: tags, exists: true}", {"tags": []})


def test_in_and_contains() -> None:
    assert matches("{trait: drug, in: [pill, 2, true]}", {"drug": 2})
    assert matches("{trait: drug, in: [pill, 2, true]}", {"drug": "2"})
    assert not matches("{trait: drug, in: [pill, 2, true]}", {"drug": "tablet"})
    assert matches("{trait: email, contains: '@example.'}", {"email": "a@example.com"})
    assert not matches("{trait: email, contains: EXAMPLE}", {"email": "a@example.com"})
    assert not matches("{trait: code, contains: 4}", {"code": "x42"})


def test_arrays_hold_their_elements() -> None:
    tags = {"tags": ["vip", "early", 42, True, None, ["nested"]]}
    assert matches("{trait: tags, contains: vip}", tags)
    assert not matches("{trait: tags, contains: vi}", tags)  # elements, not substrings
    assert matches("{trait: tags, contains: '42'}", tags)
    assert matches("{trait: tags, contains: true}", tags)
    assert not matches("{trait: tags, contains: nested}", tags)
    assert matches("{trait: tags, in: [gold, early]}", tags)
    assert not matches("{trait: tags, in: [gold, silver]}", tags)
    assert matches("{trait: tags, equals: vip}", tags)
    assert not matches("{trait: tags, not_equals: vip}", tags)
    assert matches("{trait: tags, not_equals: gold}", tags)
    assert not matches("{trait: tags, greater_than: 1}", tags)  # an array is no number
    assert not matches("{trait: tags, contains: vip}", {"tags": []})
    assert not matches("{trait: tags, contains: vip}", {"tags": {"vip": True}})


def test_paths_read_nested_objects_and_quoted_keys() -> None:
    traits = {
        "address": {"city": "Tokyo", "geo": {"zip": "100-0001"}},
        "utm.source": "newsletter",
        "context": {"a.b": {"c": 1}},
        "items": [{"sku": "A1"}],
    }
    assert matches("{trait: address.city, equals: Tokyo}", traits)
    assert matches("{trait: address.geo.zip, equals: 100-0001}", traits)
    assert matches("""{trait: '"utm.source"', equals: newsletter}""", traits)
    assert not matches("{trait: utm.source, exists: true}", traits)
    assert matches("""{trait: 'context."a.b".c', equals: 1}""", traits)
    assert not matches("{trait: address.city.name, exists: true}", traits)
    assert not matches("{trait: items.sku, exists: true}", traits)  # never into an array
    assert not matches("{trait: items.0, exists: true}", traits)
    assert matches("{trait: address.country, not_equals: JP}", traits)
    assert matches("{trait: 会員ランク, equals: ゴールド}", {"会員ランク": "ゴールド"})


def test_nested_dates_anchor_relative_times() -> None:
    traits = {
        "subscription": {"started_at": (NOW - 40 * DAY).isoformat()},
        "renewal_at": (NOW - 5 * DAY).isoformat(),
    }
    assert matches("{trait: subscription.started_at, before: {ago: 30d}}", traits)
    renewed_late = "{trait: renewal_at, after: {trait: subscription.started_at, offset: 30d}}"
    assert matches(renewed_late, traits)
    assert not matches(renewed_late, {"renewal_at": traits["renewal_at"]})


def test_dates_compare_in_utc_whatever_the_offset_written() -> None:
    rule = "{trait: at, before: 2025-03-01T00:00:00Z}"
    assert matches(rule, {"at": "2025-03-01T08:59:59+09:00"})
    assert not matches(rule, {"at": "2025-03-01T09:00:00+09:00"})
    assert not matches(rule, {"at": "not a date"})
    assert not matches(rule, {"at": 1740787200})


def test_dates_relative_to_now_and_to_another_trait() -> None:
    prescribed = {"prescribed_at": (NOW - 17 * DAY).isoformat()}
    assert matches("{trait: prescribed_at, after: {ago: 18d}}", prescribed)
    assert not matches("{trait: prescribed_at, after: {ago: 17d}}", prescribed)
    cutoff_week = "{trait: ends_at, between: [now, {from_now: 7d}]}"
    assert matches(cutoff_week, {"ends_at": (NOW + 7 * DAY).isoformat()})
    assert not matches(cutoff_week, {"ends_at": (NOW + 8 * DAY).isoformat()})
    paid_late = "{trait: paid_at, after: {trait: prescribed_at, offset: 18d}}"
    assert matches(paid_late, {**prescribed, "paid_at": (NOW + 2 * DAY).isoformat()})
    assert not matches(paid_late, {**prescribed, "paid_at": (NOW + DAY).isoformat()})
    assert not matches(paid_late, {"paid_at": NOW.isoformat()})


def test_event_counts_within_a_window_with_property_filters() -> None:
    searches = {
        "search": [
            (NOW - 8 * DAY, {"route": "NRT-HNL"}),
            (NOW - 7 * DAY, {"route": "NRT-HNL"}),
            (NOW - DAY, {"route": "NRT-HNL", "adults": 2}),
            (NOW - DAY, {"route": "HND-OKA"}),
        ]
    }
    route = "where: [{property: route, equals: NRT-HNL}]"
    assert matches(f"{{event: search, within: 7d, at_least: 2, {route}}}", events=searches)
    assert not matches(f"{{event: search, within: 7d, at_least: 3, {route}}}", events=searches)
    assert matches(f"{{event: search, at_least: 3, {route}}}", events=searches)
    assert not matches(f"{{event: search, at_most: 2, {route}}}", events=searches)
    assert matches(f"{{event: search, at_most: 3, {route}}}", events=searches)
    assert matches(f"{{event: search, at_least: 3, at_most: 3, {route}}}", events=searches)
    item = "where: [{property: item.sku, equals: A1}]"
    assert not matches(f"{{event: search, {item}}}", events=searches)
    adults = "where: [{property: adults, greater_or_equal: 2}]"
    assert matches(f"{{event: search, {adults}}}", events=searches)
    assert not matches("{event: purchase}", events=searches)
    assert matches("not: {event: purchase}", events=searches)


def test_at_most_includes_never_and_zero_means_never() -> None:
    once: dict[str, Any] = {"paid": [(NOW - DAY, {"order": {"total": "12.5"}})]}
    assert matches("{event: paid, at_most: 2}", events={})
    assert matches("{event: paid, at_most: 2}", events=once)
    assert matches("{event: paid, at_most: 0}", events={})
    assert not matches("{event: paid, at_most: 0}", events=once)
    assert matches("{event: paid, at_least: 0}", events={})
    assert matches("{event: paid, at_least: 0, at_most: 1}", events=once)
    big = "where: [{property: order.total, greater_than: 10}]"
    assert matches(f"{{event: paid, {big}}}", events=once)
    assert matches(f"{{event: paid, at_most: 0, {big}}}", events={"paid": []})


def test_since_a_trait_counts_events_from_that_date_and_needs_the_date() -> None:
    prescribed = {"prescribed_at": (NOW - 10 * DAY).isoformat()}
    unpaid = "not: {event: payment_completed, since: {trait: prescribed_at}}"
    paid_before: dict[str, Any] = {"payment_completed": [(NOW - 11 * DAY, {})]}
    paid_after: dict[str, Any] = {"payment_completed": [(NOW - 10 * DAY, {})]}
    assert matches(unpaid, prescribed, events=paid_before)
    assert not matches(unpaid, prescribed, events=paid_after)
    # Never prescribed: "paid since the prescription" is false, so the negation holds.
    assert matches(unpaid, {}, events=paid_after)


def test_membership_of_other_segments() -> None:
    assert matches("{in_segment: vip}", memberships={"vip"})
    assert not matches("{in_segment: vip}", memberships={"churned"})


def test_samples_are_stable_sized_and_seeded() -> None:
    ids = [f"profile-{n}" for n in range(4000)]

    def sampled(seed: str, percent: float) -> set[str]:
        rule = Sample(percent, seed)
        return {i for i in ids if evaluate(rule, Facts(profile_id=i), NOW)}

    ten = sampled("a", 10)
    assert 340 < len(ten) < 460
    assert ten == sampled("a", 10)
    assert ten <= sampled("a", 20)
    assert ten != sampled("b", 10)
    assert sampled("a", 0) == set() and sampled("a", 100) == set(ids)
