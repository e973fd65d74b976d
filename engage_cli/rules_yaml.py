"""The YAML form of a rule, the one a marketer writes and keeps in git, to and from the
`engage.v1.Rule` the segments service takes:

    all:
      - {trait: drug_type, equals: pill}
      - {trait: prescribed_at, before: {ago: 1d}}
      - not: {event: payment_completed, since: {trait: prescribed_at}}
      - {event: search, at_least: 2, within: 7d, where: [{property: route, equals: NRT-HNL}]}

A condition names its subject (`trait`, `event`, `in_segment`, `sample`) and one operator key:
an `engage.v1.Operator` in lower case (`equals`, `greater_or_equal`, `between`). Times are
`now`, `{ago: 18d}`, `{from_now: 7d}`, `{trait: prescribed_at, offset: 18d}` (elapsed time:
`1d` is 24 hours), calendar days on the customer's calendar `today`, `{days_ago: 1}`,
`{days_from_now: 7}`, `{trait: prescribed_at, days: 1}`, or an ISO date (`2026-12-01` is that
whole local day, `2026-12-01T09:00` local wall-clock time, `2026-12-01T09:00Z` an instant).

Only the shape is checked here: what the proto can carry. What a rule means (names, ids, bounds,
dates, limits) is checked by the service, which answers INVALID_ARGUMENT. Both name the field
by its path in the proto form (`rule.all.rules[2].trait.value`), so a marketer reads one kind
of path whichever side found the mistake.
"""

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import yaml
from google.protobuf import struct_pb2

from engage.durations import format_duration, parse_duration
from engage.errors import InvalidArgument
from engage.v1 import segment_pb2

_KINDS = ("all", "any", "not", "trait", "event", "in_segment", "sample")
_EVENT_KEYS = {"event", "where", "at_least", "at_most", "within", "since"}
_OPERATORS = {
    name.removeprefix("OPERATOR_").lower(): cast(segment_pb2.Operator, number)
    for name, number in segment_pb2.Operator.items()
    if number != segment_pb2.OPERATOR_UNSPECIFIED
}
_OPERATOR_NAMES = {number: name for name, number in _OPERATORS.items()}
# The operator keys a condition may be written with (`equals`, `before`, …).
OPERATOR_KEYS = frozenset(_OPERATORS)
_TIME_OPERATORS = {"before", "after"}

# A point in time as the proto carries it: an ISO date in `value`, or a `relative_to`.
TimePoint = str | segment_pb2.RelativeTime


class MarketerYamlLoader(yaml.SafeLoader):
    """YAML 1.2's core schema, as a marketer reads their file: `NO` (Norway) and `yes` stay
    text, `010` is ten, and dates and times stay the very text written, so `2026-03-01T09:00Z`
    equals a trait holding that text. PyYAML alone reads YAML 1.1, where all four change."""

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        return int(text, 0) if text.lstrip("+-")[:2] in ("0o", "0x") else int(text, 10)


_CORE_SCHEMA = (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$",
        "-+.0123456789",
    ),
    # Not in YAML 1.2, but kept: files written with `<<: *defaults` read as their authors meant.
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
)
# Its own resolvers, none inherited from YAML 1.1.
MarketerYamlLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in _CORE_SCHEMA:
    # An empty scalar is looked up under "": only null can be empty.
    firsts = [*_first, ""] if _tag.endswith(":null") else list(_first)
    MarketerYamlLoader.add_implicit_resolver(_tag, re.compile(_pattern), firsts)
MarketerYamlLoader.add_constructor("tag:yaml.org,2002:int", MarketerYamlLoader.construct_core_int)


def load(text: str) -> Any:
    """A marketer's YAML document, read with YAML 1.2 core-schema meanings; yaml.YAMLError when
    it is not YAML."""
    return yaml.load(text, Loader=MarketerYamlLoader)


