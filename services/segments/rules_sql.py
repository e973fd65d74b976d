"""A rule compiled to one SQL boolean over the segments tables, on SQLite and PostgreSQL.

The expression is evaluated per row of `profiles` (event and membership conditions are
correlated subqueries), so a segment is counted or listed in one query and no profile is
loaded into Python. It agrees with `evaluate.py` on every profile:

- every trait condition is COALESCEd to false, so a missing trait (SQL NULL) is false and NOT
  of it is true, as in Python (the other conditions are never NULL);
- values are read by JSON type first (`json_type` / `jsonb_typeof`) and only then cast, inside
  a CASE, so a string never reaches a numeric cast;
- dates come from `profiles.trait_dates` (microseconds, computed in Python on write), and now
  and every offset are bound as parameters, so all time arithmetic is on integers.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.errors import FailedPrecondition
from services.segments import data_errors
from services.segments.models import EVENTS, MEMBERSHIPS, PROFILES
from services.segments.rules import (
    BUCKETS,
    All,
    AnyOf,
    At,
    EventCondition,
    InSegment,
    Not,
    Operand,
    Operator,
    Relative,
    Rule,
    Sample,
    TraitCondition,
    micros,
    sample_threshold,
    stable_bucket,
    value_kind,
)

Bool = ColumnElement[bool]
_MICRO = timedelta(microseconds=1)


class _SqliteJson:
    """Typed reads of one top-level key of a JSON text column, SQLite's JSON1 functions."""

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column

    def _extract(self, key: str) -> ColumnElement[Any]:
        return sa.func.json_extract(self.column, _path(key))

    def _type(self, key: str) -> ColumnElement[str]:
        return sa.func.json_type(self.column, _path(key), type_=sa.String)

    def text(self, key: str) -> ColumnElement[Any]:
        return sa.case((self._type(key) == "text", self._extract(key)))

    def number(self, key: str) -> ColumnElement[Any]:
        number = sa.cast(self._extract(key), sa.Float)
        return sa.case((self._type(key).in_(["integer", "real"]), number))

    def boolean(self, key: str) -> ColumnElement[Any]:
        """'true' or 'false' for a JSON boolean, else NULL."""
        return sa.case((self._type(key).in_(["true", "false"]), self._type(key)))

    def present(self, key: str) -> Bool:
        return self._type(key) != "null"

    def integer(self, key: str) -> ColumnElement[Any]:
        return sa.cast(self._extract(key), sa.BigInteger)


class _PostgresJson:
    """The same reads with PostgreSQL's jsonb operators (`->`, `->>`, `jsonb_typeof`)."""

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.doc: Any = column if isinstance(column.type, JSONB) else sa.cast(column, JSONB)

    def _type(self, key: str) -> ColumnElement[str]:
        return sa.func.jsonb_typeof(self.doc[key], type_=sa.String)

    def text(self, key: str) -> ColumnElement[Any]:
        return sa.case((self._type(key) == "string", self.doc[key].astext))

    def number(self, key: str) -> ColumnElement[Any]:
        number = sa.cast(self.doc[key].astext, sa.Float)
        return sa.case((self._type(key) == "number", number))

    def boolean(self, key: str) -> ColumnElement[Any]:
        return sa.case((self._type(key) == "boolean", self.doc[key].astext))

    def present(self, key: str) -> Bool:
        return self._type(key) != "null"

    def integer(self, key: str) -> ColumnElement[Any]:
        return sa.cast(self.doc[key].astext, sa.BigInteger)


Json = _SqliteJson | _PostgresJson


def _document(text: sa.Column[Any], dialect: str) -> ColumnElement[Any]:
    """A trait document column; on PostgreSQL its parsed copy (migration 0005)."""
    if dialect != "postgresql":
        return text
    return sa.literal_column(f"{PROFILES.name}.{text.name}_doc", type_=JSONB)


def _path(key: str) -> str:
    # Quoted, so a key with dots is one key, as in Python; validation keeps `"` out.
    return f'$."{key}"'


class UnreadableValue(FailedPrecondition):
    """A rule's SQL met a stored value the database cannot read as the rule needs (PostgreSQL
    cannot parse an old event's properties as jsonb, say): that evaluation fails, and says so."""


