"""Rules of the profile, pure but for `keyset_page`: trait merging by event time, configured
property sums, page tokens and keyset pages, stored times as UTC."""

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from engage.errors import InvalidArgument

# Pseudo-keys in the per-key times, for the profile fields that are not traits.
TIME_ZONE_KEY = "$time_zone"
LOCALE_KEY = "$locale"


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time this service keeps is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp(moment: datetime) -> Timestamp:
    """A stored time (naive from SQLite, or aware) as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(as_utc(moment))
    return stamp


@dataclass
class TraitState:
    """A profile's traits and, per key, the time of the event that set it."""

    values: dict[str, Any] = field(default_factory=dict)
    times: dict[str, datetime] = field(default_factory=dict)

    def apply(self, incoming: dict[str, Any], at: datetime) -> dict[str, Any]:
        """Take each incoming key unless an event later than `at` already set it.

        Returns the keys whose value changed. Ties go to the newer arrival, so a replayed
        identify with the same time is harmless and a correction at the same time wins.
        """
        changed: dict[str, Any] = {}
        for key, value in incoming.items():
            previous = self.times.get(key)
            if previous is not None and previous > at:
                continue
            self.times[key] = at
            if key not in self.values or self.values[key] != value:
                self.values[key] = value
                changed[key] = value
        return changed

    def claim(self, key: str, at: datetime) -> bool:
        """Whether an event at `at` may set `key` (no later event did); records it if so."""
        previous = self.times.get(key)
        if previous is not None and previous > at:
            return False
        self.times[key] = at
        return True

    def merge(self, other: "TraitState") -> None:
        """Fold another profile's traits in, key by key, the later event winning."""
        for key, value in other.values.items():
            at = other.times.get(key)
            if at is not None:
                self.apply({key: value}, at)
            elif key not in self.values:
                self.values[key] = value

    def merge_field(self, other: "TraitState", key: str, mine: str, theirs: str) -> str:
        """A merge's choice between two profiles' values of a non-trait field (time zone,
        locale) whose setting time is kept under `key`: the later event's value, or the one set.
        """
        if not theirs:
            return mine
        at = other.times.get(key)
        if not mine:
            if at is not None:
                self.times[key] = at
            return theirs
        return theirs if at is not None and self.claim(key, at) else mine

    def dump_times(self) -> str:
        return json.dumps({key: at.isoformat() for key, at in self.times.items()}, sort_keys=True)

    @classmethod
    def load(cls, values: str, times: str) -> "TraitState":
        stored_times: dict[str, str] = json.loads(times)
        return cls(
            values=json.loads(values),
            times={key: as_utc(datetime.fromisoformat(at)) for key, at in stored_times.items()},
        )


SummedProperties = frozenset[tuple[str, str]]


def parse_summed_properties(setting: str, text: str) -> SummedProperties:
    """`order_completed.revenue,cart_viewed.value` as (event name, property) pairs.

    The property is what follows the last dot, so event names may contain dots.
    """
    pairs: set[tuple[str, str]] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        event_name, dot, name = item.rpartition(".")
        if not dot or not event_name or not name:
            raise ValueError(f"{setting}: {item!r} is not `event.property`")
        pairs.add((event_name, name))
    return frozenset(pairs)


def summed_amounts(
    event_name: str, properties: dict[str, Any], summed: SummedProperties
) -> dict[str, float]:
    """The configured properties of one event that carry a number, by property name.

    Booleans are numbers to Python but not amounts; strings are not parsed, so a malformed
    client cannot shift a total.
    """
    amounts: dict[str, float] = {}
    for (name, key), value in ((pair, properties.get(pair[1])) for pair in summed):
        if name == event_name and isinstance(value, int | float) and not isinstance(value, bool):
            amounts[key] = float(value)
    return amounts


def encode_page_token(last_id: str) -> str:
    """An opaque token: where the next page starts (after this profile id)."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode()


def decode_page_token(token: str) -> str:
    """The profile id a page token continues after; "" for the first page."""
    if not token:
        return ""
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "is not a token from a previous page") from None
    if not isinstance(after, str) or not after:
        raise InvalidArgument("page_token", "is not a token from a previous page")
    return after


class _Keyed(Protocol):
    id: str


KeyedT = TypeVar("KeyedT", bound=_Keyed)


async def keyset_page(
    session: AsyncSession, query: SelectOfScalar[KeyedT], id_column: Any, size: int, token: str
) -> tuple[list[KeyedT], str]:
    """One page of `query`'s rows in id order after the token's position, and the next page's
    token ("" on the last page)."""
    after = decode_page_token(token)
    query = query.order_by(col(id_column)).limit(size + 1)
    if after:
        query = query.where(col(id_column) > after)
    rows = list((await session.exec(query)).all())
    if len(rows) > size:
        rows = rows[:size]
        return rows, encode_page_token(rows[-1].id)
    return rows, ""


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
