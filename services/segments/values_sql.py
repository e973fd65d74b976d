"""The value rules of `engage/rules/language.py` in SQL: typed reads of a path in a JSON
document and the value operators over them, on SQLite (JSON1) and PostgreSQL (jsonb), agreeing
with `evaluate.value_matches`.

A value is read by its JSON type first (`json_type` / `jsonb_typeof`) and only then cast, inside
a CASE, so a text never reaches a numeric cast unless it is a plain decimal. A read that finds
no value of the wanted type is NULL; the compiler COALESCEs a condition to false.
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from engage.rules import paths
from engage.rules.language import (
    DECIMAL,
    MAX_DECIMAL,
    Operand,
    Operator,
    decimal_number,
    text_boolean,
    value_kind,
)

Bool = ColumnElement[bool]
_BOOLEANS = ["true", "false"]
# A literal: a bound JSONB parameter would be serialised again, as the JSON text "[]".
_EMPTY_ARRAY = sa.literal_column("'[]'::jsonb", JSONB)


def _glob(text: ColumnElement[Any], pattern: str) -> Bool:
    return text.op("GLOB")(pattern)


def _sqlite_decimal(text: ColumnElement[Any]) -> Bool:
    """`rules.DECIMAL` with GLOB, as SQLite has no regular expressions."""
    return sa.and_(
        sa.func.length(text) <= MAX_DECIMAL,
        sa.or_(_glob(text, "[0-9]*"), _glob(text, "-[0-9]*")),
        sa.not_(_glob(sa.func.substr(text, 2), "*[^0-9.]*")),
        sa.not_(_glob(text, "*.*.*")),
        sa.not_(_glob(text, "*.")),
        sa.not_(sa.or_(_glob(text, "0[0-9]*"), _glob(text, "-0[0-9]*"))),
    )


class _SqliteValue:
    """One JSON value in SQLite: its `json_type` name and its SQL value (a text unquoted,
    a boolean 1 or 0), as `json_extract` and `json_each` give them."""

    def __init__(self, kind: ColumnElement[Any], raw: ColumnElement[Any]) -> None:
        self.kind = kind
        self.raw = raw

    def text(self) -> ColumnElement[Any]:
        return sa.case((self.kind == "text", self.raw))

    def number(self, texts: bool = True) -> ColumnElement[Any]:
        """A number, or (`texts`) a text that is a plain decimal, as a double."""
        number = sa.cast(self.raw, sa.Float)
        whens: list[tuple[Bool, Any]] = [(self.kind.in_(["integer", "real"]), number)]
        if texts:
            whens.append((sa.and_(self.kind == "text", _sqlite_decimal(self.raw)), number))
        return sa.case(*whens)

    def integer(self) -> ColumnElement[Any]:
        return sa.case((self.kind == "integer", sa.cast(self.raw, sa.BigInteger)))

    def boolean(self, texts: bool = True) -> ColumnElement[Any]:
        """'true' or 'false' for a boolean, or (`texts`) for that text; else NULL."""
        whens: list[tuple[Bool, Any]] = [(self.kind.in_(_BOOLEANS), self.kind)]
        if texts:
            whens.append((sa.and_(self.kind == "text", self.raw.in_(_BOOLEANS)), self.raw))
        return sa.case(*whens)

    def present(self) -> Bool:
        return self.kind != "null"

    def is_array(self) -> Bool:
        return self.kind == "array"


class _SqliteJson:
    """Typed reads of paths in a JSON text column, SQLite's JSON1 functions."""

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column

    def value(self, path: str) -> _SqliteValue:
        at = _sqlite_path(path)
        kind = sa.func.json_type(self.column, at, type_=sa.String)
        return _SqliteValue(kind, sa.func.json_extract(self.column, at))

    def integer(self, path: str) -> ColumnElement[Any]:
        """An integer at `path` (the date index's microseconds), else NULL."""
        return self.value(path).integer()

    def elements(self, path: str) -> tuple[FromClause, _SqliteValue]:
        """The elements of the array at `path` as rows (only read where it is an array)."""
        each = sa.func.json_each(self.column, _sqlite_path(path)).table_valued("type", "value")
        return each, _SqliteValue(each.c.type, each.c.value)


def _sqlite_path(path: str) -> str:
    # Every key quoted, so a key with dots is one key; `paths` keeps `"` out of keys.
    return "$" + "".join(f'."{key}"' for key in paths.parse(path))


class _PostgresValue:
    """One jsonb value in PostgreSQL."""

    def __init__(self, value: ColumnElement[Any]) -> None:
        self.value = value
        self.kind = sa.func.jsonb_typeof(value, type_=sa.String)
        self.raw = value.op("#>>", return_type=sa.String)(sa.literal_column("'{}'"))

    def text(self) -> ColumnElement[Any]:
        return sa.case((self.kind == "string", self.raw))

    def number(self, texts: bool = True) -> ColumnElement[Any]:
        number = sa.cast(self.raw, sa.Float)
        whens: list[tuple[Bool, Any]] = [(self.kind == "number", number)]
        if texts:
            decimal = sa.and_(
                sa.func.length(self.raw) <= MAX_DECIMAL,
                self.raw.regexp_match(f"^{DECIMAL.pattern}$"),
            )
            whens.append((sa.and_(self.kind == "string", decimal), number))
        return sa.case(*whens)

    def integer(self) -> ColumnElement[Any]:
        return sa.case((self.kind == "number", sa.cast(self.raw, sa.BigInteger)))

    def boolean(self, texts: bool = True) -> ColumnElement[Any]:
        whens: list[tuple[Bool, Any]] = [(self.kind == "boolean", self.raw)]
        if texts:
            whens.append((sa.and_(self.kind == "string", self.raw.in_(_BOOLEANS)), self.raw))
        return sa.case(*whens)

    def present(self) -> Bool:
        return self.kind != "null"

    def is_array(self) -> Bool:
        return self.kind == "array"


