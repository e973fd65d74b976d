"""Segment rules: the typed model, validation, what a rule reads, and the shared value rules.

A rule is a tree of groups (`All`, `AnyOf`, `Not`) over conditions on traits, events, other
segments' memberships and a stable sample. The same model is evaluated in Python
(`evaluate.py`) and compiled to SQL (`rules_sql.py`); the value rules both follow live here:

- numbers compare as doubles, strings as strings (code point order), booleans only with
  booleans; a type mismatch or a missing trait makes a condition false (NOT exists aside);
- a trait is a date when it is a string in ISO-8601 extended form (`2025-03-01`,
  `2025-03-01T09:00:00Z`, with an offset or naive = UTC); dates compare as whole microseconds
  since the epoch, so both sides do exact integer arithmetic.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from engage.errors import InvalidArgument
from engage.resources import is_valid_id

MAX_DEPTH = 10
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 1000
MAX_DURATION = timedelta(days=36_600)
BUCKETS = 10_000

_KEY = re.compile(r"^[\w\-.:@/$ ]{1,128}$")
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?$"
)
_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


class Operator(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    CONTAINS = "contains"
    EXISTS = "exists"
    GREATER_THAN = "greater_than"
    GREATER_OR_EQUAL = "greater_or_equal"
    LESS_THAN = "less_than"
    LESS_OR_EQUAL = "less_or_equal"
    BEFORE = "before"
    AFTER = "after"
    BETWEEN = "between"


SCALAR_OPERATORS = {Operator.EQUALS, Operator.NOT_EQUALS, Operator.CONTAINS}
NUMBER_OPERATORS = {
    Operator.GREATER_THAN,
    Operator.GREATER_OR_EQUAL,
    Operator.LESS_THAN,
    Operator.LESS_OR_EQUAL,
}
DATE_OPERATORS = {Operator.BEFORE, Operator.AFTER}
# Event properties carry no date index, so they take the value operators only.
PROPERTY_OPERATORS = (
    SCALAR_OPERATORS | NUMBER_OPERATORS | {Operator.IN, Operator.EXISTS, Operator.BETWEEN}
)

Scalar = str | float | bool


@dataclass(frozen=True)
class At:
    """A fixed instant (UTC)."""

    when: datetime


@dataclass(frozen=True)
class Relative:
    """`offset` after the date in trait `trait`, or after now when `trait` is empty."""

    trait: str = ""
    offset: timedelta = timedelta()


TimePoint = At | Relative
Operand = (
    None
    | Scalar
    | tuple[Scalar, ...]
    | TimePoint
    | tuple[float, float]
    | tuple[TimePoint, TimePoint]
)


@dataclass(frozen=True)
class TraitCondition:
    trait: str
    operator: Operator
    operand: Operand = None


@dataclass(frozen=True)
class PropertyCondition:
    property: str
    operator: Operator
    operand: Operand = None


@dataclass(frozen=True)
class EventCondition:
    """Did `event` (matching `where`) between `at_least` and `at_most` times, counting only
    events in the last `within` and at or after `since`."""

    event: str
    where: tuple[PropertyCondition, ...] = ()
    at_least: int = 1
    at_most: int | None = None
    within: timedelta | None = None
    since: Relative | None = None


@dataclass(frozen=True)
class InSegment:
    segment: str


@dataclass(frozen=True)
class Sample:
    """`percent` of profiles, the same ones for the same seed wherever evaluated."""

    percent: float
    seed: str = ""


@dataclass(frozen=True)
class All:
    rules: tuple["Rule", ...]


@dataclass(frozen=True)
class AnyOf:
    rules: tuple["Rule", ...]


@dataclass(frozen=True)
class Not:
    rule: "Rule"


Rule = All | AnyOf | Not | TraitCondition | EventCondition | InSegment | Sample


# --- values shared by the evaluator and the SQL compiler -------------------------------------


def value_kind(value: object) -> str | None:
    """ "bool", "number" or "string"; None for null, lists, objects (they match nothing)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def date_micros(value: object) -> int | None:
    """Microseconds since the epoch of an ISO-8601 date string; None if it is not one."""
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    offset = parsed.utcoffset() or timedelta()
    # Integer arithmetic: converting year-1 or year-9999 times to UTC would overflow.
    return (parsed.replace(tzinfo=None) - _EPOCH) // _MICRO - offset // _MICRO


