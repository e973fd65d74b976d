"""Time as every service reads it: an injected clock, so a test can pass 18 days in seconds, and
stored times, which are all UTC though SQLite hands them back naive."""

from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, timezone-aware in UTC: the default `Clock` of every service."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time (naive from SQLite, or aware) as an aware UTC datetime."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp(moment: datetime) -> Timestamp:
    """A stored time as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(as_utc(moment))
    return stamp