class _PostgresJson:
    """The same reads with PostgreSQL's `jsonb_extract_path` and `jsonb_typeof`."""

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.doc: Any = column if isinstance(column.type, JSONB) else sa.cast(column, JSONB)

    def _at(self, keys: paths.Keys) -> ColumnElement[Any]:
        return sa.func.jsonb_extract_path(self.doc, *keys, type_=JSONB)

    def value(self, path: str) -> _PostgresValue:
        keys = paths.parse(path)
        value = self._at(keys)
        # A key holding digits is read as an index when it meets an array; a path never
        # steps into an array, so each object on the way is checked to be one.
        last_digits = max((i for i, key in enumerate(keys) if i and _has_digit(key)), default=0)
        if last_digits:
            objects = [
                sa.func.jsonb_typeof(self._at(keys[:length])) == "object"
                for length in range(1, last_digits + 1)
            ]
            value = sa.case((sa.and_(*objects), value))
        return _PostgresValue(value)

    def integer(self, path: str) -> ColumnElement[Any]:
        return self.value(path).integer()

    def elements(self, path: str) -> tuple[FromClause, _PostgresValue]:
        value = self.value(path)
        # jsonb_array_elements fails on anything but an array, whatever the WHERE says.
        array = sa.case((value.is_array(), value.value), else_=_EMPTY_ARRAY)
        each = sa.func.jsonb_array_elements(array).table_valued(sa.column("value", JSONB))
        return each, _PostgresValue(each.c.value)


def _has_digit(key: str) -> bool:
    return any(char.isdigit() for char in key)


Json = _SqliteJson | _PostgresJson
Value = _SqliteValue | _PostgresValue


def json_reader(dialect: str) -> type[Json]:
    """The reader of JSON documents for a dialect ("sqlite" or "postgresql")."""
    return _PostgresJson if dialect == "postgresql" else _SqliteJson


def value_matches(json: Json, path: str, operator: Operator, operand: Operand) -> Bool:
    """The SQL of `evaluate.value_matches`; NULL where Python says False for want of a value."""
    value = json.value(path)
    if operator is Operator.EXISTS:
        return value.present()
    if operator is Operator.EQUALS:
        return _has(json, path, lambda item: _equal(item, operand))
    if operator is Operator.NOT_EQUALS:
        equal = _has(json, path, lambda item: _equal(item, operand))
        return sa.not_(sa.func.coalesce(equal, sa.false()))
    if operator is Operator.IN:
        assert isinstance(operand, tuple)
        return _has(json, path, lambda item: sa.or_(*(_equal(item, x) for x in operand)))
    if operator is Operator.CONTAINS:
        elements = _elements(json, path, lambda item: _equal(item, operand))
        if not isinstance(operand, str):
            return elements
        position = "strpos" if isinstance(json, _PostgresJson) else "instr"
        return sa.or_(getattr(sa.func, position)(value.text(), operand) > 0, elements)
    number = value.number()
    if operator is Operator.BETWEEN:
        assert isinstance(operand, tuple)
        low, high = (sa.literal(float(bound), sa.Float) for bound in operand)  # type: ignore[arg-type]
        return number.between(low, high)
    bound = sa.literal(float(operand), sa.Float)  # type: ignore[arg-type]
    if operator is Operator.GREATER_THAN:
        return number > bound
    if operator is Operator.GREATER_OR_EQUAL:
        return number >= bound
    if operator is Operator.LESS_THAN:
        return number < bound
    return number <= bound


def _has(json: Json, path: str, test: Callable[[Value], Bool]) -> Bool:
    """The value at `path` passes, or (an array) one of its elements does."""
    return sa.or_(test(json.value(path)), _elements(json, path, test))


def _elements(json: Json, path: str, test: Callable[[Value], Bool]) -> Bool:
    """An element of the array at `path` passes (false when it is no array)."""
    rows, element = json.elements(path)
    found = sa.select(sa.literal(1)).select_from(rows).where(test(element)).exists()
    return sa.and_(json.value(path).is_array(), found)


def _equal(value: Value, operand: object) -> Bool:
    """`evaluate._equal`: same kind, or a number (a boolean) and the text of one."""
    kind = value_kind(operand)
    if kind == "number":
        return value.number() == sa.literal(float(operand), sa.Float)  # type: ignore[arg-type]
    if kind == "bool":
        return value.boolean() == ("true" if operand else "false")
    assert isinstance(operand, str)
    equal = value.text() == sa.literal(operand, sa.String)
    number, boolean = decimal_number(operand), text_boolean(operand)
    if number is not None:
        return sa.or_(equal, value.number(texts=False) == sa.literal(number, sa.Float))
    if boolean is not None:
        return sa.or_(equal, value.boolean(texts=False) == operand)
    return equal
