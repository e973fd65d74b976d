"""A rule compiled to one SQL boolean over the segments tables, on SQLite and PostgreSQL.

The expression is evaluated per row of `profiles` (event and membership conditions are
correlated subqueries), so a segment is counted or listed in one query and no profile is
loaded into Python. It agrees with `engage/rules/evaluate.py` on every profile:

- every trait condition is COALESCEd to false, so a missing trait (SQL NULL) is false and NOT
  of it is true, as in Python (the other conditions are never NULL);
- values are read by JSON type first (`json_type` / `jsonb_typeof`) and only then cast, inside
  a CASE, so a string never reaches a numeric cast;
- dates come from `profiles.trait_dates` (instants) and `profiles.trait_local_times` (the
  customer's wall clock), microseconds computed in Python on write; now and every offset are
  bound as parameters, so all time arithmetic is on integers. "Today" of each profile, for
  calendar days from now, is a CASE over the workspace's few distinct profile zones
  (`calendar.py`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import dates
from engage.dates import DAY
from engage.errors import FailedPrecondition
from engage.rules.language import (
    BUCKETS,
    All,
    AnyOf,
    At,
    CalendarDay,
    Day,
    EventCondition,
    InSegment,
    Not,
    Operator,
    Relative,
    Rule,
    Sample,
    TraitCondition,
    Wall,
    day_number,
    is_time_point,
    micros,
    sample_threshold,
    stable_bucket,
)
from services.segments import data_errors
from services.segments.calendar import Calendar, load_calendar, per_zone
from services.segments.models import EVENTS, MEMBERSHIPS, PROFILES
from services.segments.values_sql import json_reader, value_matches

Bool = ColumnElement[bool]
_MICRO = timedelta(microseconds=1)


def _document(text: sa.Column[Any], dialect: str) -> ColumnElement[Any]:
    """A trait document column; on PostgreSQL its parsed copy (migration 0005)."""
    if dialect != "postgresql":
        return text
    return sa.literal_column(f"{PROFILES.name}.{text.name}_doc", type_=JSONB)


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


def compile_rule(rule: Rule, now: datetime, dialect: str, calendar: Calendar | None = None) -> Bool:
    """The rule as a boolean over `profiles` ("sqlite" or "postgresql"), now bound. A rule with
    calendar days from today needs the workspace's `calendar` (`calendar.load_calendar`)."""
    return _Compiler(now, dialect, calendar or Calendar()).rule(rule)


def members_query(
    workspace: str, rule: Rule, now: datetime, dialect: str, calendar: Calendar | None = None
) -> sa.Select[tuple[str]]:
    """`SELECT id FROM profiles` of the workspace's members, by id."""
    condition = compile_rule(rule, now, dialect, calendar)
    profiles = PROFILES.c
    return sa.select(profiles.id).where(profiles.workspace == workspace, condition)


async def session_members_query(
    session: AsyncSession, workspace: str, rule: Rule, now: datetime
) -> sa.Select[tuple[str]]:
    """`members_query` with what it needs read in the session (dialect, calendar)."""
    calendar = await load_calendar(session, workspace, rule)
    return members_query(workspace, rule, now, _dialect(session), calendar)


async def count_members(session: AsyncSession, workspace: str, rule: Rule, now: datetime) -> int:
    members = (await session_members_query(session, workspace, rule, now)).subquery()
    count = await session.exec(select(sa.func.count()).select_from(members))
    return int(count.one())


async def member_ids(
    session: AsyncSession, workspace: str, rule: Rule, now: datetime, limit: int | None = None
) -> list[str]:
    """The members' profile ids in id order (`limit` first ones)."""
    query = (await session_members_query(session, workspace, rule, now)).order_by(PROFILES.c.id)
    rows = await session.exec(query.limit(limit))  # type: ignore[call-overload]
    return [row[0] for row in rows.all()]


async def matching_ids(
    session: AsyncSession, workspace: str, rule: Rule, now: datetime, profile_ids: list[str]
) -> set[str]:
    """Which of these profiles match: re-evaluation of the profiles an event touched."""
    if not profile_ids:
        return set()
    query = await session_members_query(session, workspace, rule, now)
    rows = await session.exec(query.where(PROFILES.c.id.in_(profile_ids)))  # type: ignore[call-overload]
    return {row[0] for row in rows.all()}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


@dataclass(frozen=True)
class _Bound:
    """SQL of `evaluate.Bound`: compared with the trait's instant or local time, first to last."""

    local: bool
    first: ColumnElement[Any]
    last: ColumnElement[Any]


def _integer(value: int) -> ColumnElement[Any]:
    return sa.literal(value, sa.BigInteger)