@contextmanager
def stored_values_read(field: str, what: str = "the rule") -> Iterator[None]:
    """Around running a rule's SQL: the driver's data error (a cast or parse of some stored
    value that failed) becomes FAILED_PRECONDITION naming `field` and `what` was evaluated,
    never INTERNAL. The driver's message is left out: it quotes the value."""
    try:
        yield
    except exc.DBAPIError as error:
        if not data_errors.refused_value(error):
            raise
        code = data_errors.sqlstate(error) or type(error.orig).__name__
        raise UnreadableValue(
            f"{what} cannot be evaluated: a stored trait or event property it reads cannot be "
            f"read as the rule needs (database error {code})",
            field,
        ) from None


def compile_rule(rule: Rule, now: datetime, dialect: str) -> Bool:
    """The rule as a boolean over `profiles` ("sqlite" or "postgresql"), now bound."""
    return _Compiler(now, dialect).rule(rule)


def members_query(workspace: str, rule: Rule, now: datetime, dialect: str) -> sa.Select[tuple[str]]:
    """`SELECT id FROM profiles` of the workspace's members, by id."""
    condition = compile_rule(rule, now, dialect)
    profiles = PROFILES.c
    return sa.select(profiles.id).where(profiles.workspace == workspace, condition)


async def count_members(session: AsyncSession, workspace: str, rule: Rule, now: datetime) -> int:
    members = members_query(workspace, rule, now, _dialect(session)).subquery()
    count = await session.exec(select(sa.func.count()).select_from(members))
    return int(count.one())


async def member_ids(
    session: AsyncSession, workspace: str, rule: Rule, now: datetime, limit: int | None = None
) -> list[str]:
    """The members' profile ids in id order (`limit` first ones)."""
    query = members_query(workspace, rule, now, _dialect(session)).order_by(PROFILES.c.id)
    rows = await session.exec(query.limit(limit))  # type: ignore[call-overload]
    return [row[0] for row in rows.all()]


async def matching_ids(
    session: AsyncSession, workspace: str, rule: Rule, now: datetime, profile_ids: list[str]
) -> set[str]:
    """Which of these profiles match: re-evaluation of the profiles an event touched."""
    if not profile_ids:
        return set()
    query = members_query(workspace, rule, now, _dialect(session))
    rows = await session.exec(query.where(PROFILES.c.id.in_(profile_ids)))  # type: ignore[call-overload]
    return {row[0] for row in rows.all()}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