def micros(moment: datetime) -> int:
    """An aware (or naive = UTC) datetime as microseconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH.replace(tzinfo=UTC)) // _MICRO


def date_index(traits: dict[str, Any]) -> dict[str, int]:
    """The traits that are dates, as microseconds: what SQL compares instead of parsing."""
    found = {key: date_micros(value) for key, value in traits.items()}
    return {key: us for key, us in found.items() if us is not None}


def stable_bucket(text: str) -> int:
    """0..9999 from a hash that is the same in every process and release."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def sample_threshold(percent: float) -> int:
    return round(percent * 100)


def in_sample(bucket: int, sample: Sample) -> bool:
    """Profile bucket shifted by the seed's; SQL does the same integer arithmetic."""
    return (bucket + stable_bucket(sample.seed)) % BUCKETS < sample_threshold(sample.percent)


# --- what a rule reads -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dependencies:
    traits: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]


def conditions(rule: Rule) -> list[Rule]:
    """The leaves of the tree, in order."""
    if isinstance(rule, All | AnyOf):
        return [leaf for child in rule.rules for leaf in conditions(child)]
    if isinstance(rule, Not):
        return conditions(rule.rule)
    return [rule]


def _time_traits(point: object) -> set[str]:
    if isinstance(point, tuple):
        return {key for item in point for key in _time_traits(item)}
    return {point.trait} if isinstance(point, Relative) and point.trait else set()


def dependencies(rule: Rule) -> Dependencies:
    """The trait keys, event names and segment ids whose change can change the result."""
    traits: set[str] = set()
    events: set[str] = set()
    segments: set[str] = set()
    for leaf in conditions(rule):
        if isinstance(leaf, TraitCondition):
            traits |= {leaf.trait} | _time_traits(leaf.operand)
        elif isinstance(leaf, EventCondition):
            events.add(leaf.event)
            traits |= _time_traits(leaf.since)
        elif isinstance(leaf, InSegment):
            segments.add(leaf.segment)
    return Dependencies(frozenset(traits), frozenset(events), frozenset(segments))


def _moves_with_now(point: object) -> bool:
    if isinstance(point, tuple):
        return any(_moves_with_now(item) for item in point)
    return isinstance(point, Relative) and not point.trait


def is_time_dependent(rule: Rule) -> bool:
    """Whether the result can change with the passage of time alone (needs re-checking)."""
    for leaf in conditions(rule):
        if isinstance(leaf, TraitCondition) and _moves_with_now(leaf.operand):
            return True
        if isinstance(leaf, EventCondition) and (
            leaf.within is not None or _moves_with_now(leaf.since)
        ):
            return True
    return False


# --- validation ------------------------------------------------------------------------------


def validate(rule: Rule, path: str = "rule") -> Rule:
    """Check limits, names and operands; raises InvalidArgument with a proto field path."""
    count = len(conditions(rule))
    if count > MAX_CONDITIONS:
        raise InvalidArgument(path, f"has {count} conditions; at most {MAX_CONDITIONS}")
    _validate(rule, path, 1)
    return rule


