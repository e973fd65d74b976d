"""The YAML form of a rule, the one a marketer writes and keeps in git:

    all:
      - {trait: drug_type, equals: pill}
      - {trait: prescribed_at, before: {ago: 1d}}
      - not: {event: payment_completed, since: {trait: prescribed_at}}
      - {event: search, at_least: 2, within: 7d, where: [{property: route, equals: NRT-HNL}]}

A condition names its subject (`trait`, `event`, `in_segment`, `sample`) and one operator key.
Times are `now`, `{ago: 18d}`, `{from_now: 7d}`, `{trait: prescribed_at, offset: 18d}` or an
ISO date. Errors carry the field path of the proto form (`rule.all.rules[2].trait.value`).
"""

from datetime import date, timedelta
from typing import Any

import yaml

from engage.errors import InvalidArgument
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
    Scalar,
    TimePoint,
    TraitCondition,
    format_duration,
    parse_duration,
    validate,
)
from services.segments.rules_proto import parse_date

_KINDS = ("all", "any", "not", "trait", "event", "in_segment", "sample")
_EVENT_KEYS = {"event", "where", "at_least", "at_most", "within", "since"}
_OPERATORS = {operator.value: operator for operator in Operator}


def from_yaml(text: str, path: str = "rule") -> Rule:
    """The validated rule a YAML document describes."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidArgument(path, f"is not valid YAML: {error}") from None
    return from_data(data, path)


def from_data(data: object, path: str = "rule") -> Rule:
    """The validated rule of already-loaded YAML (e.g. the `rule:` of a segment file)."""
    return validate(_rule(data, path), path)


def to_yaml(rule: Rule) -> str:
    return yaml.safe_dump(to_data(rule), sort_keys=False, allow_unicode=True)


def to_data(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, All | AnyOf):
        return {"all" if isinstance(rule, All) else "any": [to_data(r) for r in rule.rules]}
    if isinstance(rule, Not):
        return {"not": to_data(rule.rule)}
    if isinstance(rule, TraitCondition):
        return {"trait": rule.trait, rule.operator.value: _operand_data(rule.operand)}
    if isinstance(rule, EventCondition):
        return _event_data(rule)
    if isinstance(rule, InSegment):
        return {"in_segment": rule.segment}
    sample: dict[str, Any] = {"percent": _number_data(rule.percent)}
    if rule.seed:
        sample["seed"] = rule.seed
    return {"sample": sample}


def _rule(data: object, path: str) -> Rule:
    if not isinstance(data, dict):
        raise InvalidArgument(path, "must be a mapping with one of: " + ", ".join(_KINDS))
    kinds = [kind for kind in _KINDS if kind in data]
    if len(kinds) != 1:
        raise InvalidArgument(path, "must have exactly one of: " + ", ".join(_KINDS))
    kind = kinds[0]
    if kind in ("all", "any"):
        _only(data, {kind}, path)
        items = data[kind]
        if not isinstance(items, list):
            raise InvalidArgument(f"{path}.{kind}.rules", "must be a list")
        children = tuple(_rule(item, f"{path}.{kind}.rules[{i}]") for i, item in enumerate(items))
        return All(children) if kind == "all" else AnyOf(children)
    if kind == "not":
        _only(data, {kind}, path)
        return Not(_rule(data["not"], f"{path}.not"))
    if kind == "trait":
        return _trait(data, f"{path}.trait")
    if kind == "event":
        return _event(data, f"{path}.event")
    if kind == "in_segment":
        _only(data, {kind}, path)
        return InSegment(_text(data[kind], f"{path}.in_segment.segment"))
    _only(data, {kind}, path)
    sample = data["sample"]
    if not isinstance(sample, dict) or not set(sample) <= {"percent", "seed"}:
        raise InvalidArgument(f"{path}.sample", "must be {percent: 10, seed: text}")
    percent = sample.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise InvalidArgument(f"{path}.sample.percent", "must be a number")
    return Sample(float(percent), str(sample.get("seed", "")))


def _only(data: dict[Any, Any], allowed: set[str], path: str) -> None:
    extra = sorted(str(key) for key in data if key not in allowed)
    if extra:
        raise InvalidArgument(f"{path}.{extra[0]}", "is not a field here")


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(field, "must be text")
    return value


def _trait(data: dict[Any, Any], path: str) -> Rule:
    key = _text(data["trait"], f"{path}.trait")
    operators = [name for name in data if name in _OPERATORS]
    _only(data, {"trait", *operators}, path)
    if len(operators) != 1:
        raise InvalidArgument(f"{path}.operator", "needs exactly one operator, e.g. equals")
    operator = _OPERATORS[operators[0]]
    value = data[operators[0]]
    if operator is Operator.EXISTS:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{path}.value", "must be true or false")
        exists = TraitCondition(key, operator)
        return exists if value else Not(exists)
    return TraitCondition(key, operator, _operand(operator, value, path))


def _event(data: dict[Any, Any], path: str) -> EventCondition:
    _only(data, _EVENT_KEYS, path)
    where_data = data.get("where", [])
    if not isinstance(where_data, list):
        raise InvalidArgument(f"{path}.where", "must be a list")
    where = tuple(_property(item, f"{path}.where[{i}]") for i, item in enumerate(where_data))
    at_most = data.get("at_most")
    since = _time(data["since"], f"{path}.since") if "since" in data else None
    if isinstance(since, At):
        raise InvalidArgument(f"{path}.since", "must be relative to now or to a trait")
    return EventCondition(
        event=_text(data["event"], f"{path}.event"),
        where=where,
        at_least=_count(data.get("at_least", 1), f"{path}.min_count"),
        at_most=None if at_most is None else _count(at_most, f"{path}.max_count"),
        within=_duration(data["within"], f"{path}.within") if "within" in data else None,
        since=since,
    )


def _property(data: object, path: str) -> PropertyCondition:
    if not isinstance(data, dict) or "property" not in data:
        raise InvalidArgument(path, "must be {property: name, <operator>: value}")
    operators = [name for name in data if name in _OPERATORS]
    _only(data, {"property", *operators}, path)
    if len(operators) != 1:
        raise InvalidArgument(f"{path}.operator", "needs exactly one operator, e.g. equals")
    operator = _OPERATORS[operators[0]]
    key = _text(data["property"], f"{path}.property")
    if operator is Operator.EXISTS:
        if data[operators[0]] is not True:
            raise InvalidArgument(f"{path}.value", "must be true")
        return PropertyCondition(key, operator)
    return PropertyCondition(key, operator, _operand(operator, data[operators[0]], path))


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, "must be a whole number")
    return value


def _duration(value: object, field: str) -> timedelta:
    return parse_duration(_text(value, field), field)


def _scalar(value: object, field: str) -> Scalar:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    raise InvalidArgument(field, "must be a string, number or boolean")


def _operand(operator: Operator, value: object, path: str) -> Operand:
    field = f"{path}.value"
    if operator is Operator.IN:
        if not isinstance(value, list):
            raise InvalidArgument(field, "must be a list")
        return tuple(_scalar(item, field) for item in value)
    if operator in (Operator.BEFORE, Operator.AFTER):
        return _time(value, f"{path}.relative_to")
    if operator is Operator.BETWEEN:
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidArgument(field, "must be a list of two bounds")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return (float(value[0]), float(value[1]))
        return (_time(value[0], field), _time(value[1], field))
    return _scalar(value, field)


def _time(value: object, field: str) -> TimePoint:
    if value == "now":
        return Relative()
    if isinstance(value, date | str):
        text = value.isoformat() if isinstance(value, date) else value
        return At(parse_date(text, field))
    if isinstance(value, dict) and len(value) == 1 and ("ago" in value or "from_now" in value):
        sign = -1 if "ago" in value else 1
        return Relative("", sign * _duration(next(iter(value.values())), field))
    if isinstance(value, dict) and "trait" in value and set(value) <= {"trait", "offset"}:
        offset = _duration(value["offset"], f"{field}.offset") if "offset" in value else None
        return Relative(_text(value["trait"], f"{field}.trait"), offset or timedelta())
    raise InvalidArgument(field, "must be now, {ago: 7d}, {from_now: 7d}, {trait: t} or a date")


def _number_data(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _time_data(point: TimePoint) -> object:
    if isinstance(point, At):
        return point.when.isoformat()
    if point.trait:
        data: dict[str, str] = {"trait": point.trait}
        if point.offset:
            data["offset"] = format_duration(point.offset)
        return data
    if not point.offset:
        return "now"
    if point.offset < timedelta():
        return {"ago": format_duration(-point.offset)}
    return {"from_now": format_duration(point.offset)}


def _operand_data(operand: Operand) -> object:
    if operand is None:
        return True  # exists
    if isinstance(operand, tuple):
        return [_operand_data(item) for item in operand]
    if isinstance(operand, At | Relative):
        return _time_data(operand)
    if isinstance(operand, float | int) and not isinstance(operand, bool):
        return _number_data(operand)
    return operand


def _event_data(rule: EventCondition) -> dict[str, Any]:
    data: dict[str, Any] = {"event": rule.event}
    if rule.at_least != 1:
        data["at_least"] = rule.at_least
    if rule.at_most is not None:
        data["at_most"] = rule.at_most
    if rule.within is not None:
        data["within"] = format_duration(rule.within)
    if rule.since is not None:
        data["since"] = _time_data(rule.since)
    if rule.where:
        data["where"] = [
            {"property": w.property, w.operator.value: _operand_data(w.operand)} for w in rule.where
        ]
    return data
