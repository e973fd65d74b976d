"""Dates on the customer's calendar: which texts are dates, the instant and the local wall-clock
time each one is in a time zone, and the zone a profile's dates are read in.

A date text is RFC 3339 / ISO-8601 extended form as ingest accepts it: `2026-03-01`,
`2026-03-01T09:00`, seconds, a fraction of any length up to 9 digits (.NET writes 7; kept to the
microsecond, the rest dropped), `Z`, `+09:00`, `+0900` or `+09`, and `t`, `z` or a space for the
letters. A text with an offset is one instant everywhere; a date alone or a zone-less time is
wall-clock time on the customer's calendar: the profile's zone, else the workspace's, else UTC.
All arithmetic is on integer microseconds, so years 1 and 9999 cannot overflow.
"""

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, available_timezones

DAY = 86_400_000_000  # microseconds in a calendar day on the wall clock
MAX_ZONE_NAME = 64
_DATE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Written:
    """A date text as written: its wall-clock time and, if written, its UTC offset."""

    local: int  # microseconds since 1970-01-01T00:00 on the writer's wall clock
    offset: int | None  # microseconds east of UTC, None for a date alone or a zone-less time
    whole_day: bool  # a date alone: it names a calendar day


@dataclass(frozen=True)
class LocalDate:
    """A date trait read in one zone: the instant, and the same instant on the wall clock."""

    at: int  # microseconds since the epoch (UTC)
    local: int  # microseconds since 1970-01-01T00:00 local; `local // DAY` is the local day


def parse(value: object) -> Written | None:
    """The date a text writes; None when it is not one (or names no real day or time)."""
    found = _DATE.match(value) if isinstance(value, str) else None
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        written = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
        offset = _offset(zone)
    except ValueError:
        return None
    return Written((written - _EPOCH) // _MICRO, offset, whole_day=hour is None)


def _offset(text: str | None) -> int | None:
    """Microseconds of a written offset; None when none is written."""
    if text is None:
        return None
    if text in ("Z", "z"):
        return 0
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("no such offset")
    sign = -1 if text[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60) * 1_000_000


def date_value(value: object, zone: tzinfo) -> LocalDate | None:
    """A trait value as a date on the calendar of `zone`; None when it is not a date."""
    written = parse(value)
    if written is None:
        return None
    if written.offset is None:
        # The wall-clock time is kept as written, even in a DST gap (02:30 on a spring-forward
        # day); its instant is the one the zone gives that wall time.
        return LocalDate(instant_of(written.local, zone), written.local)
    at = written.local - written.offset
    return LocalDate(at, local_of(at, zone))


def instant_of(local: int, zone: tzinfo) -> int:
    """The instant when the wall clock in `zone` shows `local` (the earlier one if twice)."""
    wall = _EPOCH + timedelta(microseconds=local)
    offset = wall.replace(tzinfo=zone).utcoffset() or timedelta()
    return local - offset // _MICRO


def local_of(at: int, zone: tzinfo) -> int:
    """What the wall clock in `zone` shows at instant `at`."""
    moment = _EPOCH + timedelta(microseconds=at)
    try:
        offset = moment.replace(tzinfo=UTC).astimezone(zone).utcoffset() or timedelta()
    except OverflowError:  # within a day of year 1 or 9999: the wall time's own offset
        offset = moment.replace(tzinfo=zone).utcoffset() or timedelta()
    return at + offset // _MICRO


def local_day(at: int, zone: tzinfo) -> int:
    """The local calendar day (days since 1970-01-01) of instant `at` in `zone`."""
    return local_of(at, zone) // DAY


def day_start(day: int, zone: tzinfo) -> int:
    """The instant the local calendar day `day` starts in `zone` (00:00, or the first minute
    after a DST gap at midnight)."""
    return instant_of(day * DAY, zone)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@functools.lru_cache(maxsize=4096)
def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone of that name; None for an empty or unknown name (never raises)."""
    if not name or len(name) > MAX_ZONE_NAME or name not in _zone_names():
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, OSError):
        return None


def profile_zone(time_zone: str, workspace_zone: str = "") -> tzinfo:
    """The zone a profile's dates are read in: its own if valid, else the workspace's, else
    UTC. An invalid stored zone falls back: it never fails an evaluation."""
    return zone_named(time_zone) or zone_named(workspace_zone) or UTC


def zone_name(time_zone: str, workspace_zone: str = "") -> str:
    """The IANA name of the zone a profile's calendar is read in (see `profile_zone`)."""
    return getattr(profile_zone(time_zone, workspace_zone), "key", "UTC")