def _validate(rule: Rule, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgument(path, f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(rule, All | AnyOf):
        group = f"{path}.{'all' if isinstance(rule, All) else 'any'}.rules"
        if not rule.rules:
            raise InvalidArgument(group, "must hold at least one rule")
        for index, child in enumerate(rule.rules):
            _validate(child, f"{group}[{index}]", depth + 1)
    elif isinstance(rule, Not):
        _validate(rule.rule, f"{path}.not", depth + 1)
    elif isinstance(rule, TraitCondition):
        _check_key(rule.trait, f"{path}.trait.trait")
        _check_operand(rule.operator, rule.operand, f"{path}.trait", dates=True)
    elif isinstance(rule, EventCondition):
        _validate_event(rule, f"{path}.event")
    elif isinstance(rule, InSegment):
        if not is_valid_id(rule.segment):
            raise InvalidArgument(f"{path}.in_segment.segment", "must be a segment id")
    elif isinstance(rule, Sample) and not 0 <= rule.percent <= 100:
        raise InvalidArgument(f"{path}.sample.percent", "must be between 0 and 100")


def _validate_event(rule: EventCondition, path: str) -> None:
    _check_key(rule.event, f"{path}.event")
    for index, where in enumerate(rule.where):
        at = f"{path}.where[{index}]"
        _check_key(where.property, f"{at}.property")
        if where.operator not in PROPERTY_OPERATORS:
            raise InvalidArgument(f"{at}.operator", f"{where.operator} is not for properties")
        _check_operand(where.operator, where.operand, at, dates=False)
    if rule.at_least < 1:
        raise InvalidArgument(f"{path}.min_count", "must be at least 1 (use `not` for never)")
    if rule.at_most is not None and rule.at_most < rule.at_least:
        raise InvalidArgument(f"{path}.max_count", "must not be less than min_count")
    if rule.within is not None and not timedelta() < rule.within <= MAX_DURATION:
        raise InvalidArgument(f"{path}.within", "must be positive and at most 100 years")
    if rule.since is not None:
        _check_point(rule.since, f"{path}.since")


def _check_key(key: str, field: str) -> None:
    if not _KEY.match(key):
        raise InvalidArgument(field, "must be 1-128 letters, digits, spaces or _-.:@/$")


def _check_point(point: object, field: str) -> None:
    if isinstance(point, Relative):
        if point.trait:
            _check_key(point.trait, f"{field}.trait")
        if abs(point.offset) > MAX_DURATION:
            raise InvalidArgument(f"{field}.offset", "must be at most 100 years")
    elif not isinstance(point, At):
        raise InvalidArgument(field, "must be a date or a time relative to now or a trait")


def _is_number(value: object) -> bool:
    return value_kind(value) == "number" and abs(float(value)) != float("inf")  # type: ignore[arg-type]


def _check_operand(operator: Operator, operand: Operand, path: str, *, dates: bool) -> None:
    value = f"{path}.value"
    if operator in SCALAR_OPERATORS:
        if value_kind(operand) is None or (isinstance(operand, float) and not _is_number(operand)):
            raise InvalidArgument(value, "must be a string, number or boolean")
        if operator is Operator.CONTAINS and not isinstance(operand, str):
            raise InvalidArgument(value, "must be a string")
        _check_text(operand, value)
    elif operator is Operator.IN:
        if not isinstance(operand, tuple) or not 0 < len(operand) <= MAX_LIST_VALUES:
            raise InvalidArgument(value, f"must be a list of 1-{MAX_LIST_VALUES} values")
        if any(value_kind(item) is None for item in operand):
            raise InvalidArgument(value, "must hold strings, numbers or booleans")
        for item in operand:
            _check_text(item, value)
    elif operator is Operator.EXISTS:
        if operand is not None:
            raise InvalidArgument(value, "must be empty for exists")
    elif operator in NUMBER_OPERATORS:
        if not _is_number(operand):
            raise InvalidArgument(value, "must be a number")
    elif operator in DATE_OPERATORS and dates:
        _check_point(operand, f"{path}.relative_to")
    elif operator is Operator.BETWEEN:
        _check_between(operand, value, dates)
    else:
        raise InvalidArgument(f"{path}.operator", "must be one of the supported operators")


def _check_text(operand: object, field: str) -> None:
    # No stored value can hold U+0000 (PostgreSQL refuses it in text and jsonb).
    if isinstance(operand, str) and "\x00" in operand:
        raise InvalidArgument(field, "must not contain U+0000")


def _check_between(operand: Operand, field: str, dates: bool) -> None:
    if not isinstance(operand, tuple) or len(operand) != 2:
        raise InvalidArgument(field, "must be a list of two bounds")
    low, high = operand
    if _is_number(low) and _is_number(high):
        if float(low) > float(high):  # type: ignore[arg-type]
            raise InvalidArgument(field, "lower bound must not exceed the upper")
        return
    if not dates:
        raise InvalidArgument(field, "must be two numbers")
    for point in operand:
        _check_point(point, field)
    if isinstance(low, At) and isinstance(high, At):
        return
    if not (isinstance(low, Relative) and isinstance(high, Relative) and low.trait == high.trait):
        raise InvalidArgument(field, "bounds must be two dates or two times from one anchor")
