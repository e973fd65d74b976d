"""Segment rules: the typed model, validation, what a rule reads, and the shared value rules.

A rule is a tree of groups (`All`, `AnyOf`, `Not`) over conditions on traits, events, other
segments' memberships and a stable sample. The same model is evaluated in Python
(`evaluate.py`) and compiled to SQL (segments' `rules_sql.py`); the value rules both follow
live here:

- a trait (or an event property) is named by a path (`paths.py`): `address.city` reads the
  member `city` of the object `address`; `"utm.source"` is one key holding a dot;
- missing and null are the same: no value. Every condition on no value is false, except
  `not_equals` (and `not` of anything), which is the exact negation of `equals`: true on no
  value, on another type, on an object;
- numbers compare as doubles, strings as strings (code point order, case-sensitive), booleans
  as booleans. Data often arrives as text, so a number and a text that is a plain decimal
  (`42`, `-4.5`, `0.50`: an optional minus, digits with no leading zero, an optional fraction,
  at most 20 characters; never `+1`, ` 42`, `1e3`, `0x1A` or `007`) are equal when their
  numbers are, and `greater_than`, `between`... read such a text as its number; a boolean and
  the text `true` / `false` are equal likewise. Two texts compare as texts, so `"007"` never
  equals `"7"`; anything else of two types (a boolean and a number) is unequal;
- an array holds its elements: `equals x`, `contains x` and `in [...]` are true when an
  element equals x (or one of the list); on a text, `contains` is a substring test. The number
  comparisons never read arrays (an array is no number), and a path never steps into one;
- an event condition counts the matching events: between `at_least` and `at_most`, both
  inclusive; `at_most: 0` is "never", and "at most twice" includes never;
- dates are read on the customer's calendar (`dates.py`): a trait is a date when it is a string
  in ISO-8601 extended form as ingest accepts it (`2025-03-01`, `2025-03-01T09:00:00Z`,
  `...T09:00:00.1234567+0900`, lower-case `t`/`z`). A text with an offset is one instant; a
  date alone or a zone-less time is wall-clock time in the profile's time zone, else the
  workspace's, else UTC (an invalid zone falls back). Each date is kept as two integers, its
  instant and its local wall-clock time, in microseconds, so both sides do exact arithmetic.

Time points, and how a date trait compares with each:
- `At` (a literal with an offset, `2026-12-01T09:00Z`) and `Relative` (now or a date trait plus
  an elapsed duration; `1d` is 24 hours, across DST too) are instants: compared with the
  trait's instant.
- `Wall` (a zone-less literal, `2026-12-01T09:00`) is compared with the trait's local time.
- `Day` (a date literal, `2026-12-01`) and `CalendarDay` (the local day N days from today, or
  from a date trait's local day) name whole local days: `before` is an earlier local day,
  `after` a later one, `between` includes both bound days. As an event's `since`, a calendar
  day means its start (local 00:00); only days from today are allowed there.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from engage import dates
from engage.dates import LocalDate
from engage.errors import InvalidArgument
from engage.resources import is_valid_id
from engage.rules import paths

MAX_DEPTH = 10
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 1000
MAX_DURATION = timedelta(days=36_600)
MAX_DAYS = 36_600
BUCKETS = 10_000

_KEY = re.compile(r"^[\w\-.:@/$ ]{1,128}$")
# A text that reads as a number (see the module docstring); SQL tests the same shape.
DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
MAX_DECIMAL = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
class Wall:
    """A zone-less date and time (naive), read on each customer's wall clock."""

    when: datetime


@dataclass(frozen=True)
class Day:
    """A date: that whole day on each customer's calendar."""

    day: date


@dataclass(frozen=True)
class Relative:
    """`offset` (elapsed time) after the date in trait `trait`, or after now when `trait` is
    empty."""

    trait: str = ""
    offset: timedelta = timedelta()


@dataclass(frozen=True)
class CalendarDay:
    """The whole local day `days` after today (`trait` empty) or after the local day of the
    date in trait `trait`; negative for before."""

    trait: str = ""
    days: int = 0


