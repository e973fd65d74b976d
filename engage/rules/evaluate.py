"""A rule evaluated on one profile's facts in Python: for real-time re-evaluation after an
event. It must agree with the SQL compiler (`rules_sql.py`) on every profile; the value rules
both follow are in `language.py`, and a property test holds the two together.
"""

import functools
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeGuard

from engage import dates
from engage.dates import DAY
from engage.rules.language import (
    All,
    AnyOf,
    At,
    CalendarDay,
    Day,
    EventCondition,
    InSegment,
    Not,
    Operand,
    Operator,
    PropertyCondition,
    Relative,
    Rule,
    Sample,
    TraitCondition,
    Wall,
    date_value,
    day_number,
    decimal_number,
    in_sample,
    is_time_point,
    micros,
    stable_bucket,
    text_boolean,
    value_kind,
)
from engage.rules.paths import lookup, lookup_keys, parse

_MICRO = timedelta(microseconds=1)

EventFacts = Mapping[str, Sequence[tuple[datetime, Mapping[str, Any]]]]


@dataclass(frozen=True)
class Facts:
    """What a rule may read about one profile."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    # Event name -> (when, properties) of each event of that name.
    events: EventFacts = field(default_factory=dict)
    # Ids of the segments the profile is a member of.
    memberships: Set[str] = frozenset()
    profile_id: str = ""
    # The zone the profile's dates are read in (`dates.profile_zone`).
    zone: tzinfo = UTC
    # Event name -> (microseconds since the epoch, properties): read once for every rule.
    _timed: dict[str, list[tuple[int, Mapping[str, Any]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def timed_events(self, name: str) -> list[tuple[int, Mapping[str, Any]]]:
        found = self._timed.get(name)
        if found is None:
            found = [(micros(when), properties) for when, properties in self.events.get(name, ())]
            self._timed[name] = found
        return found


@dataclass(frozen=True)
class Bound:
    """A time point resolved for one profile: compared with the trait's instant (`local` false)
    or its local wall-clock time, from `first` to `last` inclusive (a whole day, or one
    microsecond)."""

    local: bool
    first: int
    last: int


class Evaluation:
    """One profile's facts at one moment, as every rule of a pass reads them."""

    def __init__(self, facts: Facts, now: datetime) -> None:
        self.facts = facts
        self.now_us = micros(now)

    def date(self, trait: str) -> dates.LocalDate | None:
        return date_value(lookup(self.facts.traits, trait), self.facts.zone)

    def point(self, point: object) -> Bound | None:
        """A time operand for this profile; None when its anchor trait is not a date."""
        if isinstance(point, At | Wall):
            us = micros(point.when)
            return Bound(isinstance(point, Wall), us, us)
        if isinstance(point, Day):
            return _whole_day(day_number(point.day))
        assert isinstance(point, Relative | CalendarDay)
        if point.trait:
            anchor = self.date(point.trait)
            if anchor is None:
                return None
            at, local = anchor.at, anchor.local
        else:
            at, local = self.now_us, dates.local_of(self.now_us, self.facts.zone)
        if isinstance(point, CalendarDay):
            return _whole_day(local // DAY + point.days)
        us = at + point.offset // _MICRO
        return Bound(False, us, us)

    def date_holds(self, rule: TraitCondition) -> bool:
        """A trait condition whose operand is a time point (or two)."""
        operand = rule.operand
        found = self.date(rule.trait)
        bounds = [self.point(p) for p in (operand if isinstance(operand, tuple) else (operand,))]
        if found is None or None in bounds:
            return False
        low, high = bounds[0], bounds[-1]
        assert low is not None and high is not None
        if rule.operator is Operator.BEFORE:
            return _on(found, low) < low.first
        if rule.operator is Operator.AFTER:
            return _on(found, low) > low.last
        return _on(found, low) >= low.first and _on(found, high) <= high.last

    def since(self, point: Relative | CalendarDay) -> int | None:
        """The instant an event's `since` starts counting (a calendar day: its local start)."""
        bound = self.point(point)
        if bound is None:
            return None
        return dates.instant_of(bound.first, self.facts.zone) if bound.local else bound.first


# A rule made into a function of one profile's evaluation.
Test = Callable[[Evaluation], bool]


def evaluate(rule: Rule, facts: Facts, now: datetime) -> bool:
    """Whether the profile matches the rule at `now` (an aware datetime)."""
    return compile_rule(rule)(Evaluation(facts, now))


def compile_rule(rule: Rule) -> Test:
    """The rule as a function: its operands, paths and value tests are resolved once, so
    real time, which runs a segment's rule on thousands of profiles, pays only for reading."""
    if isinstance(rule, All | AnyOf):
        return _group_test(rule)
    if isinstance(rule, Not):
        inner = compile_rule(rule.rule)
        return lambda evaluation: not inner(evaluation)
    if isinstance(rule, TraitCondition):
        return compile_trait(rule)
    if isinstance(rule, EventCondition):
        return _event_test(rule)
    if isinstance(rule, InSegment):
        segment = rule.segment
        return lambda evaluation: segment in evaluation.facts.memberships
    assert isinstance(rule, Sample)
    sample = rule
    return lambda evaluation: in_sample(stable_bucket(evaluation.facts.profile_id), sample)


def compile_trait(rule: TraitCondition) -> Test:
    if is_time_point(rule.operand):
        return lambda evaluation: evaluation.date_holds(rule)
    test, keys = value_test(rule.operator, rule.operand), parse(rule.trait)
    return lambda evaluation: test(lookup_keys(evaluation.facts.traits, keys))


def _group_test(rule: All | AnyOf) -> Test:
    tests = tuple(compile_rule(child) for child in rule.rules)

    def every(evaluation: Evaluation) -> bool:
        return all(test(evaluation) for test in tests)

    def some(evaluation: Evaluation) -> bool:
        return any(test(evaluation) for test in tests)

    return every if isinstance(rule, All) else some


def _event_test(rule: EventCondition) -> Test:
    name, at_least, at_most, since = rule.event, rule.at_least, rule.at_most, rule.since
    within = None if rule.within is None else rule.within // _MICRO
    where = where_test(rule.where)

    def counted(evaluation: Evaluation) -> bool:
        start = None if within is None else evaluation.now_us - within
        if since is not None:
            begins = evaluation.since(since)
            if begins is None:
                return False
            start = begins if start is None else max(start, begins)
        count = 0
        for at, properties in evaluation.facts.timed_events(name):
            if (start is None or at >= start) and (where is None or where(properties)):
                count += 1
                if at_most is None and count >= at_least:
                    return True  # more can only keep it true
        return count >= at_least and (at_most is None or count <= at_most)

    return counted


def where_test(where: Sequence[PropertyCondition]) -> Callable[[Mapping[str, Any]], bool] | None:
    """Whether an event's properties pass every condition of a `where`; None for no `where`."""
    if not where:
        return None
    tests = tuple((parse(c.property), value_test(c.operator, c.operand)) for c in where)

    def passes(properties: Mapping[str, Any]) -> bool:
        return all(test(lookup_keys(properties, keys)) for keys, test in tests)

    return passes


def _whole_day(day: int) -> Bound:
    return Bound(True, day * DAY, (day + 1) * DAY - 1)


def _on(found: dates.LocalDate, bound: Bound) -> int:
    """The trait's date on the bound's scale."""
    return found.local if bound.local else found.at


def value_test(operator: Operator, operand: Operand) -> Callable[[object], bool]:
    """`value_matches` with its operator and operand fixed. The commonest rules, a text
    (`equals: pro`, `in: [JP, US]`) that only the same text can equal, skip the kind rules."""
    # Keyed by each operand's type too: `true`, 1 and 1.0 are equal (and hash alike) in Python.
    typed = tuple((type(c), c) for c in operand) if isinstance(operand, tuple) else operand
    key = (operator, type(operand), typed)
    found = _value_tests.get(key)
    if found is None:
        if len(_value_tests) >= 4096:
            _value_tests.clear()
        found = _value_tests[key] = _new_value_test(operator, operand)
    return found


_value_tests: dict[tuple[object, ...], Callable[[object], bool]] = {}


def _new_value_test(operator: Operator, operand: Operand) -> Callable[[object], bool]:
    if operator in (Operator.EQUALS, Operator.NOT_EQUALS) and _plain_text(operand):
        equal = functools.partial(_equals_text, operand)
        return equal if operator is Operator.EQUALS else lambda value: not equal(value)
    if operator is Operator.IN and isinstance(operand, tuple):
        texts = [choice for choice in operand if _plain_text(choice)]
        if len(texts) == len(operand):
            return functools.partial(_in_texts, frozenset(texts))
    return lambda value: value_matches(value, operator, operand)


def _plain_text(operand: object) -> TypeGuard[str]:
    """A text no number or boolean can equal: neither a plain decimal nor `true` / `false`."""
    return (
        isinstance(operand, str)
        and decimal_number(operand) is None
        and text_boolean(operand) is None
    )


def _equals_text(text: str, value: object) -> bool:
    if isinstance(value, list):
        return text in value  # only a text element can equal a text
    return value == text


def _in_texts(texts: frozenset[str], value: object) -> bool:
    if isinstance(value, list):
        return any(isinstance(item, str) and item in texts for item in value)
    return isinstance(value, str) and value in texts


def value_matches(value: object, operator: Operator, operand: Operand) -> bool:
    """A non-date operator applied to a JSON value (None: missing or null), by the value rules
    of `language.py`."""
    if operator is Operator.EXISTS:
        return value is not None
    if operator is Operator.NOT_EQUALS:
        return not _has(value, lambda item: _equal(item, operand))
    if operator is Operator.EQUALS:
        return _has(value, lambda item: _equal(item, operand))
    if operator is Operator.IN:
        assert isinstance(operand, tuple)
        return _has(value, lambda item: any(_equal(item, choice) for choice in operand))
    if operator is Operator.CONTAINS:
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        return isinstance(value, list) and any(_equal(item, operand) for item in value)
    number = _number(value)
    if number is None:
        return False
    if operator is Operator.BETWEEN:
        assert isinstance(operand, tuple)
        low, high = operand
        return float(low) <= number <= float(high)  # type: ignore[arg-type]
    bound = float(operand)  # type: ignore[arg-type]
    if operator is Operator.GREATER_THAN:
        return number > bound
    if operator is Operator.GREATER_OR_EQUAL:
        return number >= bound
    if operator is Operator.LESS_THAN:
        return number < bound
    return operator is Operator.LESS_OR_EQUAL and number <= bound


def _has(value: object, test: Callable[[object], bool]) -> bool:
    """The value passes, or (an array) one of its elements does."""
    if isinstance(value, list):
        return any(test(item) for item in value)
    return test(value)


def _number(value: object) -> float | None:
    """A number, or a text that is a plain decimal, as a double."""
    if value_kind(value) == "number":
        return float(value)  # type: ignore[arg-type]
    return decimal_number(value)


def _equal(value: object, operand: object) -> bool:
    """Equality of two scalars: same kind, or a number (a boolean) and the text of one."""
    kinds = {value_kind(value), value_kind(operand)}
    if None in kinds:
        return False
    if kinds == {"number"}:
        return float(value) == float(operand)  # type: ignore[arg-type]
    if len(kinds) == 1:
        return value == operand
    if kinds == {"number", "string"}:
        return _number(value) == _number(operand) is not None
    if kinds == {"bool", "string"}:
        return _boolean(value) == _boolean(operand) is not None
    return False


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else text_boolean(value)
