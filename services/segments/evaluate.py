"""A rule evaluated on one profile's facts in Python: for real-time re-evaluation after an
event. It must agree with the SQL compiler (`rules_sql.py`) on every profile; the value rules
both follow are in `rules.py`, and a property test holds the two together.
"""

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.segments.rules import (
    All,
    AnyOf,
    At,
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
    date_micros,
    in_sample,
    micros,
    stable_bucket,
    value_kind,
)

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


def evaluate(rule: Rule, facts: Facts, now: datetime) -> bool:
    """Whether the profile matches the rule at `now` (an aware datetime)."""
    return _Evaluation(facts, micros(now)).matches(rule)


class _Evaluation:
    def __init__(self, facts: Facts, now_us: int) -> None:
        self.facts = facts
        self.now_us = now_us

    def matches(self, rule: Rule) -> bool:
        if isinstance(rule, All):
            return all(self.matches(child) for child in rule.rules)
        if isinstance(rule, AnyOf):
            return any(self.matches(child) for child in rule.rules)
        if isinstance(rule, Not):
            return not self.matches(rule.rule)
        if isinstance(rule, TraitCondition):
            return self.trait(rule)
        if isinstance(rule, EventCondition):
            return self.event(rule)
        if isinstance(rule, InSegment):
            return rule.segment in self.facts.memberships
        assert isinstance(rule, Sample)
        return in_sample(stable_bucket(self.facts.profile_id), rule)

    def point(self, point: object) -> int | None:
        """A time operand in microseconds; None when its anchor trait is not a date."""
        if isinstance(point, At):
            return micros(point.when)
        assert isinstance(point, Relative)
        anchor = date_micros(self.facts.traits.get(point.trait)) if point.trait else self.now_us
        return None if anchor is None else anchor + point.offset // _MICRO

    def trait(self, rule: TraitCondition) -> bool:
        value = self.facts.traits.get(rule.trait)
        operand = rule.operand
        if rule.operator in (Operator.BEFORE, Operator.AFTER):
            at, bound = date_micros(value), self.point(operand)
            if at is None or bound is None:
                return False
            return at < bound if rule.operator is Operator.BEFORE else at > bound
        if isinstance(operand, tuple) and isinstance(operand[0], At | Relative):
            at, low, high = date_micros(value), self.point(operand[0]), self.point(operand[1])
            if at is None or low is None or high is None:
                return False
            return low <= at <= high
        return value_matches(value, rule.operator, operand)

    def event(self, rule: EventCondition) -> bool:
        since = self.point(rule.since) if rule.since is not None else None
        if rule.since is not None and since is None:
            return False
        start = self.now_us - rule.within // _MICRO if rule.within is not None else None
        count = 0
        for when, properties in self.facts.events.get(rule.event, ()):
            at = micros(when)
            if start is not None and at < start:
                continue
            if since is not None and at < since:
                continue
            if all(_property_matches(properties, where) for where in rule.where):
                count += 1
        return count >= rule.at_least and (rule.at_most is None or count <= rule.at_most)


def _property_matches(properties: Mapping[str, Any], where: PropertyCondition) -> bool:
    return value_matches(properties.get(where.property), where.operator, where.operand)


def value_matches(value: object, operator: Operator, operand: Operand) -> bool:
    """A non-date operator applied to a JSON value; None (missing) matches only nothing."""
    if operator is Operator.EXISTS:
        return value is not None
    if operator is Operator.EQUALS:
        return _equal(value, operand)
    if operator is Operator.NOT_EQUALS:
        return (
            value_kind(value) is not None
            and value_kind(value) == value_kind(operand)
            and (not _equal(value, operand))
        )
    if operator is Operator.IN:
        return isinstance(operand, tuple) and any(_equal(value, item) for item in operand)
    if operator is Operator.CONTAINS:
        return isinstance(value, str) and isinstance(operand, str) and operand in value
    if value_kind(value) != "number":
        return False
    number = float(value)  # type: ignore[arg-type]
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


def _equal(value: object, operand: object) -> bool:
    kind = value_kind(value)
    if kind is None or kind != value_kind(operand):
        return False
    if kind == "number":
        return float(value) == float(operand)  # type: ignore[arg-type]
    return value == operand
