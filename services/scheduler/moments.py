"""Moments on the customer's calendar: the next time a time of day comes, and the moment a date
trait names, moved by calendar months and days, in the profile's zone. Pure."""

import calendar
from datetime import UTC, datetime, timedelta, tzinfo

from engage.dates import DAY, date_value, instant_of, local_of

_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)
_MINUTE = 60_000_000


def next_time_of_day(now: datetime, zone: tzinfo, hours: int, minutes: int) -> datetime:
    """The first moment after `now` when the wall clock in `zone` shows hours:minutes."""
    local_now = local_of(_micros(now), zone)
    candidate = (local_now // DAY) * DAY + (hours * 60 + minutes) * _MINUTE
    if candidate <= local_now:
        candidate += DAY
    return _moment(instant_of(candidate, zone))


def trait_moment(
    value: object, zone: tzinfo, months: int, days: int, at: tuple[int, int] | None
) -> datetime | None:
    """The moment a trait's date names on the calendar of `zone`, `months` and then `days`
    later, at `at` (hours, minutes) or its own time of day; None when it holds no date."""
    written = date_value(value, zone)
    if written is None:
        return None
    local = _add_months(written.local, months) + days * DAY
    if at is not None:
        local = (local // DAY) * DAY + (at[0] * 60 + at[1]) * _MINUTE
    return _moment(instant_of(local, zone))


def _add_months(local: int, months: int) -> int:
    """The same wall time `months` later; the 31st of a shorter month becomes its last day."""
    if not months:
        return local
    wall = _EPOCH + timedelta(microseconds=local)
    index = wall.year * 12 + wall.month - 1 + months
    year, month = divmod(index, 12)
    day = min(wall.day, calendar.monthrange(year, month + 1)[1])
    moved = wall.replace(year=year, month=month + 1, day=day)
    return (moved - _EPOCH) // _MICRO


def _micros(moment: datetime) -> int:
    return (moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH) // _MICRO


def _moment(micros: int) -> datetime:
    return (_EPOCH + timedelta(microseconds=micros)).replace(tzinfo=UTC)
