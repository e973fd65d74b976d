"""The `filter` of ListProfiles: a small subset of AIP-160, compiled to SQL over `profiles`.

Supported: restrictions `FIELD = LITERAL` joined with `AND` (upper case, as in AIP-160), where
FIELD is one of

- `user_id = "u1"`                                   the profile's user id
- `email = "a@example.com"`                          the profile's email trait
- `traits.<key> = "gold"` / `= 3` / `= 2.5` / `= true` the trait, compared as `equals` in
  segment rules (`engage/rules/language.py`: `3` and `"3"` are equal, `"03"` and `"3"` are not)
- `segment = "workspaces/{w}/segments/{s}"`          members of that segment now

String literals are double-quoted (`\\"` and `\\\\` escape). Anything else (OR, NOT, other
operators, other fields, parentheses) is INVALID_ARGUMENT on `filter`.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from engage.errors import InvalidArgument
from engage.resources import is_valid_id, read_name
from engage.rules.language import InSegment, Operator, TraitCondition
from services.segments.models import Profile
from services.segments.rules_sql import compile_rule

FIELD = "filter"
MAX_LENGTH = 2000
_TRAIT_KEY = re.compile(r"^[\w\-:@$]{1,128}$")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<equals>=)
      | (?P<word>[A-Za-z_][\w.\-:@$]*)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)

Literal = str | float | int | bool


@dataclass(frozen=True)
class Restriction:
    field: str
    value: Literal


def parse(text: str) -> list[Restriction]:
    """`a = 1 AND b = "x"` as restrictions; raises InvalidArgument("filter", ...)."""
    if len(text) > MAX_LENGTH:
        raise InvalidArgument(FIELD, f"longer than {MAX_LENGTH} characters")
    tokens = _tokens(text)
    restrictions: list[Restriction] = []
    position = 0
    while True:
        if len(tokens) < position + 3:
            raise InvalidArgument(FIELD, "expected `field = value` (joined with AND)")
        (field_kind, field), (equals_kind, _), (value_kind, raw) = tokens[position : position + 3]
        if field_kind != "word" or equals_kind != "equals":
            raise InvalidArgument(FIELD, "expected `field = value` (joined with AND)")
        restrictions.append(Restriction(field, _literal(value_kind, raw)))
        position += 3
        if position == len(tokens):
            return restrictions
        if tokens[position] != ("word", "AND"):
            raise InvalidArgument(FIELD, "restrictions can only be joined with AND")
        position += 1


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing blanks are left
            break
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "other":
            raise InvalidArgument(FIELD, f"unsupported {match.group(kind)!r} at {match.start()}")
        tokens.append((kind, match.group(kind)))
    return tokens


def _literal(kind: str, raw: str) -> Literal:
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if kind == "number":
        number = float(raw)
        return int(number) if number.is_integer() and "." not in raw else number
    if kind == "word" and raw in ("true", "false"):
        return raw == "true"
    raise InvalidArgument(FIELD, f'expected "string", number, true or false, not {raw!r}')


def condition(
    restriction: Restriction, workspace: str, dialect: str, now: datetime
) -> ColumnElement[bool]:
    """The SQL of one restriction over the `profiles` table."""
    field, value = restriction.field, restriction.value
    if field in ("user_id", "email", "segment") and not isinstance(value, str):
        raise InvalidArgument(FIELD, f"{field} takes a string value")
    if field == "user_id":
        return col(Profile.user_id) == value
    if field == "email":
        return col(Profile.email) == value
    if field == "segment":
        name = read_name(str(value), "segments")
        if name is None or name.workspace != workspace or not is_valid_id(name.id):
            raise InvalidArgument(
                FIELD, f'segment must be "workspaces/{workspace}/segments/{{segment}}"'
            )
        return compile_rule(InSegment(name.id), now, dialect)
    if field.startswith("traits."):
        key = field.removeprefix("traits.")
        if not _TRAIT_KEY.match(key):
            raise InvalidArgument(FIELD, f"unsupported trait key {key!r}")
        rule = TraitCondition(key, Operator.EQUALS, value)
        return compile_rule(rule, now, dialect)
    raise InvalidArgument(
        FIELD, f"unsupported field {field!r}: use user_id, email, segment or traits.<key>"
    )