def _floor_day(local: ColumnElement[Any]) -> ColumnElement[Any]:
    # Both dialects truncate integer division toward zero; days before 1970 need the floor.
    day = _integer(DAY)
    # (`//` is integer division in SQLAlchemy; `/` would be true division.)
    return sa.case((local >= 0, local // day), else_=-((-local + day - 1) // day))


class _Compiler:
    def __init__(self, now: datetime, dialect: str, calendar: Calendar) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        self.now = now.astimezone(UTC)
        self.now_us = micros(now)
        self.calendar = calendar
        self.dialect = dialect
        json = json_reader(dialect)
        self.json = json
        self.traits = json(_document(PROFILES.c.traits, dialect))
        self.dates = json(_document(PROFILES.c.trait_dates, dialect))
        self.local_times = json(_document(PROFILES.c.trait_local_times, dialect))

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

    def point(self, point: object) -> _Bound:
        """A time operand (NULL when its anchor trait is not a date)."""
        if isinstance(point, At | Wall):
            us = _integer(micros(point.when))
            return _Bound(isinstance(point, Wall), us, us)
        if isinstance(point, Day):
            return self._whole_day(_integer(day_number(point.day)))
        if isinstance(point, CalendarDay):
            if not point.trait:
                today = per_zone(self.calendar, lambda zone: self._today(zone) + point.days)
                return self._whole_day(today)
            anchor = _floor_day(self.local_times.integer(point.trait))
            return self._whole_day(anchor + _integer(point.days))
        assert isinstance(point, Relative)
        offset = point.offset // _MICRO
        if not point.trait:
            us = _integer(self.now_us + offset)
        else:
            us = self.dates.integer(point.trait) + _integer(offset)
        return _Bound(False, us, us)

    def _today(self, zone: tzinfo) -> int:
        return dates.local_day(self.now_us, zone)

    @staticmethod
    def _whole_day(day: ColumnElement[Any]) -> _Bound:
        first = day * _integer(DAY)
        return _Bound(True, first, first + _integer(DAY - 1))

    def trait(self, rule: TraitCondition) -> Bool:
        operand = rule.operand
        if not is_time_point(operand):
            return value_matches(self.traits, rule.trait, rule.operator, operand)
        bounds = [self.point(p) for p in (operand if isinstance(operand, tuple) else (operand,))]
        low, high = bounds[0], bounds[-1]
        if rule.operator is Operator.BEFORE:
            return self._date_on(rule.trait, low) < low.first
        if rule.operator is Operator.AFTER:
            return self._date_on(rule.trait, low) > low.last
        return sa.and_(
            self._date_on(rule.trait, low) >= low.first,
            self._date_on(rule.trait, high) <= high.last,
        )

    def _date_on(self, trait: str, bound: _Bound) -> ColumnElement[Any]:
        """The trait's date on the bound's scale: its local time or its instant."""
        return (self.local_times if bound.local else self.dates).integer(trait)

    def _since(self, point: Relative | CalendarDay) -> ColumnElement[Any]:
        """The instant from which an event's `since` counts."""
        if isinstance(point, CalendarDay):  # from today only (validated)
            return per_zone(
                self.calendar,
                lambda zone: dates.day_start(self._today(zone) + point.days, zone),
            )
        return self.point(point).first

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
        if isinstance(rule.since, Relative) and not rule.since.trait:
            where.append(events.c.timestamp >= self.now + rule.since.offset)
        elif rule.since is not None:
            since = self._since(rule.since)
            where.append(self._event_micros(events.c.timestamp) >= since)
            anchor = since if rule.since.trait else None
        properties = self.json(events.c.properties)
        for condition in rule.where:
            where.append(
                value_matches(properties, condition.property, condition.operator, condition.operand)
            )
        found = _counted(sa.select(sa.literal(1)).select_from(events).where(*where), rule)
        # "Since a trait" for a profile without that date is false, not "zero events".
        return found if anchor is None else sa.and_(anchor.is_not(None), found)

    def _event_micros(self, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return sa.cast(sa.extract("epoch", timestamp) * 1_000_000, sa.BigInteger)
        # SQLAlchemy keeps SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here).
        seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(timestamp, 1, 19)), sa.BigInteger)
        fraction = sa.cast(sa.func.substr(timestamp, 21, 6), sa.BigInteger)
        return seconds * 1_000_000 + fraction


def _counted(rows: sa.Select[Any], rule: EventCondition) -> Bool:
    """Whether the number of event `rows` is between the rule's bounds; EXISTS where a bound
    allows it (PostgreSQL plans those as semi-joins, not one count per profile)."""
    low, high = rule.at_least, rule.at_most
    if high == 0:
        return sa.not_(rows.exists())
    if low == 0 and high is None:
        return sa.true()
    if low == 1 and high is None:
        return rows.exists()
    number = rows.with_only_columns(sa.func.count()).scalar_subquery()
    return sa.and_(number >= low, number <= high) if high is not None else number >= low