def from_yaml(text: str, path: str = "rule") -> segment_pb2.Rule:
    """The rule a YAML document describes; InvalidArgument names a field that is misshapen."""
    try:
        data = load(text)
    except (yaml.YAMLError, ValueError) as error:
        raise InvalidArgument(path, f"is not valid YAML: {error}") from None
    return from_data(data, path)


def from_data(data: object, path: str = "rule") -> segment_pb2.Rule:
    """The rule of already-loaded YAML (e.g. the `rule:` of a segment file)."""
    if not isinstance(data, dict):
        raise InvalidArgument(path, "must be a mapping with one of: " + ", ".join(_KINDS))
    kinds = [kind for kind in _KINDS if kind in data]
    if len(kinds) != 1:
        raise InvalidArgument(path, "must have exactly one of: " + ", ".join(_KINDS))
    kind = kinds[0]
    if kind == "trait":
        return _trait(data, f"{path}.trait")
    if kind == "event":
        return segment_pb2.Rule(event=_event(data, f"{path}.event"))
    _only(data, {kind}, path)
    value = data[kind]
    if kind in ("all", "any"):
        if not isinstance(value, list):
            raise InvalidArgument(f"{path}.{kind}.rules", "must be a list")
        rule = segment_pb2.Rule()
        group = rule.all if kind == "all" else rule.any
        group.SetInParent()  # an empty group is still a group: the service says it is empty
        group.rules.extend(
            from_data(item, f"{path}.{kind}.rules[{i}]") for i, item in enumerate(value)
        )
        return rule
    if kind == "not":
        return _negated(from_data(value, f"{path}.not"))
    if kind == "in_segment":
        segment = _text(value, f"{path}.in_segment.segment")
        return segment_pb2.Rule(in_segment=segment_pb2.SegmentReference(segment=segment))
    return segment_pb2.Rule(sample=_sample(value, f"{path}.sample"))


def to_yaml(rule: segment_pb2.Rule) -> str:
    """The YAML a marketer would write for `rule`; `from_yaml` reads it back as `rule`."""
    return dump(to_data(rule))