TimePoint = At | Wall | Day | Relative | CalendarDay
TIME_POINTS = (At, Wall, Day, Relative, CalendarDay)
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
    """Did `event` (matching `where`) between `at_least` and `at_most` times (inclusive, no
    upper bound when None), counting only events in the last `within` and at or after `since`.
    `at_most: 0` is "never did it"; as written, an unset `at_least` is 1, or 0 when `at_most`
    is set ("at most twice" includes never)."""

    event: str
    where: tuple[PropertyCondition, ...] = ()
    at_least: int = 1
    at_most: int | None = None
    within: timedelta | None = None
    since: Relative | CalendarDay | None = None


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
    """Microseconds since the epoch of a date text read in UTC; None if it is not one."""
    found = date_value(value, UTC)
    return None if found is None else found.at


def date_value(value: object, zone: tzinfo) -> LocalDate | None:
    """How one trait value is a date on the calendar of `zone` (None: it is not a date)."""
    return dates.date_value(value, zone)


def micros(moment: datetime) -> int:
    """An aware (or naive = UTC) datetime as microseconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def date_index(traits: dict[str, Any], zone: tzinfo = UTC) -> dict[str, LocalDate]:
    """The traits that are dates, read in `zone`, by canonical path (nested ones too): what
    SQL compares instead of parsing."""
    found = {keys: date_value(value, zone) for keys, value in paths.leaves(traits)}
    return {paths.canonical(keys): when for keys, when in found.items() if when is not None}


def decimal_number(value: object) -> float | None:
    """The number a text is (a plain decimal), else None."""
    if isinstance(value, str) and len(value) <= MAX_DECIMAL and DECIMAL.fullmatch(value):
        return float(value)
    return None


def text_boolean(value: object) -> bool | None:
    """The boolean a text is (`true` / `false`), else None."""
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


def top_key(path: str) -> str:
    """The top-level trait key a path reads (what change detection works on)."""
    return paths.parse(path)[0]


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


# The pseudo-key a profile's time zone is known under among its traits' keys: a rule that reads
# the calendar depends on it.
TIME_ZONE_KEY = "$time_zone"


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
    if isinstance(point, Relative | CalendarDay) and point.trait:
        return {top_key(point.trait)}
    return set()


def is_time_point(operand: object) -> bool:
    """Whether a trait condition's operand is a time (or two): it reads the trait as a date."""
    if isinstance(operand, tuple):
        return bool(operand) and all(isinstance(item, TIME_POINTS) for item in operand)
    return isinstance(operand, TIME_POINTS)


def _reads_calendar(leaf: Rule) -> bool:
    """Whether a condition's result can depend on the profile's time zone."""
    if isinstance(leaf, TraitCondition):
        return is_time_point(leaf.operand)
    since = leaf.since if isinstance(leaf, EventCondition) else None
    return isinstance(since, CalendarDay) or (isinstance(since, Relative) and bool(since.trait))


def dependencies(rule: Rule) -> Dependencies:
    """The trait keys, event names and segment ids whose change can change the result."""
    traits: set[str] = set()
    events: set[str] = set()
    segments: set[str] = set()
    for leaf in conditions(rule):
        if isinstance(leaf, TraitCondition):
            traits |= {top_key(leaf.trait)} | _time_traits(leaf.operand)
        elif isinstance(leaf, EventCondition):
            events.add(leaf.event)
            traits |= _time_traits(leaf.since)
        elif isinstance(leaf, InSegment):
            segments.add(leaf.segment)
        if _reads_calendar(leaf):
            traits.add(TIME_ZONE_KEY)
    return Dependencies(frozenset(traits), frozenset(events), frozenset(segments))


def _moves_with_now(point: object) -> bool:
    if isinstance(point, tuple):
        return any(_moves_with_now(item) for item in point)
    return isinstance(point, Relative | CalendarDay) and not point.trait


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
        _check_path(rule.trait, f"{path}.trait.trait")
        _check_operand(rule.operator, rule.operand, f"{path}.trait", dates=True)
    elif isinstance(rule, EventCondition):
        _validate_event(rule, f"{path}.event")
    elif isinstance(rule, InSegment):
        if not is_valid_id(rule.segment):
            raise InvalidArgument(f"{path}.in_segment.segment", "must be a segment id")
    elif isinstance(rule, Sample) and not 0 <= rule.percent <= 100:
        raise InvalidArgument(f"{path}.sample.percent", "must be between 0 and 100")


