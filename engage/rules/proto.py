"""A rule to and from its protobuf form, `engage.v1.Rule`, with proto field paths in errors.

Time operands map onto `value` and `relative_to`: BEFORE / AFTER take an ISO date in `value`
(a date alone is a whole local day, a zone-less time local wall-clock time, a time with an
offset an instant) or a `relative_to` point; BETWEEN takes two numbers, two ISO dates, or (with
`relative_to` as the anchor) two duration strings such as "0s" and "7d" added to that anchor,
or, when the anchor sets `days`, two numbers of calendar days added to its days.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import cast

from google.protobuf import duration_pb2, struct_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from engage.dates import parse
from engage.durations import format_duration, parse_duration
from engage.errors import InvalidArgument
from engage.resources import read_name
from engage.rules.language import (
    DATE_OPERATORS,
    NUMBER_OPERATORS,
    SCALAR_OPERATORS,
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
    Scalar,
    TraitCondition,
    Wall,
    date_micros,
    validate,
)
from engage.v1 import segment_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_proto(message: segment_pb2.Rule, path: str = "rule", workspace: str = "") -> Rule:
    """The validated rule a message describes. `in_segment` takes a segment id or a segment's
    name, which must be of `workspace` when given (a rule reads its own workspace only)."""
    return validate(_rule(message, path, workspace), path)


def to_proto(rule: Rule) -> segment_pb2.Rule:
    if isinstance(rule, All):
        return segment_pb2.Rule(all=segment_pb2.RuleGroup(rules=[to_proto(r) for r in rule.rules]))
    if isinstance(rule, AnyOf):
        return segment_pb2.Rule(any=segment_pb2.RuleGroup(rules=[to_proto(r) for r in rule.rules]))
    if isinstance(rule, Not):
        negated = segment_pb2.Rule()
        getattr(negated, "not").CopyFrom(to_proto(rule.rule))  # `not` is a Python keyword
        return negated
    if isinstance(rule, TraitCondition):
        trait = segment_pb2.TraitCondition(
            trait=rule.trait, operator=_proto_operator(rule.operator)
        )
        _put_operand(trait, rule.operand)
        return segment_pb2.Rule(trait=trait)
    if isinstance(rule, EventCondition):
        return segment_pb2.Rule(event=_event_to_proto(rule))
    if isinstance(rule, InSegment):
        return segment_pb2.Rule(in_segment=segment_pb2.SegmentReference(segment=rule.segment))
    return segment_pb2.Rule(sample=segment_pb2.Sample(percent=rule.percent, seed=rule.seed))


def _rule(message: segment_pb2.Rule, path: str, workspace: str) -> Rule:
    kind = message.WhichOneof("kind")
    if kind == "all":
        return All(tuple(_children(message.all, f"{path}.all", workspace)))
    if kind == "any":
        return AnyOf(tuple(_children(message.any, f"{path}.any", workspace)))
    if kind == "not":
        return Not(_rule(getattr(message, "not"), f"{path}.not", workspace))
    if kind == "trait":
        trait, at = message.trait, f"{path}.trait"
        operator = _operator(trait.operator, f"{at}.operator")
        relative = trait.relative_to if trait.HasField("relative_to") else None
        value = trait.value if trait.HasField("value") else None
        return TraitCondition(trait.trait, operator, _operand(operator, value, relative, at))
    if kind == "event":
        return _event(message.event, f"{path}.event")
    if kind == "in_segment":
        reference = message.in_segment.segment
        return InSegment(_segment_id(reference, f"{path}.in_segment.segment", workspace))
    if kind == "sample":
        return Sample(message.sample.percent, message.sample.seed)
    raise InvalidArgument(path, "must set one of all, any, not, trait, event, in_segment, sample")


def _children(group: segment_pb2.RuleGroup, path: str, workspace: str) -> list[Rule]:
    return [_rule(child, f"{path}.rules[{i}]", workspace) for i, child in enumerate(group.rules)]


def _segment_id(reference: str, field: str, workspace: str) -> str:
    """The id a reference names: an id as is, or the id of a full name (the rule keeps ids)."""
    if "/" not in reference:
        return reference
    name = read_name(reference, "segments")
    if name is None:
        raise InvalidArgument(field, "must be a segment id or workspaces/{workspace}/segments/{id}")
    if workspace and name.workspace != workspace:
        raise InvalidArgument(field, "must name a segment of the rule's own workspace")
    return name.id


def where_from_proto(
    where: Sequence[segment_pb2.PropertyCondition], path: str
) -> tuple[PropertyCondition, ...]:
    """Conditions on an event's properties, read (not yet validated) at `path` (`….where`)."""
    conditions = []
    for index, condition in enumerate(where):
        at = f"{path}[{index}]"
        operator = _operator(condition.operator, f"{at}.operator")
        value = condition.value if condition.HasField("value") else None
        operand = _operand(operator, value, None, at)
        conditions.append(PropertyCondition(condition.property, operator, operand))
    return tuple(conditions)