def dump(document: Mapping[str, Any] | list[Any]) -> str:
    """YAML text of a document holding rule data: each condition on a line of its own."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def to_data(rule: segment_pb2.Rule) -> dict[str, Any]:
    """The YAML data of a rule, as `from_data` reads it."""
    kind = rule.WhichOneof("kind")
    if kind == "all":
        return {"all": [to_data(child) for child in rule.all.rules]}
    if kind == "any":
        return {"any": [to_data(child) for child in rule.any.rules]}
    if kind == "not":
        negated: segment_pb2.Rule = getattr(rule, "not")  # `not` is a Python keyword
        trait = negated.trait
        if negated.WhichOneof("kind") == "trait" and trait.operator == segment_pb2.OPERATOR_EXISTS:
            return _Condition(trait=trait.trait, exists=False)
        return {"not": to_data(negated)}
    if kind == "trait":
        return _trait_data(rule.trait)
    if kind == "event":
        return _event_data(rule.event)
    if kind == "in_segment":
        return _Condition(in_segment=rule.in_segment.segment)
    if kind == "sample":
        sample: dict[str, Any] = {"percent": _number_data(rule.sample.percent)}
        if rule.sample.seed:
            sample["seed"] = rule.sample.seed
        return _Condition(sample=sample)
    raise ValueError("the rule sets none of: " + ", ".join(_KINDS))


# --- YAML to proto -----------------------------------------------------------------------------


def _negated(rule: segment_pb2.Rule) -> segment_pb2.Rule:
    negated = segment_pb2.Rule()
    getattr(negated, "not").CopyFrom(rule)
    return negated


def _only(data: dict[Any, Any], allowed: set[str], path: str) -> None:
    extra = sorted(str(key) for key in data if key not in allowed)
    if extra:
        raise InvalidArgument(f"{path}.{extra[0]}", "is not a field here")


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(field, "must be text")
    return value


def _operator(data: dict[Any, Any], subject: str, path: str) -> str:
    """The one operator key of a condition."""
    operators = [str(key) for key in data if key in _OPERATORS]
    _only(data, {subject, *operators}, path)
    if len(operators) != 1:
        raise InvalidArgument(f"{path}.operator", "needs exactly one operator, e.g. equals")
    return operators[0]


def _trait(data: dict[Any, Any], path: str) -> segment_pb2.Rule:
    key = _text(data["trait"], f"{path}.trait")
    operator = _operator(data, "trait", path)
    value = data[operator]
    condition = segment_pb2.TraitCondition(trait=key, operator=_OPERATORS[operator])
    if operator == "exists":
        if not isinstance(value, bool):
            raise InvalidArgument(f"{path}.value", "must be true or false")
        exists = segment_pb2.Rule(trait=condition)
        return exists if value else _negated(exists)
    if operator in _TIME_OPERATORS:
        point = _time(value, f"{path}.relative_to")
        if isinstance(point, str):
            condition.value.string_value = point
        else:
            condition.relative_to.CopyFrom(point)
    elif operator == "between":
        _put_between(condition, value, f"{path}.value")
    else:
        condition.value.CopyFrom(_operand(operator, value, f"{path}.value"))
    return segment_pb2.Rule(trait=condition)


def _put_between(condition: segment_pb2.TraitCondition, value: object, field: str) -> None:
    """Two numbers, two dates, or two times from one anchor (`relative_to` + two offsets)."""
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidArgument(field, "must be a list of two bounds")
    if all(_is_number(bound) for bound in value):
        condition.value.CopyFrom(_list([_scalar(bound, field) for bound in value]))
        return
    low, high = (_time(bound, field) for bound in value)
    if isinstance(low, str) and isinstance(high, str):
        condition.value.CopyFrom(_list([struct_pb2.Value(string_value=d) for d in (low, high)]))
    elif (
        isinstance(low, str)
        or isinstance(high, str)
        or low.trait != high.trait
        or low.HasField("days") != high.HasField("days")
    ):
        raise InvalidArgument(field, "bounds must be two dates or two times from one anchor")
    elif low.HasField("days"):
        condition.relative_to.CopyFrom(_calendar_day(low.trait, 0))
        days = [struct_pb2.Value(number_value=bound.days) for bound in (low, high)]
        condition.value.CopyFrom(_list(days))
    else:
        condition.relative_to.CopyFrom(_relative(low.trait, timedelta()))
        offsets = [format_duration(bound.offset.ToTimedelta()) for bound in (low, high)]
        condition.value.CopyFrom(_list([struct_pb2.Value(string_value=o) for o in offsets]))


def _event(data: dict[Any, Any], path: str) -> segment_pb2.EventCondition:
    _only(data, _EVENT_KEYS, path)
    where = data.get("where", [])
    if not isinstance(where, list):
        raise InvalidArgument(f"{path}.where", "must be a list")
    event = segment_pb2.EventCondition(event=_text(data["event"], f"{path}.event"))
    if data.get("at_most") is not None:
        event.at_most = _count(data["at_most"], f"{path}.at_most")
    if data.get("at_least") is not None:
        at_least = _count(data["at_least"], f"{path}.at_least")
        # Set only when leaving it out would mean another count: the service's own form.
        if at_least != _implied_at_least(event):
            event.at_least = at_least
    event.where.extend(
        property_condition(item, f"{path}.where[{i}]") for i, item in enumerate(where)
    )
    if "within" in data:
        event.within.FromTimedelta(_duration(data["within"], f"{path}.within"))
    if "since" in data:
        since = _time(data["since"], f"{path}.since")
        if isinstance(since, str):
            raise InvalidArgument(f"{path}.since", "must be relative to now or to a trait")
        event.since.CopyFrom(since)
    return event


def property_condition(data: object, path: str) -> segment_pb2.PropertyCondition:
    """`{property: route, equals: NRT-HNL}`: a condition on an event's properties."""
    if not isinstance(data, dict) or "property" not in data:
        raise InvalidArgument(path, "must be {property: name, <operator>: value}")
    operator = _operator(data, "property", path)
    value = data[operator]
    condition = segment_pb2.PropertyCondition(
        property=_text(data["property"], f"{path}.property"), operator=_OPERATORS[operator]
    )
    if operator == "exists":
        if value is not True:
            raise InvalidArgument(f"{path}.value", "must be true")
    elif operator in _TIME_OPERATORS:
        raise InvalidArgument(f"{path}.operator", f"{operator} is not for properties")
    elif operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidArgument(f"{path}.value", "must be a list of two bounds")
        if not all(_is_number(bound) for bound in value):
            raise InvalidArgument(f"{path}.value", "must be two numbers")
        condition.value.CopyFrom(_list([_scalar(bound, f"{path}.value") for bound in value]))
    else:
        condition.value.CopyFrom(_operand(operator, value, f"{path}.value"))
    return condition


