"""The SQL compiler agrees with the Python evaluator: generated rules over generated profiles
(mixed-type traits, dates in several ISO forms, events with properties on window boundaries),
stored in a real database (SQLite, and PostgreSQL when configured).

Time zones are generated too (the profile's own, an invalid one, the workspace's), with dates
and events exactly on local midnights and window edges, and calendar-day points.
"""

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import dates as calendar_dates
from engage import db
from engage.rules.evaluate import Facts, evaluate
from engage.rules.language import (
    NUMBER_OPERATORS,
    All,
    AnyOf,
    At,
    CalendarDay,
    Day,
    EventCondition,
    InSegment,
    Not,
    Operator,
    PropertyCondition,
    Relative,
    Rule,
    Sample,
    TraitCondition,
    Wall,
    micros,
    validate,
)
from engage.rules.proto import from_proto, to_proto
from services.segments.models import Profile, ProfileEvent, WorkspaceSettings, document_text
from services.segments.rules_sql import count_members, member_ids
from tests.harness import Databases
from tests.rules import from_yaml, to_yaml

MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
NOW = datetime(2025, 3, 20, 9, 30, tzinfo=UTC)
HALF_DAY = timedelta(hours=12)
# Rule paths: nested, a quoted key holding a dot, a key of digits (never an array index),
# non-ASCII keys; and the top-level keys of generated traits, some holding objects.
KEYS = ["a", "b", "when", "plan.end", '"plan.end"', "plan.0", "会員ランク", "prénom.usuel"]
TRAIT_KEYS = ["a", "b", "when", "plan", "plan.end", "会員ランク", "prénom"]
NESTED_KEYS = ["end", "usuel", "sku", "0"]
EVENT_NAMES = ["search", "purchase"]
PROPERTIES = ["route", "n", "item.sku", "路線"]
PROPERTY_KEYS = ["route", "n", "item", "路線"]
SEGMENTS = ["vip", "churned"]

# --- rules ---------------------------------------------------------------------------------

numbers = st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0])
# Texts that are numbers or booleans to a rule ("1", "true") and texts that are not ("01").
number_texts = st.sampled_from(["1", "0.5", "-2", "3.0", "01", "1e0", " 1", "+1", "true", "false"])
strings = st.one_of(st.sampled_from(["", "a", "ab", "NRT-HNL", "2025-03-19"]), number_texts)
scalars = st.one_of(numbers, strings, st.booleans())
offsets = st.integers(-30, 4).map(lambda n: n * HALF_DAY)
# Zones with and without DST (New York's began 2025-03-09, inside the generated range), one
# invalid (falls back to the workspace's zone), and none.
ZONES = ["", "Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", "UTC", "Not/AZone"]
day_counts = st.integers(-16, 2)
days = offsets.map(lambda offset: Day((NOW + offset).date()))
walls = offsets.map(lambda offset: Wall((NOW + offset).replace(tzinfo=None)))
calendar_days = st.builds(CalendarDay, st.sampled_from(["", *KEYS]), day_counts)
points = st.one_of(
    offsets.map(lambda offset: At(NOW + offset)),
    offsets.map(lambda offset: Relative("", offset)),
    st.builds(Relative, st.sampled_from(KEYS), offsets),
    days,
    walls,
    calendar_days,
)


def _pair(values: list[Any]) -> tuple[Any, Any]:
    low, high = sorted(values)
    return (low, high)


def _value_operand(keys: list[str]) -> st.SearchStrategy[tuple[str, Operator, Any]]:
    key = st.sampled_from(keys)
    return st.one_of(
        st.tuples(key, st.sampled_from([Operator.EQUALS, Operator.NOT_EQUALS]), scalars),
        st.tuples(key, st.just(Operator.IN), st.lists(scalars, min_size=1, max_size=3).map(tuple)),
        st.tuples(key, st.just(Operator.CONTAINS), scalars),
        st.tuples(key, st.just(Operator.EXISTS), st.none()),
        st.tuples(key, st.sampled_from(sorted(NUMBER_OPERATORS)), numbers),
        st.tuples(
            key, st.just(Operator.BETWEEN), st.lists(numbers, min_size=2, max_size=2).map(_pair)
        ),
    )