def validate_where(where: Sequence[PropertyCondition], path: str) -> None:
    """Check the conditions on an event's properties at `path` (`….where`)."""
    for index, condition in enumerate(where):
        at = f"{path}[{index}]"
        _check_path(condition.property, f"{at}.property")
        if condition.operator not in PROPERTY_OPERATORS:
            raise InvalidArgument(f"{at}.operator", f"{condition.operator} is not for properties")
        _check_operand(condition.operator, condition.operand, at, dates=False)


def _validate_event(rule: EventCondition, path: str) -> None:
    _check_key(rule.event, f"{path}.event")
    validate_where(rule.where, f"{path}.where")
    if rule.at_least < 0:
        raise InvalidArgument(f"{path}.at_least", "must not be negative")
    if rule.at_most is not None and rule.at_most < rule.at_least:
        raise InvalidArgument(f"{path}.at_most", "must not be less than at_least")
    if rule.within is not None and not timedelta() < rule.within <= MAX_DURATION:
        raise InvalidArgument(f"{path}.within", "must be positive and at most 100 years")
    if rule.since is not None:
        _check_since(rule.since, f"{path}.since")


def _check_key(key: str, field: str) -> None:
    if not _KEY.match(key):
        raise InvalidArgument(field, "must be 1-128 letters, digits, spaces or _-.:@/$")


def _check_path(path: str, field: str) -> None:
    try:
        paths.parse(path)
    except ValueError as error:
        raise InvalidArgument(field, str(error)) from None


def _check_point(point: object, field: str) -> None:
    if isinstance(point, Relative | CalendarDay) and point.trait:
        _check_path(point.trait, f"{field}.trait")
    if isinstance(point, Relative) and abs(point.offset) > MAX_DURATION:
        raise InvalidArgument(f"{field}.offset", "must be at most 100 years")
    if isinstance(point, CalendarDay) and abs(point.days) > MAX_DAYS:
        raise InvalidArgument(f"{field}.days", f"must be at most {MAX_DAYS} days")
    if not isinstance(point, TIME_POINTS):
        raise InvalidArgument(field, "must be a date or a time relative to now or a trait")


def _check_since(point: object, field: str) -> None:
    _check_point(point, field)
    if isinstance(point, CalendarDay) and point.trait:
        # Its start would need the zone's offset on a day SQL cannot know; an `offset` from
        # the trait, or a trait condition comparing days, says the same thing exactly.
        raise InvalidArgument(f"{field}.days", "counts from today only; use offset with a trait")
    if not isinstance(point, Relative | CalendarDay):
        raise InvalidArgument(field, "must be relative to now or to a trait")


def _is_number(value: object) -> bool:
    return value_kind(value) == "number" and abs(float(value)) != float("inf")  # type: ignore[arg-type]


def _check_operand(operator: Operator, operand: Operand, path: str, *, dates: bool) -> None:
    value = f"{path}.value"
    if operator in SCALAR_OPERATORS:
        if value_kind(operand) is None or (isinstance(operand, float) and not _is_number(operand)):
            raise InvalidArgument(value, "must be a string, number or boolean")
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
    fixed = (At, Wall, Day)
    if isinstance(low, fixed) and isinstance(high, fixed):
        # Bounds of one kind are held in order; a local bound against an instant is left be,
        # since which comes first depends on the customer's zone.
        if type(low) is type(high) and _fixed_order(low) > _fixed_order(high):
            raise InvalidArgument(field, "lower bound must not be after the upper")
        return
    moving = Relative if isinstance(low, Relative) else CalendarDay
    if not (isinstance(low, moving) and isinstance(high, moving) and low.trait == high.trait):
        raise InvalidArgument(field, "bounds must be two dates or two times from one anchor")
    if _moving_order(low) > _moving_order(high):
        raise InvalidArgument(field, "lower bound must not be after the upper")


def _fixed_order(point: At | Wall | Day) -> int:
    if isinstance(point, Day):
        return day_number(point.day)
    return micros(point.when)


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def _moving_order(point: object) -> int:
    if isinstance(point, Relative):
        return point.offset // _MICRO
    assert isinstance(point, CalendarDay)
    return point.days
