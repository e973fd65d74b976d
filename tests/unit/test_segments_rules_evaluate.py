"""The Python evaluator: value types, missing traits, dates, event counts and windows, samples."""

from datetime import UTC, datetime, timedelta
from typing import Any

from services.segments.evaluate import Facts, evaluate
from services.segments.rules import Sample
from tests.rules import from_yaml

NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def matches(rule: str, traits: dict[str, Any] | None = None, **facts: Any) -> bool:
    return evaluate(from_yaml(rule), Facts(traits=traits or {}, **facts), NOW)


def test_numbers_compare_as_numbers_and_never_with_strings_or_booleans() -> None:
    assert matches("{trait: n, equals: 1}", {"n": 1.0})
    assert not matches("{trait: n, equals: 1}", {"n": "1"})
    assert not matches("{trait: n, equals: 1}", {"n": True})
    assert matches("{trait: n, greater_than: 2}", {"n": 2.5})
    assert not matches("{trait: n, greater_than: 2}", {"n": "3"})
    assert matches("{trait: n, between: [1, 3]}", {"n": 3})


def test_a_type_mismatch_is_false_even_for_not_equals() -> None:
    assert matches("{trait: plan, not_equals: pro}", {"plan": "free"})
    assert not matches("{trait: plan, not_equals: pro}", {"plan": 3})
    assert not matches("{trait: plan, not_equals: pro}", {})
    assert matches("not: {trait: plan, equals: pro}", {})


def test_missing_and_null_traits_match_only_their_negation() -> None:
    for traits in ({}, {"email": None}):
        assert not matches("{trait: email, exists: true}", traits)
        assert matches("{trait: email, exists: false}", traits)
        assert not matches("{trait: email, contains: '@'}", traits)
    assert matches("{trait: tags, exists: true}", {"tags": []})
    assert not matches("{trait: tags, contains: vip}", {"tags": ["vip"]})


def test_in_and_contains() -> None:
    assert matches("{trait: drug, in: [pill, 2, true]}", {"drug": 2})
    assert not matches("{trait: drug, in: [pill, 2, true]}", {"drug": "2"})
    assert matches("{trait: email, contains: '@example.'}", {"email": "a@example.com"})
    assert not matches("{trait: email, contains: EXAMPLE}", {"email": "a@example.com"})


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
    adults = "where: [{property: adults, greater_or_equal: 2}]"
    assert matches(f"{{event: search, {adults}}}", events=searches)
    assert not matches("{event: purchase}", events=searches)
    assert matches("not: {event: purchase}", events=searches)


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
