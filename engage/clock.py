"""Time as every service reads it: an injected clock, so a test can pass 18 days in seconds, and
stored times, which are all UTC though SQLite hands them back naive."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def offset_clock(offset_file: Path) -> Clock:
    """The wall clock moved on by the seconds written in `offset_file` (none or 0: not moved):
    how a demo or a test lets days pass in seconds in every service at once. The file is read
    at every call (a few microseconds; for development only): a file's times and inodes are too
    coarse to tell two quick moves apart."""

    def now() -> datetime:
        try:
            text = offset_file.read_text().strip()
        except FileNotFoundError:
            text = ""
        return utc_now() + timedelta(seconds=float(text or 0))

    return now


def move_clock(offset_file: Path, by: timedelta) -> None:
    """Move every service reading `offset_file` (see `offset_clock`) on by `by`."""
    current = float(offset_file.read_text().strip() or 0) if offset_file.exists() else 0.0
    written = offset_file.with_suffix(".tmp")
    written.write_text(repr(current + by.total_seconds()))
    written.replace(offset_file)