def _sample(data: object, path: str) -> segment_pb2.Sample:
    if not isinstance(data, dict) or not set(data) <= {"percent", "seed"}:
        raise InvalidArgument(path, "must be {percent: 10, seed: text}")
    percent = data.get("percent")
    if not _is_number(percent):
        raise InvalidArgument(f"{path}.percent", "must be a number")
    return segment_pb2.Sample(percent=float(cast(float, percent)), seed=str(data.get("seed", "")))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _implied_at_least(event: segment_pb2.EventCondition) -> int:
    """What an unset `at_least` means: 1, or 0 beside an `at_most` (never included)."""
    return 0 if event.HasField("at_most") else 1


def _count(value: object, field: str) -> int:
    # An int64 in the proto.
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise InvalidArgument(field, "must be a whole number")
    return value


def _duration(value: object, field: str) -> timedelta:
    return parse_duration(_text(value, field), field)


def _operand(operator: str, value: object, field: str) -> struct_pb2.Value:
    if operator == "in":
        if not isinstance(value, list):
            raise InvalidArgument(field, "must be a list")
        return _list([_scalar(item, field) for item in value])
    return _scalar(value, field)


def _scalar(value: object, field: str) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    if isinstance(value, int | float):
        return struct_pb2.Value(number_value=float(value))
    raise InvalidArgument(field, "must be a string, number or boolean")


def _list(values: list[struct_pb2.Value]) -> struct_pb2.Value:
    return struct_pb2.Value(list_value=struct_pb2.ListValue(values=values))


def _relative(trait: str, offset: timedelta) -> segment_pb2.RelativeTime:
    point = segment_pb2.RelativeTime(trait=trait)
    point.offset.FromTimedelta(offset)
    return point


def _calendar_day(trait: str, days: int) -> segment_pb2.RelativeTime:
    return segment_pb2.RelativeTime(trait=trait, days=days)


def _time(value: object, field: str) -> TimePoint:
    if value == "now":
        return _relative("", timedelta())
    if value == "today":
        return _calendar_day("", 0)
    if isinstance(value, str):
        return value  # a date; the service says if it is not one
    if isinstance(value, dict) and len(value) == 1 and ("ago" in value or "from_now" in value):
        sign = -1 if "ago" in value else 1
        return _relative("", sign * _duration(next(iter(value.values())), field))
    if isinstance(value, dict) and len(value) == 1 and value.keys() & {"days_ago", "days_from_now"}:
        key = next(iter(value))
        sign = -1 if key == "days_ago" else 1
        return _calendar_day("", sign * _days(value[key], f"{field}.{key}"))
    if isinstance(value, dict) and "trait" in value and set(value) <= {"trait", "offset"}:
        offset = _duration(value["offset"], f"{field}.offset") if "offset" in value else None
        return _relative(_text(value["trait"], f"{field}.trait"), offset or timedelta())
    if isinstance(value, dict) and "trait" in value and set(value) == {"trait", "days"}:
        days = _days(value["days"], f"{field}.days")
        return _calendar_day(_text(value["trait"], f"{field}.trait"), days)
    raise InvalidArgument(
        field,
        "must be now, today, {ago: 7d}, {from_now: 7d}, {days_ago: 1}, {days_from_now: 1}, "
        "{trait: t}, {trait: t, offset: 7d}, {trait: t, days: 1} or a date",
    )