class _Compiler:
    def __init__(self, now: datetime, dialect: str) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        self.now = now.astimezone(UTC)
        self.now_us = micros(now)
        self.dialect = dialect
        json: type[Json] = _PostgresJson if dialect == "postgresql" else _SqliteJson
        self.json = json
        self.traits = json(_document(PROFILES.c.traits, dialect))
        self.dates = json(_document(PROFILES.c.trait_dates, dialect))

    def rule(self, rule: Rule) -> Bool:
        if isinstance(rule, All):
            return sa.and_(*(self.rule(child) for child in rule.rules))
        if isinstance(rule, AnyOf):
            return sa.or_(*(self.rule(child) for child in rule.rules))
        if isinstance(rule, Not):
            return sa.not_(self.rule(rule.rule))
        if isinstance(rule, TraitCondition):
            return sa.func.coalesce(self.trait(rule), sa.false(), type_=sa.Boolean)
        # Event, membership and sample conditions are never NULL; left bare, an EXISTS is
        # planned by PostgreSQL as a semi-join instead of a subquery run per profile.
        return self.condition(rule)

    def condition(self, rule: Rule) -> Bool:
        if isinstance(rule, TraitCondition):
            return self.trait(rule)
        if isinstance(rule, EventCondition):
            return self.event(rule)
        if isinstance(rule, InSegment):
            memberships = MEMBERSHIPS.c
            return sa.exists().where(
                memberships.workspace == PROFILES.c.workspace,
                memberships.segment_id == rule.segment,
                memberships.profile_id == PROFILES.c.id,
            )
        assert isinstance(rule, Sample)
        shifted = (PROFILES.c.sample_bucket + stable_bucket(rule.seed)) % BUCKETS
        return shifted < sample_threshold(rule.percent)

    def point(self, point: object) -> ColumnElement[Any]:
        """A time operand in microseconds (NULL when its anchor trait is not a date)."""
        if isinstance(point, At):
            return sa.literal(micros(point.when), sa.BigInteger)
        assert isinstance(point, Relative)
        offset = point.offset // _MICRO
        if not point.trait:
            return sa.literal(self.now_us + offset, sa.BigInteger)
        return self.dates.integer(point.trait) + sa.literal(offset, sa.BigInteger)

    def trait(self, rule: TraitCondition) -> Bool:
        operand = rule.operand
        at = self.dates.integer(rule.trait)
        if rule.operator is Operator.BEFORE:
            return at < self.point(operand)
        if rule.operator is Operator.AFTER:
            return at > self.point(operand)
        if isinstance(operand, tuple) and isinstance(operand[0], At | Relative):
            return at.between(self.point(operand[0]), self.point(operand[1]))
        return value_matches(self.traits, rule.trait, rule.operator, operand)

    def event(self, rule: EventCondition) -> Bool:
        events = EVENTS.alias("e")
        where: list[ColumnElement[bool]] = [
            events.c.workspace == PROFILES.c.workspace,
            events.c.profile_id == PROFILES.c.id,
            events.c.event == rule.event,
        ]
        if rule.within is not None:
            where.append(events.c.timestamp >= self.now - rule.within)
        anchor: ColumnElement[Any] | None = None
        if rule.since is not None and rule.since.trait:
            anchor = self.point(rule.since)
            where.append(self._event_micros(events.c.timestamp) >= anchor)
        elif rule.since is not None:
            where.append(events.c.timestamp >= self.now + rule.since.offset)
        properties = self.json(events.c.properties)
        for condition in rule.where:
            where.append(
                value_matches(properties, condition.property, condition.operator, condition.operand)
            )
        if rule.at_least == 1 and rule.at_most is None:
            found: Bool = sa.exists().where(*where)
        else:
            count = sa.select(sa.func.count()).select_from(events).where(*where).scalar_subquery()
            found = count >= rule.at_least
            if rule.at_most is not None:
                found = sa.and_(found, count <= rule.at_most)
        # "Since a trait" for a profile without that date is false, not "zero events".
        return found if anchor is None else sa.and_(anchor.is_not(None), found)

    def _event_micros(self, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return sa.cast(sa.extract("epoch", timestamp) * 1_000_000, sa.BigInteger)
        # SQLAlchemy keeps SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here).
        seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(timestamp, 1, 19)), sa.BigInteger)
        fraction = sa.cast(sa.func.substr(timestamp, 21, 6), sa.BigInteger)
        return seconds * 1_000_000 + fraction


def value_matches(json: Json, key: str, operator: Operator, operand: Operand) -> Bool:
    """The SQL of `evaluate.value_matches`; NULL where Python says False for want of a value."""
    if operator is Operator.EXISTS:
        return json.present(key)
    if operator is Operator.EQUALS:
        return _equal(json, key, operand)
    if operator is Operator.NOT_EQUALS:
        value, expected = _typed(json, key, operand)
        return value != expected
    if operator is Operator.IN:
        assert isinstance(operand, tuple)
        return sa.or_(*(sa.func.coalesce(_equal(json, key, item), sa.false()) for item in operand))
    if operator is Operator.CONTAINS:
        position = "strpos" if isinstance(json, _PostgresJson) else "instr"
        return getattr(sa.func, position)(json.text(key), operand) > 0  # type: ignore[no-any-return]
    number = json.number(key)
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


def _typed(json: Json, key: str, operand: object) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The value read as the operand's type (NULL if it is another type), and the operand."""
    kind = value_kind(operand)
    if kind == "number":
        return json.number(key), sa.literal(float(operand), sa.Float)  # type: ignore[arg-type]
    if kind == "bool":
        return json.boolean(key), sa.literal("true" if operand else "false", sa.String)
    return json.text(key), sa.literal(operand, sa.String)


def _equal(json: Json, key: str, operand: object) -> Bool:
    value, expected = _typed(json, key, operand)
    return value == expected
