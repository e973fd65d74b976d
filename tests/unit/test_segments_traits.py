"""Pure profile rules: traits merge by event time, property sums, stored times as UTC."""

from datetime import UTC, datetime, timedelta

import pytest

from engage.clock import as_utc
from services.segments.traits import TraitState, parse_summed_properties, summed_amounts

T0 = datetime(2025, 3, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def test_newer_identify_overwrites_and_reports_changes() -> None:
    state = TraitState()
    assert state.apply({"plan": "free", "age": 30}, T0) == {"plan": "free", "age": 30}
    assert state.apply({"plan": "pro", "age": 30}, LATER) == {"plan": "pro"}
    assert state.values == {"plan": "pro", "age": 30}


def test_older_identify_loses_per_key_but_fills_new_keys() -> None:
    state = TraitState()
    state.apply({"plan": "pro"}, LATER)
    assert state.apply({"plan": "free", "city": "Osaka"}, T0) == {"city": "Osaka"}
    assert state.values == {"plan": "pro", "city": "Osaka"}


def test_same_time_identify_wins_so_replays_are_harmless() -> None:
    state = TraitState()
    state.apply({"plan": "pro"}, T0)
    assert state.apply({"plan": "pro"}, T0) == {}
    assert state.apply({"plan": "team"}, T0) == {"plan": "team"}


def test_merge_keeps_the_later_value_of_each_key() -> None:
    user = TraitState()
    user.apply({"plan": "pro", "name": "Ann"}, T0)
    anonymous = TraitState()
    anonymous.apply({"plan": "trial", "name": "A."}, LATER)
    anonymous.times["name"] = T0 - timedelta(days=1)
    user.merge(anonymous)
    assert user.values == {"plan": "trial", "name": "Ann"}


def test_trait_state_round_trips_through_storage() -> None:
    state = TraitState()
    state.apply({"a": [1, 2], "b": {"c": True}}, T0)
    loaded = TraitState.load('{"a": [1, 2], "b": {"c": true}}', state.dump_times())
    assert loaded == state


def test_claim_refuses_older_times() -> None:
    state = TraitState()
    assert state.claim("$time_zone", LATER)
    assert not state.claim("$time_zone", T0)
    assert state.claim("$time_zone", LATER)


def test_naive_times_from_sqlite_are_utc() -> None:
    assert as_utc(datetime(2025, 3, 1)) == T0


def test_merged_time_zone_is_the_one_set_by_the_later_event() -> None:
    user, anonymous = TraitState(), TraitState()
    user.claim("$time_zone", T0)
    anonymous.claim("$time_zone", LATER)
    assert user.merge_field(anonymous, "$time_zone", "Asia/Tokyo", "Europe/Paris") == "Europe/Paris"
    assert user.times["$time_zone"] == LATER
    older = TraitState()
    older.claim("$time_zone", T0 - timedelta(days=1))
    assert user.merge_field(older, "$time_zone", "Europe/Paris", "UTC") == "Europe/Paris"
    assert user.merge_field(older, "$locale", "", "ja-JP") == "ja-JP"
    assert user.merge_field(older, "$locale", "ja-JP", "") == "ja-JP"


def test_summed_properties_setting_parses_event_and_property() -> None:
    parsed = parse_summed_properties("S", " order_completed.revenue, app.opened.seconds ,")
    assert parsed == {("order_completed", "revenue"), ("app.opened", "seconds")}
    assert parse_summed_properties("S", "") == frozenset()


@pytest.mark.parametrize("text", ["revenue", ".revenue", "order_completed."])
def test_summed_property_without_event_or_property_names_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match=r"^ENGAGE_SUMMED_PROPERTIES: "):
        parse_summed_properties("ENGAGE_SUMMED_PROPERTIES", text)


def test_only_configured_numbers_are_summed() -> None:
    summed = frozenset({("order", "revenue"), ("order", "items"), ("order", "paid")})
    properties = {"revenue": 9.5, "items": "3", "paid": True, "tax": 1}
    assert summed_amounts("order", properties, summed) == {"revenue": 9.5}
    assert summed_amounts("refund", {"revenue": 1}, summed) == {}
