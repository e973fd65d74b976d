"""Stored times: every time this service keeps is UTC, though SQLite hands them back naive."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def as_utc(moment: datetime) -> datetime:
    """A stored time (naive from SQLite, or aware) as an aware UTC datetime."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp(moment: datetime) -> Timestamp:
    """A stored time as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(as_utc(moment))
    return stamp
