"""Time as every service reads it: an injected clock, so a test can pass 18 days in seconds."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, timezone-aware in UTC: the default `Clock` of every service."""
    return datetime.now(UTC)
