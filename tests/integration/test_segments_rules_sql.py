"""The SQL compiler agrees with the Python evaluator: generated rules over generated profiles
(mixed-type traits, dates in several ISO forms, events with properties on window boundaries),
stored in a real database (SQLite, and PostgreSQL when configured).
"""

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db
from services.segments.evaluate import Facts, evaluate
from services.segments.models import Profile, ProfileEvent
from services.segments.rules import (
    NUMBER_OPERATORS,
    All,
    AnyOf,
    At,
    EventCondition,
    InSegment,
    Not,
    Operator,
    PropertyCondition,
    Relative,
    Rule,
    Sample,
    TraitCondition,
    validate,
)
from services.segments.rules_proto import from_proto, to_proto
from services.segments.rules_sql import count_members, member_ids
from tests.harness import Databases
from tests.rules import from_yaml, to_yaml

MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
NOW = datetime(2025, 3, 20, 9, 30, tzinfo=UTC)
HALF_DAY = timedelta(hours=12)
KEYS = ["a", "b", "when", "plan.end"]
EVENT_NAMES = ["search", "purchase"]
PROPERTIES = ["route", "n"]
SEGMENTS = ["vip", "churned"]

# --- rules ---------------------------------------------------------------------------------

numbers = st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0])
strings = st.sampled_from(["", "a", "ab", "NRT-HNL", "2025-03-19"])
scalars = st.one_of(numbers, strings, st.booleans())
offsets = st.integers(-30, 4).map(lambda n: n * HALF_DAY)
points = st.one_of(
    offsets.map(lambda offset: At(NOW + offset)),
    offsets.map(lambda offset: Relative("", offset)),
    st.builds(Relative, st.sampled_from(KEYS), offsets),
)


def _pair(values: list[Any]) -> tuple[Any, Any]:
    low, high = sorted(values)
    return (low, high)


def _value_operand(keys: list[str]) -> st.SearchStrategy[tuple[str, Operator, Any]]:
    key = st.sampled_from(keys)
    return st.one_of(
        st.tuples(key, st.sampled_from([Operator.EQUALS, Operator.NOT_EQUALS]), scalars),
        st.tuples(key, st.just(Operator.IN), st.lists(scalars, min_size=1, max_size=3).map(tuple)),
        st.tuples(key, st.just(Operator.CONTAINS), strings),
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
    return st.one_of(
        st.tuples(key, st.sampled_from([Operator.BEFORE, Operator.AFTER]), points),
        st.tuples(key, st.just(Operator.BETWEEN), st.one_of(relative_pair, absolute_pair)),
    )


traits = st.one_of(_value_operand(KEYS), _time_operand()).map(lambda t: TraitCondition(*t))
wheres = _value_operand(PROPERTIES).map(lambda t: PropertyCondition(*t))


@st.composite
def events(draw: st.DrawFn) -> EventCondition:
    at_least = draw(st.integers(1, 2))
    since = draw(st.none() | st.builds(Relative, st.sampled_from(["", *KEYS]), offsets))
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
    ]
    text: str = forms[form](moment)
    return text


_JST = timezone(timedelta(hours=9))
dates = st.builds(_date_text, offsets.map(lambda offset: NOW + offset), st.integers(0, 4))
not_dates = st.sampled_from(["2025-02-30", "20250301", "2025-03-01Z", "March 1", "2025-3-1"])
values = st.one_of(
    numbers,
    st.integers(-2, 3),
    strings,
    st.booleans(),
    st.none(),
    dates,
    not_dates,
    st.just(["a", 1]),
    st.just({"a": 1}),
)


@dataclass
class Person:
    traits: dict[str, Any]
    events: list[tuple[str, datetime, dict[str, Any]]]
    memberships: set[str]


people = st.lists(
    st.builds(
        Person,
        st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=4),
        st.lists(
            st.tuples(
                st.sampled_from(EVENT_NAMES),
                st.builds(
                    lambda n, micro: NOW + n * timedelta(hours=6) + timedelta(microseconds=micro),
                    st.integers(-44, 4),
                    st.sampled_from([0, 0, 1, -1]),
                ),
                st.dictionaries(st.sampled_from(PROPERTIES), values, max_size=2),
            ),
            max_size=4,
        ),
        st.sets(st.sampled_from(SEGMENTS)),
    ),
    min_size=3,
    max_size=6,
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


async def _write(
    sessions: async_sessionmaker[AsyncSession], workspace: str, group: list[Person]
) -> None:
    async with db.transaction(sessions, workspace) as session:
        for index, person in enumerate(group):
            profile_id = f"{workspace}-{index}"
            session.add(
                Profile(
                    id=profile_id,
                    workspace=workspace,
                    traits=json.dumps(person.traits),
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
                        properties=json.dumps(properties),
                    )
                )
            for segment in person.memberships:
                await session.exec(
                    sa.text(  # type: ignore[call-overload]
                        "INSERT INTO segment_memberships VALUES (:w, :s, :p, :at)"
                    ).bindparams(w=workspace, s=segment, p=profile_id, at=NOW)
                )


def _facts(profile_id: str, person: Person) -> Facts:
    stored = json.loads(json.dumps(person.traits))
    by_name: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for name, at, properties in person.events:
        by_name.setdefault(name, []).append((at, json.loads(json.dumps(properties))))
    return Facts(stored, by_name, frozenset(person.memberships), profile_id)


async def _check(store: Store, rule: Rule, group: list[Person]) -> None:
    workspace = uuid.uuid4().hex[:12]
    await _write(store.sessions, workspace, group)
    expected = sorted(
        f"{workspace}-{index}"
        for index, person in enumerate(group)
        if evaluate(rule, _facts(f"{workspace}-{index}", person), NOW)
    )
    # Shown by --hypothesis-show-statistics: how often a rule splits the profiles.
    hypothesis.event("split" if 0 < len(expected) < len(group) else "all or none")
    async with db.reading(store.sessions, workspace) as session:
        assert await member_ids(session, workspace, rule, NOW) == expected, to_yaml(rule)
        assert await count_members(session, workspace, rule, NOW) == len(expected)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rule=rules, group=people)
def test_sql_members_are_the_evaluators_members(
    store: Store, rule: Rule, group: list[Person]
) -> None:
    validate(rule)
    assert from_proto(to_proto(rule)) == rule
    assert from_yaml(to_yaml(rule)) == rule
    store.runner.run(_check(store, rule, group))