def _days(value: object, field: str) -> int:
    # Within int32, the proto's field; the service holds it to 100 years.
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**31 - 1:
        raise InvalidArgument(field, "must be a whole number of days")
    return value


# --- proto to YAML -----------------------------------------------------------------------------


class _Condition(dict[str, Any]):
    """A condition's data: written as one flow mapping, the way marketers write them."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(fields)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key


# Texts are quoted by what the loader would read them as (`'1e0'` is a float in YAML 1.2, not
# in 1.1), so every text written reads back as the same text.
_Dumper.yaml_implicit_resolvers = MarketerYamlLoader.yaml_implicit_resolvers
_Dumper.add_representer(
    _Condition,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)


def _operator_name(number: int) -> str:
    if number not in _OPERATOR_NAMES:
        raise ValueError(f"operator {number} has no YAML name")
    return _OPERATOR_NAMES[cast(segment_pb2.Operator, number)]


def _trait_data(condition: segment_pb2.TraitCondition) -> _Condition:
    operator = _operator_name(condition.operator)
    data = _Condition(trait=condition.trait)
    if operator == "exists":
        data["exists"] = True
    elif condition.HasField("relative_to") and operator in _TIME_OPERATORS:
        data[operator] = _point_data(condition.relative_to)
    elif (
        condition.HasField("relative_to")
        and operator == "between"
        and (condition.relative_to.HasField("days"))
    ):
        anchor = condition.relative_to
        data["between"] = [
            _days_data(anchor.trait, anchor.days + int(bound.number_value))
            for bound in condition.value.list_value.values
        ]
    elif condition.HasField("relative_to") and operator == "between":
        anchor = condition.relative_to
        data["between"] = [
            _time_data(anchor.trait, anchor.offset.ToTimedelta() + parse_duration(v, "value"))
            for v in (bound.string_value for bound in condition.value.list_value.values)
        ]
    else:
        data[operator] = _value_data(condition.value)
    return data


def _event_data(event: segment_pb2.EventCondition) -> _Condition:
    data = _Condition(event=event.event)
    # A count is written unless it is what leaving it out means.
    if event.HasField("at_least") and event.at_least != _implied_at_least(event):
        data["at_least"] = event.at_least
    if event.HasField("at_most"):
        data["at_most"] = event.at_most
    if event.HasField("within"):
        data["within"] = format_duration(event.within.ToTimedelta())
    if event.HasField("since"):
        data["since"] = _point_data(event.since)
    if event.where:
        data["where"] = [
            {
                "property": where.property,
                _operator_name(where.operator): (
                    True
                    if where.operator == segment_pb2.OPERATOR_EXISTS
                    else _value_data(where.value)
                ),
            }
            for where in event.where
        ]
    return data


def _point_data(point: segment_pb2.RelativeTime) -> object:
    if point.HasField("days"):
        return _days_data(point.trait, point.days)
    return _time_data(point.trait, point.offset.ToTimedelta())


def _days_data(trait: str, days: int) -> object:
    if trait:
        return {"trait": trait, "days": days}
    if not days:
        return "today"
    return {"days_ago": -days} if days < 0 else {"days_from_now": days}


def _time_data(trait: str, offset: timedelta) -> object:
    if trait:
        point: dict[str, str] = {"trait": trait}
        if offset:
            point["offset"] = format_duration(offset)
        return point
    if not offset:
        return "now"
    if offset < timedelta():
        return {"ago": format_duration(-offset)}
    return {"from_now": format_duration(offset)}


def _number_data(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _value_data(value: struct_pb2.Value) -> object:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return _number_data(value.number_value)
    if kind == "list_value":
        return [_value_data(item) for item in value.list_value.values]
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None
