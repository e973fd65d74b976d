"""Traits of a profile, pure: merging by event time (the latest event wins, key by key) and the
configured numeric property sums."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engage.clock import as_utc

# Pseudo-keys in the per-key times, for the profile fields that are not traits.
LOCALE_KEY = "$locale"


@dataclass
class TraitState:
    """A profile's traits and, per key, the time of the event that set it."""

    values: dict[str, Any] = field(default_factory=dict)
    times: dict[str, datetime] = field(default_factory=dict)
    # Whether anything was set since loading: if not, the stored texts still hold.
    touched: bool = field(default=False, compare=False)

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
            self.touched = True
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
        self.touched = True
        return True

    def merge(self, other: "TraitState") -> None:
        """Fold another profile's traits in, key by key, the later event winning."""
        for key, value in other.values.items():
            at = other.times.get(key)
            if at is not None:
                self.apply({key: value}, at)
            elif key not in self.values:
                self.values[key] = value
                self.touched = True

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
                self.touched = True
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
