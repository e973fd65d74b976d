"""Recurring schedules as cron expressions (five fields: minute, hour, day of month, month,
day of week; `*`, numbers, lists `1,15`, ranges `1-5` and steps `*/15`, `0-30/10`), read on a
calendar: the wall clock of a time zone, across DST. Pure."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from engage.errors import InvalidArgument

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12))
_WEEKDAY = ("day of week", 0, 7)
# Far enough for any expression that matches at all (29 February comes within 8 years).
_SEARCH_DAYS = 8 * 366


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    # 0 is Sunday (7 is read as Sunday too).
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def day_matches(self, day: datetime) -> bool:
        """Cron's rule: with both day fields restricted, either may match."""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday


def parse(field: str, expression: str) -> Cron:
    parts = expression.split()
    if len(parts) != 5:
        raise InvalidArgument(field, "must be five fields: minute hour day month weekday")
    values = [
        _parse_part(field, text, name, low, high)
        for text, (name, low, high) in zip(parts, (*_FIELDS, _WEEKDAY), strict=True)
    ]
    weekdays = frozenset(day % 7 for day in values[4])
    return Cron(
        values[0], values[1], values[2], values[3], weekdays, parts[2] == "*", parts[4] == "*"
    )


def _parse_part(field: str, text: str, name: str, low: int, high: int) -> frozenset[int]:
    chosen: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                first, last = low, high
            elif "-" in span:
                first_text, last_text = span.split("-", 1)
                first, last = int(first_text), int(last_text)
            else:
                first = last = int(span)
        except ValueError as error:
            raise InvalidArgument(field, f"{item!r} is not a {name} value") from error
        if not (low <= first <= last <= high) or step < 1:
            raise InvalidArgument(field, f"{item!r}: the {name} must be from {low} to {high}")
        chosen.update(range(first, last + 1, step))
    return frozenset(chosen)


def next_after(cron: Cron, moment: datetime, zone: tzinfo) -> datetime | None:
    """The first moment strictly after `moment` whose wall-clock time in `zone` matches;
    None when none comes within eight years. A wall time skipped by DST is not matched."""
    local = moment.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    day = local.replace(hour=0, minute=0)
    for _ in range(_SEARCH_DAYS):
        if cron.day_matches(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = day.replace(hour=hour, minute=minute)
                    found = _instant(wall, zone)
                    if found is not None and found > moment:
                        return found
        day += timedelta(days=1)
    return None


def _instant(wall: datetime, zone: tzinfo) -> datetime | None:
    """The instant (in UTC, as stores keep instants) the wall clock in `zone` shows `wall`, the
    earlier one if twice; None when it never does (a DST gap)."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    back = instant.astimezone(zone).replace(tzinfo=None)
    return instant if back == wall else None