def _time_operand() -> st.SearchStrategy[tuple[str, Operator, Any]]:
    key = st.sampled_from(KEYS)
    relative_pair = st.tuples(st.sampled_from(["", *KEYS]), offsets, offsets).map(
        lambda t: (Relative(t[0], min(t[1:])), Relative(t[0], max(t[1:])))
    )
    absolute_pair = st.tuples(offsets, offsets).map(lambda t: (At(NOW + min(t)), At(NOW + max(t))))
    day_pair = st.tuples(days, days).map(lambda t: tuple(sorted(t, key=lambda d: d.day)))
    calendar_pair = st.tuples(st.sampled_from(["", *KEYS]), day_counts, day_counts).map(
        lambda t: (CalendarDay(t[0], min(t[1:])), CalendarDay(t[0], max(t[1:])))
    )
    pairs = st.one_of(relative_pair, absolute_pair, day_pair, calendar_pair)
    return st.one_of(
        st.tuples(key, st.sampled_from([Operator.BEFORE, Operator.AFTER]), points),
        st.tuples(key, st.just(Operator.BETWEEN), pairs),
    )


traits = st.one_of(_value_operand(KEYS), _time_operand()).map(lambda t: TraitCondition(*t))
wheres = _value_operand(PROPERTIES).map(lambda t: PropertyCondition(*t))


@st.composite
def events(draw: st.DrawFn) -> EventCondition:
    # Small counts, so that counts equal to a bound are common.
    at_least = draw(st.integers(0, 3))
    since = draw(
        st.none()
        | st.builds(Relative, st.sampled_from(["", *KEYS]), offsets)
        | st.builds(CalendarDay, st.just(""), day_counts)
    )
    return EventCondition(
        event=draw(st.sampled_from(EVENT_NAMES)),
        where=tuple(draw(st.lists(wheres, max_size=2))),
        at_least=at_least,
        at_most=draw(st.none() | st.integers(at_least, 3)),
        within=draw(st.none() | st.integers(1, 20).map(lambda n: n * HALF_DAY)),
        since=since,
    )


leaves = st.one_of(
    traits,
    events(),
    st.sampled_from(SEGMENTS).map(InSegment),
    st.builds(Sample, st.sampled_from([0.0, 12.5, 50.0, 100.0]), st.sampled_from(["", "ab"])),
)
rules: st.SearchStrategy[Rule] = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda rs: All(tuple(rs))),
        st.lists(children, min_size=1, max_size=3).map(lambda rs: AnyOf(tuple(rs))),
        children.map(Not),
    ),
    max_leaves=8,
)

# --- profiles ------------------------------------------------------------------------------


def _date_text(moment: datetime, form: int) -> str:
    forms = [
        lambda m: m.date().isoformat(),
        lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda m: m.astimezone(_JST).isoformat(),
        lambda m: m.strftime("%Y-%m-%d %H:%M:%S.%f"),
        lambda m: m.strftime("%Y-%m-%dT%H:%M"),
        # .NET's 7-digit fraction, an offset without a colon, lower-case letters.
        lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%f1Z"),
        lambda m: m.astimezone(_JST).strftime("%Y-%m-%dT%H:%M:%S+0900"),
        lambda m: m.strftime("%Y-%m-%dt%H:%M:%Sz"),
    ]
    text: str = forms[form](moment)
    return text


_JST = timezone(timedelta(hours=9))


def _local_midnight(zone: str, day: int, micro: int) -> datetime:
    """A local midnight of `zone` (`day` days from NOW's), `micro` microseconds off."""
    local_zone = calendar_dates.profile_zone(zone)
    today = calendar_dates.local_day(micros(NOW), local_zone)
    start = calendar_dates.day_start(today + day, local_zone) + micro
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start)