def where_to_proto(
    where: Sequence[PropertyCondition],
    into: RepeatedCompositeFieldContainer[segment_pb2.PropertyCondition],
) -> None:
    """Add conditions on an event's properties to a `where` field."""
    for condition in where:
        message = into.add(property=condition.property)
        message.operator = _proto_operator(condition.operator)
        _put_operand(message, condition.operand)


def _event(event: segment_pb2.EventCondition, path: str) -> EventCondition:
    return EventCondition(
        event=event.event,
        where=where_from_proto(event.where, f"{path}.where"),
        at_least=_at_least(event),
        at_most=event.at_most if event.HasField("at_most") else None,
        within=_duration(event.within, f"{path}.within") if event.HasField("within") else None,
        since=_moving(event.since, f"{path}.since") if event.HasField("since") else None,
    )


def _at_least(event: segment_pb2.EventCondition) -> int:
    """As written, or by default 1 ("did it"), 0 under an `at_most` ("at most twice", never
    included)."""
    if event.HasField("at_least"):
        return event.at_least
    return 0 if event.HasField("at_most") else 1


def _event_to_proto(rule: EventCondition) -> segment_pb2.EventCondition:
    message = segment_pb2.EventCondition(event=rule.event, at_most=rule.at_most)
    if rule.at_least != _at_least(message):  # set only when unset would mean another count
        message.at_least = rule.at_least
    where_to_proto(rule.where, message.where)
    if rule.within is not None:
        message.within.FromTimedelta(rule.within)
    if rule.since is not None:
        message.since.CopyFrom(_relative_to_proto(rule.since))
    return message


def _operator(value: int, field: str) -> Operator:
    name = segment_pb2.Operator.Name(value) if value in segment_pb2.Operator.values() else ""
    if not name or value == segment_pb2.OPERATOR_UNSPECIFIED:
        raise InvalidArgument(field, "must be set")
    return Operator[name.removeprefix("OPERATOR_")]


def _proto_operator(operator: Operator) -> segment_pb2.Operator:
    return cast(segment_pb2.Operator, segment_pb2.Operator.Value(f"OPERATOR_{operator.name}"))


def _operand(
    operator: Operator,
    value: struct_pb2.Value | None,
    relative: segment_pb2.RelativeTime | None,
    path: str,
) -> Operand:
    field = f"{path}.value"
    if operator in SCALAR_OPERATORS or operator in NUMBER_OPERATORS:
        return _scalar(value, field)
    if operator is Operator.IN:
        if value is None or value.WhichOneof("kind") != "list_value":
            raise InvalidArgument(field, "must be a list")
        return tuple(_scalar(item, field) for item in value.list_value.values)
    if operator in DATE_OPERATORS:
        if relative is not None:
            return _moving(relative, f"{path}.relative_to")
        return _date(value, field)
    if operator is Operator.BETWEEN:
        return _between(value, relative, path)
    return None  # EXISTS: a value, if any, is ignored


def _between(
    value: struct_pb2.Value | None, relative: segment_pb2.RelativeTime | None, path: str
) -> Operand:
    field = f"{path}.value"
    if value is None or value.WhichOneof("kind") != "list_value":
        raise InvalidArgument(field, "must be a list of two bounds")
    items = list(value.list_value.values)
    if len(items) != 2:
        raise InvalidArgument(field, "must be a list of two bounds")
    if relative is not None and relative.HasField("days"):
        anchor_days = _moving(relative, f"{path}.relative_to")
        assert isinstance(anchor_days, CalendarDay)
        first, last = (_days(item, field) for item in items)
        return (
            CalendarDay(anchor_days.trait, anchor_days.days + first),
            CalendarDay(anchor_days.trait, anchor_days.days + last),
        )
    if all(item.WhichOneof("kind") == "number_value" for item in items):
        return (items[0].number_value, items[1].number_value)
    if relative is None:
        return (_date(items[0], field), _date(items[1], field))
    anchor = _relative(relative, f"{path}.relative_to")
    low, high = (parse_duration(item.string_value, field) for item in items)
    return (
        Relative(anchor.trait, anchor.offset + low),
        Relative(anchor.trait, anchor.offset + high),
    )


