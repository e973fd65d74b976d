"""The customers' calendars of one workspace, as SQL needs them: the workspace's time zone and
the distinct zones its profiles carry, so that "today" and "the start of today" of each profile
are a small CASE over those zones instead of time-zone arithmetic SQLite cannot do.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.dates import profile_zone
from engage.rules.language import CalendarDay, EventCondition, Rule, TraitCondition, conditions
from services.segments.models import PROFILES, WORKSPACE_SETTINGS

# CASE branches: `value -> the profiles' raw time_zone texts that give it`, and the value of
# every other profile (no zone, an invalid one, or one the workspace's zone agrees with).
Branches = tuple[dict[int, list[str]], int]


@dataclass(frozen=True)
class Calendar:
    """A workspace's zone and the raw `time_zone` texts of its profiles."""

    workspace_zone: str = ""
    profile_zones: tuple[str, ...] = ()

    def zone_of(self, time_zone: str) -> tzinfo:
        return profile_zone(time_zone, self.workspace_zone)

    def branches(self, value_in: Callable[[tzinfo], int]) -> Branches:
        """Per-zone values of `value_in(zone)`, grouped: few, since zones share a date."""
        default = value_in(self.zone_of(""))
        grouped: dict[int, list[str]] = {}
        for raw in self.profile_zones:
            value = value_in(self.zone_of(raw))
            if value != default:
                grouped.setdefault(value, []).append(raw)
        return grouped, default


def per_zone(calendar: "Calendar", value_in: Callable[[tzinfo], int]) -> sa.ColumnElement[int]:
    """SQL of `value_in(the profile's zone)` for the current row of `profiles`."""
    grouped, default = calendar.branches(value_in)
    fallback = sa.literal(default, sa.BigInteger)
    if not grouped:
        return fallback
    whens = [
        (PROFILES.c.time_zone.in_(raws), sa.literal(value, sa.BigInteger))
        for value, raws in sorted(grouped.items())
    ]
    return sa.case(*whens, else_=fallback)


def reads_today(rule: Rule) -> bool:
    """Whether the rule names calendar days from today (so SQL needs each profile's today)."""
    for leaf in conditions(rule):
        points: object = ()
        if isinstance(leaf, TraitCondition):
            points = leaf.operand if isinstance(leaf.operand, tuple) else (leaf.operand,)
        elif isinstance(leaf, EventCondition):
            points = (leaf.since,)
        if any(isinstance(p, CalendarDay) and not p.trait for p in points):  # type: ignore[attr-defined]
            return True
    return False


async def workspace_time_zone(session: AsyncSession, workspace: str) -> str:
    """The workspace's time zone setting; "" when unset."""
    settings = WORKSPACE_SETTINGS.c
    found = await session.exec(
        sa.select(settings.time_zone).where(settings.workspace == workspace)  # type: ignore[call-overload]
    )
    return str(found.scalars().first() or "")


async def load_calendar(session: AsyncSession, workspace: str, rule: Rule) -> Calendar | None:
    """The calendar SQL of `rule` needs in `workspace`; None when it reads no day from today."""
    if not reads_today(rule):
        return None
    zones = await session.exec(
        sa.select(PROFILES.c.time_zone)  # type: ignore[call-overload]
        .where(PROFILES.c.workspace == workspace)
        .distinct()
    )
    names = tuple(sorted(str(zone) for zone in zones.scalars().all()))
    return Calendar(await workspace_time_zone(session, workspace), names)