# Instants exactly on (or a microsecond beside) a zone's local midnight: calendar-day edges.
midnights = st.builds(
    _local_midnight, st.sampled_from(ZONES[:4]), day_counts, st.sampled_from([0, 0, 1, -1])
)
dates = st.builds(
    _date_text,
    st.one_of(offsets.map(lambda offset: NOW + offset), midnights),
    st.integers(0, 7),
)
not_dates = st.sampled_from(["2025-02-30", "20250301", "2025-03-01Z", "March 1", "2025-3-1"])
scalar_values = st.one_of(
    numbers, st.integers(-2, 3), strings, st.booleans(), st.none(), dates, not_dates
)
arrays = st.lists(st.one_of(scalar_values, st.just(["a"]), st.just({"a": 1})), max_size=3)
values = st.one_of(scalar_values, arrays)
objects = st.dictionaries(st.sampled_from(NESTED_KEYS), values, min_size=1, max_size=3)


def _documents(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents with some of `keys`, each holding a value, an array or an object."""
    value_or_object = st.one_of(values, objects, arrays)
    return st.fixed_dictionaries({}, optional={key: value_or_object for key in keys})


@dataclass
class Person:
    traits: dict[str, Any]
    events: list[tuple[str, datetime, dict[str, Any]]]
    memberships: set[str]
    time_zone: str = ""


@dataclass
class Group:
    """Profiles of one workspace, and the workspace's time zone setting."""

    people: list[Person]
    workspace_zone: str = ""


event_times = st.one_of(
    st.builds(
        lambda n, micro: NOW + n * timedelta(hours=6) + timedelta(microseconds=micro),
        st.integers(-44, 4),
        st.sampled_from([0, 0, 1, -1]),
    ),
    midnights,
)
people = st.builds(
    Group,
    st.lists(
        st.builds(
            Person,
            _documents(TRAIT_KEYS),
            st.lists(
                st.tuples(
                    st.sampled_from(EVENT_NAMES),
                    event_times,
                    _documents(PROPERTY_KEYS),
                ),
                max_size=4,
            ),
            st.sets(st.sampled_from(SEGMENTS)),
            st.sampled_from(ZONES),
        ),
        min_size=3,
        max_size=6,
    ),
    st.sampled_from(ZONES[:3]),
)

# --- the database --------------------------------------------------------------------------


@dataclass
class Store:
    runner: asyncio.Runner
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
def store(databases: Databases) -> Iterator[Store]:
    """One migrated database per test; each example writes to a workspace of its own."""
    with asyncio.Runner() as runner:
        engine, sessions = runner.run(db.open_database(databases.url("segments"), MIGRATIONS))
        yield Store(runner, sessions)
        runner.run(engine.dispose())


async def _write(sessions: async_sessionmaker[AsyncSession], workspace: str, group: Group) -> None:
    async with db.transaction(sessions, workspace) as session:
        if group.workspace_zone:
            session.add(
                WorkspaceSettings(
                    workspace=workspace, time_zone=group.workspace_zone, update_time=NOW
                )
            )
            await session.flush()
        for index, person in enumerate(group.people):
            profile_id = f"{workspace}-{index}"
            session.add(
                Profile(
                    id=profile_id,
                    workspace=workspace,
                    traits=document_text(person.traits),
                    time_zone=person.time_zone,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            for number, (name, at, properties) in enumerate(person.events):
                session.add(
                    ProfileEvent(
                        workspace=workspace,
                        message_id=f"{profile_id}-{number}",
                        profile_id=profile_id,
                        type=1,
                        event=name,
                        timestamp=at,
                        payload=b"",
                        properties=document_text(properties),
                    )
                )
            for segment in person.memberships:
                await session.exec(
                    sa.text(  # type: ignore[call-overload]
                        "INSERT INTO segment_memberships VALUES (:w, :s, :p, :at)"
                    ).bindparams(w=workspace, s=segment, p=profile_id, at=NOW)
                )


def _facts(profile_id: str, person: Person, workspace_zone: str) -> Facts:
    stored = json.loads(json.dumps(person.traits))
    by_name: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for name, at, properties in person.events:
        by_name.setdefault(name, []).append((at, json.loads(json.dumps(properties))))
    zone = calendar_dates.profile_zone(person.time_zone, workspace_zone)
    return Facts(stored, by_name, frozenset(person.memberships), profile_id, zone)


async def _check(store: Store, rule: Rule, group: Group) -> None:
    workspace = uuid.uuid4().hex[:12]
    await _write(store.sessions, workspace, group)
    expected = sorted(
        f"{workspace}-{index}"
        for index, person in enumerate(group.people)
        if evaluate(rule, _facts(f"{workspace}-{index}", person, group.workspace_zone), NOW)
    )
    # Shown by --hypothesis-show-statistics: how often a rule splits the profiles.
    if hypothesis.currently_in_test_context():
        hypothesis.event("split" if 0 < len(expected) < len(group.people) else "all or none")
    async with db.reading(store.sessions, workspace) as session:
        assert await member_ids(session, workspace, rule, NOW) == expected, to_yaml(rule)
        assert await count_members(session, workspace, rule, NOW) == len(expected)


# Pinned calendar cases, run first on every run. NOW is 2025-03-20T09:30Z: 18:30 in Tokyo,
# 05:30 EDT in New York, whose DST began on 2025-03-09 (local days from then start at 04:00Z).
def _paid(at: str) -> list[tuple[str, datetime, dict[str, Any]]]:
    return [("purchase", datetime.fromisoformat(at), {})]


def _dated(*texts: str, zone: str = "America/New_York") -> list[Person]:
    return [Person({"when": text}, [], set(), zone) for text in texts]


YESTERDAY_IN_NEW_YORK = (
    "2025-03-19T04:00:00Z",  # 00:00 EDT: in
    "2025-03-19T03:59:59.999999Z",  # 23:59:59.999999 on the 18th: out
    "2025-03-20T03:59:59.9999999Z",  # the 19th's last microsecond (7-digit fraction): in
    "2025-03-20t04:00:00z",  # today: out
    "2025-03-19",  # the date itself: in
)
CALENDAR_EXAMPLES: list[tuple[Rule, Group, list[int]]] = [
    # The Tokyo customer who paid at 08:00 JST on the prescription day has paid; in UTC
    # (no zone; an invalid one falls back) she paid the day before.
    (
        Not(EventCondition("purchase", since=Relative("when"))),
        Group(
            [
                Person({"when": "2025-03-19"}, _paid("2025-03-18T23:00:00+00:00"), set(), zone)
                for zone in ("Asia/Tokyo", "", "Not/AZone")
            ]
        ),
        [1, 2],
    ),
    # The workspace's zone stands in for a missing or invalid one.
    (
        Not(EventCondition("purchase", since=Relative("when"))),
        Group(
            [
                Person({"when": "2025-03-19"}, _paid("2025-03-18T23:00:00+00:00"), set(), zone)
                for zone in ("", "Not/AZone", "America/New_York")
            ],
            "Asia/Tokyo",
        ),
        [2],
    ),
    (
        TraitCondition("when", Operator.BETWEEN, (CalendarDay("", -1), CalendarDay("", -1))),
        Group(_dated(*YESTERDAY_IN_NEW_YORK)),
        [0, 2, 4],
    ),
    (
        TraitCondition("when", Operator.BEFORE, Day(date(2025, 3, 19))),
        Group(_dated(*YESTERDAY_IN_NEW_YORK)),
        [1],
    ),
    (
        TraitCondition("when", Operator.AFTER, CalendarDay("", -2)),
        Group(_dated(*YESTERDAY_IN_NEW_YORK)),
        [0, 2, 3, 4],
    ),
    (
        TraitCondition("when", Operator.AFTER, Wall(datetime(2025, 3, 19))),
        Group(_dated(*YESTERDAY_IN_NEW_YORK)),
        [2, 3],
    ),
    # Since the start of a local day across DST: 2025-03-10 00:00 EDT is 04:00Z, 9 days and
    # 5 h 30 min before NOW, not 10 x 24 h.
    (
        EventCondition("purchase", since=CalendarDay("", -10)),
        Group(
            [
                Person({}, _paid(at), set(), "America/New_York")
                for at in ("2025-03-10T04:00:00+00:00", "2025-03-10T03:59:59.999999+00:00")
            ]
        ),
        [0],
    ),
    # Days from a trait's local day, across the DST change of 2025-03-09.
    (
        TraitCondition("b", Operator.BEFORE, CalendarDay("when", 2)),
        Group(
            [
                Person({"when": "2025-03-08T23:30:00-05:00", "b": b}, [], set(), "America/New_York")
                for b in ("2025-03-09T23:59:59-04:00", "2025-03-10T00:00:00-04:00")
            ]
        ),
        [0],
    ),
]


@pytest.mark.parametrize(("rule", "group", "expected"), CALENDAR_EXAMPLES)
def test_calendar_rules_mean_what_the_marketer_wrote(
    store: Store, rule: Rule, group: Group, expected: list[int]
) -> None:
    """The evaluator picks the profiles a marketer expects; `_check` holds SQL to the same."""
    found = [
        index
        for index, person in enumerate(group.people)
        if evaluate(rule, _facts(str(index), person, group.workspace_zone), NOW)
    ]
    assert found == expected, to_yaml(rule)
    store.runner.run(_check(store, rule, group))


def _with_examples(test: Any) -> Any:
    for rule, group, _expected in CALENDAR_EXAMPLES:
        test = example(rule=rule, group=group)(test)
    return test


def _searched(times: int, **properties: Any) -> Person:
    events = [("search", NOW - n * HALF_DAY, properties) for n in range(times)]
    return Person({}, events, set())


def _traits(*documents: dict[str, Any]) -> Group:
    return Group([Person(document, [], set()) for document in documents])


# Pinned boundaries, run on every run: counts equal to at_least / at_most and numbers equal to
# a bound, so a `>` written for `>=` (or `<` for `<=`) in either side fails every time.
COUNTED = Group([_searched(n) for n in range(4)])
AT_BOUND = _traits({"a": 1}, {"a": "1"}, {"a": 0.5}, {"a": 3}, {"a": "3.0"}, {"a": [1]}, {})
VALUE_EXAMPLES: list[tuple[Rule, Group]] = [
    (EventCondition("search", at_least=2), COUNTED),
    (EventCondition("search", at_least=1, at_most=2), COUNTED),
    (EventCondition("search", at_least=0, at_most=2), COUNTED),
    (EventCondition("search", at_least=0, at_most=0), COUNTED),
    (EventCondition("search", at_least=3, at_most=3), COUNTED),
    (
        EventCondition("search", (PropertyCondition("n", Operator.GREATER_OR_EQUAL, 1.0),)),
        Group([_searched(1, n=1), _searched(1, n="1"), _searched(1, n=0.5)]),
    ),
    (TraitCondition("a", Operator.GREATER_OR_EQUAL, 1.0), AT_BOUND),
    (TraitCondition("a", Operator.GREATER_THAN, 1.0), AT_BOUND),
    (TraitCondition("a", Operator.LESS_OR_EQUAL, 1.0), AT_BOUND),
    (TraitCondition("a", Operator.LESS_THAN, 3.0), AT_BOUND),
    (TraitCondition("a", Operator.BETWEEN, (1.0, 3.0)), AT_BOUND),
    (TraitCondition("a", Operator.EQUALS, "1"), AT_BOUND),
    (TraitCondition("a", Operator.NOT_EQUALS, 1.0), AT_BOUND),
    (Not(TraitCondition("a", Operator.IN, (1.0, "x"))), AT_BOUND),
    (TraitCondition("a", Operator.CONTAINS, 1.0), AT_BOUND),
    (
        TraitCondition("plan.end", Operator.EQUALS, True),
        _traits({"plan": {"end": "true"}}, {"plan.end": True}, {"plan": [{"end": True}]}),
    ),
    (
        TraitCondition('"plan.end"', Operator.IN, ("a", 0.5)),
        _traits({"plan.end": ["b", "0.5"]}, {"plan": {"end": "a"}}, {"plan.end": None}),
    ),
    (
        TraitCondition("会員ランク", Operator.EXISTS),
        _traits({"会員ランク": "gold"}, {"会員ランク": None}, {"prénom": {"usuel": 1}}),
    ),
]


def _with_value_examples(test: Any) -> Any:
    for rule, group in VALUE_EXAMPLES:
        test = example(rule=rule, group=group)(test)
    return test


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@_with_examples
@_with_value_examples
@given(rule=rules, group=people)
def test_sql_members_are_the_evaluators_members(store: Store, rule: Rule, group: Group) -> None:
    validate(rule)
    assert from_proto(to_proto(rule)) == rule
    assert from_yaml(to_yaml(rule)) == rule
    store.runner.run(_check(store, rule, group))
