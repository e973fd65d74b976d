"""Whether an intended send goes out: every decision in one order, shared by journeys and
campaigns, each refusal with its reason.

1. consent for the channel and subscription group, 2. the suppression list: channels owns both
   and checks them before every send (the scheduler does not know them yet);
3. the workspace's global control group, then the journey's or campaign's holdout: a stable
   share of profiles that gets no marketing, so reporting can measure lift;
4. frequency caps: at most N marketing sends per channel within a window, per profile;
5. quiet hours on the profile's calendar: a send due within them waits until they end
   (`quiet_until`; the journey engine holds the step there, never drops it);
then the send is published under its deterministic idempotency key.

Transactional sends (a receipt, a password reset) are exempt from 3 and 4.
Pure: the policy and the profile's recent marketing sends come from the caller.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from services.scheduler import moments

GLOBAL_CONTROL = "global_control"
HOLDOUT = "holdout"
FREQUENCY_CAP = "frequency_cap"
QUIET_HOURS = "quiet_hours"


# ((hours, minutes) start, (hours, minutes) end) on the profile's calendar.
QuietHours = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Cap:
    channel: int
    max_sends: int
    window: timedelta


@dataclass(frozen=True)
class Policy:
    """A workspace's messaging policy and calendar (its WorkspaceSettings)."""

    caps: tuple[Cap, ...] = ()
    global_control_percent: float = 0.0
    # The workspace's calendar (its IANA zone; empty: UTC), for recurring campaigns.
    time_zone: str = ""
    quiet_hours: QuietHours | None = None

    @property
    def longest_window(self) -> timedelta:
        return max((cap.window for cap in self.caps), default=timedelta())


NO_POLICY = Policy()


@dataclass(frozen=True)
class Intended:
    """One send about to be decided."""

    workspace: str
    profile_key: str
    channel: int
    transactional: bool
    # Whose holdout applies: the journey's or campaign's id, and its share.
    holdout_of: str
    holdout_percent: float


@dataclass(frozen=True)
class Sent:
    """A marketing send made, as the frequency ledger keeps it."""

    workspace: str
    profile_key: str
    channel: int
    at: datetime
    send_key: str


@dataclass
class Decisions:
    """What a batch decides its sends with: each workspace's policy and the recent marketing
    sends of its profiles, to which the batch adds its own as it makes them."""

    policies: dict[str, Policy]
    recent: dict[tuple[str, str], list[Sent]] = field(default_factory=dict)

    def policy_of(self, workspace: str) -> Policy:
        """The workspace's policy (none read: nothing capped, no control group)."""
        return self.policies.get(workspace, NO_POLICY)

    def decide(self, intended: Intended, now: datetime, send_key: str) -> tuple[str, Sent | None]:
        """The reason the send is not made ("" when it goes out), and the marketing send to
        count when it does."""
        reason = refusal(intended, self.policy_of(intended.workspace), self, now)
        if reason or intended.transactional:
            return reason, None
        sent = Sent(intended.workspace, intended.profile_key, intended.channel, now, send_key)
        self.recent.setdefault((sent.workspace, sent.profile_key), []).append(sent)
        return "", sent

    def sends_within(self, intended: Intended, since: datetime) -> int:
        sends = self.recent.get((intended.workspace, intended.profile_key), [])
        return sum(1 for s in sends if s.channel == intended.channel and s.at > since)


def refusal(intended: Intended, policy: Policy, ledger: Decisions, now: datetime) -> str:
    """Why the send must not go out, in the order above; "" when nothing stops it."""
    if intended.transactional:
        return ""
    key = intended.profile_key
    if in_share(f"{intended.workspace}/global-control", key, policy.global_control_percent):
        return GLOBAL_CONTROL
    if in_share(f"{intended.workspace}/{intended.holdout_of}", key, intended.holdout_percent):
        return HOLDOUT
    for cap in policy.caps:
        over = ledger.sends_within(intended, now - cap.window) >= cap.max_sends
        if cap.channel == intended.channel and over:
            return FREQUENCY_CAP
    return ""


def in_share(group: str, profile_key: str, percent: float) -> bool:
    """Whether the profile falls in the first `percent` of the group's stable order: the same
    answer every time, independent between groups."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{group}/{profile_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < percent * 100


def quiet_until(quiet_hours: QuietHours, zone: tzinfo, now: datetime) -> datetime | None:
    """When the quiet hours holding a send at `now` end, on the calendar of `zone`; None when
    `now` is outside them. The window runs from its start to its end, across midnight when the
    end is earlier."""
    (start_h, start_m), (end_h, end_m) = quiet_hours
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    inside = start <= minute < end if start < end else minute >= start or minute < end
    if not inside:
        return None
    return moments.next_time_of_day(now, zone, end_h, end_m)