def _scalar(value: struct_pb2.Value | None, field: str) -> Scalar:
    kind = value.WhichOneof("kind") if value is not None else None
    if value is None or kind not in ("string_value", "number_value", "bool_value"):
        raise InvalidArgument(field, "must be a string, number or boolean")
    scalar: Scalar = getattr(value, kind)
    return scalar


def _date(value: struct_pb2.Value | None, field: str) -> At | Wall | Day:
    """A date literal: a date alone is a whole local day, a zone-less time local wall-clock
    time, a time with an offset an instant."""
    text = value.string_value if value is not None else ""
    written = parse(text)
    if written is None:
        raise InvalidArgument(field, "must be an ISO-8601 date like 2025-03-01")
    when = parse_date(text, field)
    if written.whole_day:
        return Day(date(when.year, when.month, when.day))
    if written.offset is None:
        return Wall(when.replace(tzinfo=None))
    return At(when)


def parse_date(text: object, field: str) -> datetime:
    """The date of a text as an aware datetime; a zone-less one read as UTC."""
    us = date_micros(text)
    try:
        if us is None:
            raise ValueError
        return _EPOCH + timedelta(microseconds=us)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "must be an ISO-8601 date like 2025-03-01") from None


def _moving(message: segment_pb2.RelativeTime, path: str) -> Relative | CalendarDay:
    """A point from now or a trait: calendar days when `days` is set, else elapsed time."""
    if not message.HasField("days"):
        return _relative(message, path)
    if message.HasField("offset"):
        raise InvalidArgument(f"{path}.offset", "must not be set together with days")
    return CalendarDay(message.trait, message.days)


def _relative(message: segment_pb2.RelativeTime, path: str) -> Relative:
    offset = _duration(message.offset, f"{path}.offset") if message.HasField("offset") else None
    return Relative(message.trait, offset or timedelta())


def _days(value: struct_pb2.Value, field: str) -> int:
    number = value.number_value if value.WhichOneof("kind") == "number_value" else None
    if number is None or not number.is_integer() or abs(number) > 2**31:
        raise InvalidArgument(field, "must be two whole numbers of days")
    return int(number)


def _duration(message: duration_pb2.Duration, field: str) -> timedelta:
    if message.nanos:
        raise InvalidArgument(field, "must be whole seconds")
    return message.ToTimedelta()


def _relative_to_proto(point: Relative | CalendarDay) -> segment_pb2.RelativeTime:
    message = segment_pb2.RelativeTime(trait=point.trait)
    if isinstance(point, CalendarDay):
        message.days = point.days
    else:
        message.offset.FromTimedelta(point.offset)
    return message


def _to_value(item: object) -> struct_pb2.Value:
    if isinstance(item, bool):
        return struct_pb2.Value(bool_value=item)
    if isinstance(item, int | float):
        return struct_pb2.Value(number_value=item)
    if isinstance(item, At | Wall):
        return struct_pb2.Value(string_value=item.when.isoformat())
    if isinstance(item, Day):
        return struct_pb2.Value(string_value=item.day.isoformat())
    if isinstance(item, timedelta):
        return struct_pb2.Value(string_value=format_duration(item))
    return struct_pb2.Value(string_value=str(item))


def _list(items: object) -> struct_pb2.Value:
    return struct_pb2.Value(
        list_value=struct_pb2.ListValue(values=[_to_value(i) for i in items])  # type: ignore[attr-defined]
    )


def _put_operand(
    message: segment_pb2.TraitCondition | segment_pb2.PropertyCondition, operand: Operand
) -> None:
    if operand is None:
        return
    if isinstance(operand, Relative | CalendarDay):
        assert isinstance(message, segment_pb2.TraitCondition)
        message.relative_to.CopyFrom(_relative_to_proto(operand))
    elif isinstance(operand, tuple) and operand and isinstance(operand[0], CalendarDay):
        assert isinstance(message, segment_pb2.TraitCondition)
        first, last = operand
        assert isinstance(first, CalendarDay) and isinstance(last, CalendarDay)
        message.relative_to.CopyFrom(_relative_to_proto(CalendarDay(first.trait)))
        message.value.CopyFrom(_list([float(first.days), float(last.days)]))
    elif isinstance(operand, tuple) and operand and isinstance(operand[0], Relative):
        # Both bounds share one anchor (validated); the offsets go in `value`.
        assert isinstance(message, segment_pb2.TraitCondition)
        low, high = operand
        assert isinstance(low, Relative) and isinstance(high, Relative)
        message.relative_to.CopyFrom(_relative_to_proto(Relative(low.trait)))
        message.value.CopyFrom(_list([low.offset, high.offset]))
    elif isinstance(operand, tuple):
        message.value.CopyFrom(_list(operand))
    else:
        message.value.CopyFrom(_to_value(operand))
