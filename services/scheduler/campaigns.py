"""Campaigns: what a valid campaign is, how its lifecycle moves, which variant a recipient
gets, and what the broadcast does with each member of the audience. Pure."""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import cast

from engage import resources, subjects
from engage.dates import profile_zone
from engage.errors import FailedPrecondition, InvalidArgument
from engage.v1 import bus_pb2, campaign_pb2, common_pb2
from services.scheduler import moments, recurrence
from services.scheduler.decisions import Decisions, Intended, Sent, in_share, quiet_until
from services.scheduler.graph import CHANNELS
from services.scheduler.outgoing import OutgoingMessage

State = campaign_pb2.Campaign
DRAFT, SCHEDULED, SENDING = State.STATE_DRAFT, State.STATE_SCHEDULED, State.STATE_SENDING
COMPLETED, CANCELLED = State.STATE_COMPLETED, State.STATE_CANCELLED
CREATABLE_STATES = frozenset({DRAFT, SCHEDULED})
# The states a campaign may be changed in, and set to by an update: one under way is stopped
# by CancelCampaign only.
EDITABLE_STATES = CREATABLE_STATES
UPDATABLE_PATHS = (
    "display_name",
    "state",
    "segment",
    "channel",
    "template",
    "send_time",
    "holdout_percent",
    "variants",
    "max_sends_per_minute",
    "recurrence",
    "winner_rule",
    "local_send_time",
    "goal",
)
MAX_VARIANTS = 26
MAX_WINNER_WAIT = timedelta(days=30)
METRIC_CLICK_RATE = campaign_pb2.WinnerRule.METRIC_CLICK_RATE
METRIC_OPEN_RATE = campaign_pb2.WinnerRule.METRIC_OPEN_RATE
METRIC_CONVERSION_RATE = campaign_pb2.WinnerRule.METRIC_CONVERSION_RATE
DEFAULT_GOAL_WINDOW = timedelta(days=3)
MAX_GOAL_WINDOW = timedelta(days=90)
MAX_DISPLAY_NAME = 200
ANONYMOUS = "anonymous"

_VARIANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Variant:
    id: str
    template: str
    weight: int


@dataclass(frozen=True)
class WinnerRule:
    metric: int
    test_percent: int
    after: timedelta


@dataclass(frozen=True)
class Goal:
    """A recipient converts by doing `event` within `within` after its send."""

    event: str
    within: timedelta = DEFAULT_GOAL_WINDOW


@dataclass(frozen=True)
class CampaignSpec:
    display_name: str
    state: int
    segment: str
    channel: int
    # Its variants; a campaign of one template has the one variant `default`.
    variants: tuple[Variant, ...]
    send_time: datetime | None = None
    holdout_percent: float = 0.0
    max_sends_per_minute: int = 0
    # A cron expression on the workspace's calendar; empty: one run.
    recurrence: str = ""
    winner_rule: WinnerRule | None = None
    # (hours, minutes) on each recipient's calendar; None: at once.
    local_send_time: tuple[int, int] | None = None
    goal: Goal | None = None


@dataclass(frozen=True)
class Member:
    """One member of the audience, as segments lists it."""

    profile: str
    user_id: str
    # The IANA zone of its calendar.
    zone: str = "UTC"


@dataclass(frozen=True)
class Recipient:
    """What the broadcast decided for one member."""

    profile_key: str
    send_key: str
    variant: str
    # "" when queued (or pending); else why it was not sent.
    skipped: str
    sent: Sent | None = None
    # Not decided yet: waiting for the winner of an A/B test (no `due_at`), or for its local
    # send time or the end of quiet hours (`due_at`).
    pending: bool = False
    due_at: datetime | None = None
    # The IANA zone of its calendar, kept for when a pending member is decided.
    zone: str = "UTC"


@dataclass(frozen=True)
class Broadcast:
    """One run of one campaign, as the broadcast decides its members."""

    workspace: str
    campaign_id: str
    campaign_uid: str
    run: int
    spec: CampaignSpec
    # When the run began (its send time).
    started: datetime


# --- validation -------------------------------------------------------------------------------


def parse_campaign(campaign: campaign_pb2.Campaign, workspace: str) -> CampaignSpec:
    """Validate a campaign to create; unset state means DRAFT."""
    spec = CampaignSpec(
        display_name=_parse_display_name(campaign.display_name),
        state=_parse_state(campaign.state or DRAFT, CREATABLE_STATES),
        segment=_parse_segment(campaign.segment, workspace),
        channel=_parse_channel(campaign.channel),
        variants=_parse_variants(campaign, workspace),
        send_time=(
            campaign.send_time.ToDatetime(tzinfo=UTC) if campaign.HasField("send_time") else None
        ),
        holdout_percent=_parse_percent(campaign.holdout_percent),
        max_sends_per_minute=_parse_rate(campaign.max_sends_per_minute),
        recurrence=campaign.recurrence.strip(),
        winner_rule=_parse_winner_rule(campaign) if campaign.HasField("winner_rule") else None,
        local_send_time=(
            _parse_local_time(campaign.local_send_time)
            if campaign.HasField("local_send_time")
            else None
        ),
        goal=_parse_goal(campaign.goal) if campaign.HasField("goal") else None,
    )
    if spec.recurrence:
        recurrence.parse("campaign.recurrence", spec.recurrence)
    rule = spec.winner_rule
    if rule is not None and rule.metric == METRIC_CONVERSION_RATE and spec.goal is None:
        raise InvalidArgument("campaign.goal", "a winner by conversion rate needs a goal")
    return spec


def _parse_goal(goal: campaign_pb2.CampaignGoal) -> Goal:
    event = goal.event
    if not event.strip() or event != event.strip():
        raise InvalidArgument("campaign.goal.event", "an event name, without spaces around")
    if not goal.HasField("within"):
        return Goal(event)
    within = goal.within.ToTimedelta()
    if not timedelta() < within <= MAX_GOAL_WINDOW:
        raise InvalidArgument("campaign.goal.within", "must be more than 0 and at most 90 days")
    return Goal(event, within)


def _parse_local_time(time: common_pb2.LocalTime) -> tuple[int, int]:
    if not (0 <= time.hours <= 23 and 0 <= time.minutes <= 59):
        raise InvalidArgument("campaign.local_send_time", "must be a time from 00:00 to 23:59")
    return time.hours, time.minutes


def _parse_winner_rule(campaign: campaign_pb2.Campaign) -> WinnerRule:
    rule = campaign.winner_rule
    field = "campaign.winner_rule"
    if len(campaign.variants) < 2:
        raise InvalidArgument(f"{field}", "a winner needs at least two variants")
    if campaign.recurrence:
        raise InvalidArgument(f"{field}", "a recurring campaign has no winner")
    if rule.metric not in (METRIC_CLICK_RATE, METRIC_OPEN_RATE, METRIC_CONVERSION_RATE):
        raise InvalidArgument(
            f"{field}.metric",
            "METRIC_CLICK_RATE, METRIC_OPEN_RATE or METRIC_CONVERSION_RATE",
        )
    if not 1 <= rule.test_percent <= 99:
        raise InvalidArgument(f"{field}.test_percent", "must be from 1 to 99")
    after = rule.after.ToTimedelta()
    if not timedelta() < after <= MAX_WINNER_WAIT:
        raise InvalidArgument(f"{field}.after", "must be more than 0 and at most 30 days")
    return WinnerRule(rule.metric, rule.test_percent, after)


def update_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """The fields an update mask names; an empty mask means every updatable field."""
    return resources.update_paths(paths, UPDATABLE_PATHS)


def apply_update(
    current: CampaignSpec, patch: campaign_pb2.Campaign, paths: Sequence[str], workspace: str
) -> CampaignSpec:
    """The campaign after an update of `paths` from `patch` (validated); only a draft or a
    scheduled campaign may change."""
    if current.state not in EDITABLE_STATES:
        name = State.State.Name(cast(State.State, current.state))
        raise FailedPrecondition(f"a campaign in {name} cannot be changed")
    merged = to_proto(current)
    for path in paths:
        merged.ClearField(path)
        field = merged.DESCRIPTOR.fields_by_name[path]
        if field.is_repeated:
            getattr(merged, path).extend(getattr(patch, path))
        elif field.message_type is not None:
            if patch.HasField(path):
                getattr(merged, path).CopyFrom(getattr(patch, path))
        else:
            setattr(merged, path, getattr(patch, path))
    if "template" in paths and "variants" not in paths and patch.template:
        del merged.variants[:]
    updated = parse_campaign(merged, workspace)
    if "state" not in paths:
        updated = replace(updated, state=current.state)
    return updated


def _parse_display_name(value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidArgument(
            "campaign.display_name", f"must be at most {MAX_DISPLAY_NAME} characters"
        )
    return value


def _parse_state(value: int, allowed: frozenset[int]) -> int:
    if value not in allowed:
        names = ", ".join(sorted(State.State.Name(s) for s in allowed))
        raise InvalidArgument("campaign.state", f"must be one of {names}")
    return value


def _parse_segment(name: str, workspace: str) -> str:
    return _parse_name("campaign.segment", name, "segments", workspace)


def _parse_name(field: str, name: str, collection: str, workspace: str) -> str:
    found = resources.read_name(name, collection)
    if found is None or not resources.is_valid_id(found.id):
        raise InvalidArgument(field, f"must look like workspaces/{{workspace}}/{collection}/{{id}}")
    if found.workspace != workspace:
        raise InvalidArgument(field, f"must be in workspace {workspace}")
    return name


def _parse_channel(channel: int) -> int:
    if channel not in CHANNELS:
        raise InvalidArgument("campaign.channel", "a channel is required")
    return channel


def _parse_variants(campaign: campaign_pb2.Campaign, workspace: str) -> tuple[Variant, ...]:
    if not campaign.variants:
        template = _parse_name("campaign.template", campaign.template, "templates", workspace)
        return (Variant("default", template, 100),)
    if campaign.template:
        raise InvalidArgument("campaign.template", "set a template or variants, not both")
    if len(campaign.variants) > MAX_VARIANTS:
        raise InvalidArgument("campaign.variants", f"at most {MAX_VARIANTS} variants")
    variants: list[Variant] = []
    for index, variant in enumerate(campaign.variants):
        field = f"campaign.variants[{index}]"
        if not _VARIANT_ID.match(variant.id):
            raise InvalidArgument(f"{field}.id", "must be lower-case letters, digits, '-' or '_'")
        if any(v.id == variant.id for v in variants):
            raise InvalidArgument(f"{field}.id", f"variant id {variant.id!r} is used twice")
        if not 1 <= variant.weight <= 100:
            raise InvalidArgument(f"{field}.weight", "must be from 1 to 100")
        template = _parse_name(f"{field}.template", variant.template, "templates", workspace)
        variants.append(Variant(variant.id, template, variant.weight))
    return tuple(variants)


def _parse_percent(percent: float) -> float:
    if not 0 <= percent < 100:
        raise InvalidArgument("campaign.holdout_percent", "must be from 0 to under 100")
    return percent


def _parse_rate(rate: int) -> int:
    if rate < 0:
        raise InvalidArgument("campaign.max_sends_per_minute", "must not be negative")
    return rate


# --- the contract's form ------------------------------------------------------------------------


def to_proto(spec: CampaignSpec) -> campaign_pb2.Campaign:
    campaign = campaign_pb2.Campaign(
        display_name=spec.display_name,
        state=cast(State.State, spec.state),
        segment=spec.segment,
        channel=cast(common_pb2.Channel, spec.channel),
        holdout_percent=spec.holdout_percent,
        max_sends_per_minute=spec.max_sends_per_minute,
        recurrence=spec.recurrence,
    )
    if spec.local_send_time is not None:
        campaign.local_send_time.SetInParent()
        campaign.local_send_time.hours, campaign.local_send_time.minutes = spec.local_send_time
    if spec.winner_rule is not None:
        rule = spec.winner_rule
        campaign.winner_rule.metric = cast(campaign_pb2.WinnerRule.Metric, rule.metric)
        campaign.winner_rule.test_percent = rule.test_percent
        campaign.winner_rule.after.FromTimedelta(rule.after)
    if spec.goal is not None:
        campaign.goal.event = spec.goal.event
        campaign.goal.within.FromTimedelta(spec.goal.within)
    if len(spec.variants) == 1 and spec.variants[0].id == "default":
        campaign.template = spec.variants[0].template
    else:
        campaign.variants.extend(
            campaign_pb2.CampaignVariant(id=v.id, template=v.template, weight=v.weight)
            for v in spec.variants
        )
    if spec.send_time is not None:
        campaign.send_time.FromDatetime(spec.send_time)
    return campaign


# --- the broadcast --------------------------------------------------------------------------------


def is_due(state: int, send_time: datetime | None, now: datetime) -> bool:
    return state == SCHEDULED and (send_time is None or send_time <= now)


def variant_of(campaign_uid: str, profile_key: str, variants: Sequence[Variant]) -> Variant:
    """A recipient's variant: by a hash of the campaign and the profile, so the same profile
    always gets the same variant of a campaign, in proportion to the weights."""
    if len(variants) == 1:
        return variants[0]
    total = sum(v.weight for v in variants)
    digest = hashlib.sha256(f"{campaign_uid}/variant/{profile_key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % total
    for variant in variants:
        if bucket < variant.weight:
            return variant
        bucket -= variant.weight
    raise AssertionError("weights add up to their total")


def send_key(campaign_id: str, campaign_uid: str, run: int, profile_key: str) -> str:
    """The idempotency key of a campaign's send to one profile in one run: channels sends
    each once. The profile appears as a digest: keys travel and are kept everywhere, and hold
    nothing personal."""
    profile = hashlib.sha256(f"{campaign_uid}/{profile_key}".encode()).hexdigest()[:24]
    return f"campaign:{campaign_id}:{campaign_uid[:12]}:{run}:{profile}"


def next_run(spec: CampaignSpec, after: datetime, workspace_zone: str) -> datetime | None:
    """When a recurring campaign runs next after `after`, on the workspace's calendar."""
    cron = recurrence.parse("campaign.recurrence", spec.recurrence)
    return recurrence.next_after(cron, after, profile_zone("", workspace_zone))


def decide_member(
    broadcast: Broadcast,
    member: Member,
    decisions: Decisions,
    now: datetime,
    variant: str = "",
) -> Recipient:
    """What the broadcast does for one member: its variant (`variant` once known: the winner,
    or the one given when it became pending), and whether it is sent now, later (its local send
    time, the end of quiet hours on its calendar) or once an A/B test's winner is known."""
    key, zone = member.user_id, member.zone
    if not key:
        return Recipient(f"profile:{member.profile}", "", "", ANONYMOUS)
    spec = broadcast.spec
    send = send_key(broadcast.campaign_id, broadcast.campaign_uid, broadcast.run, key)
    rule = spec.winner_rule
    in_test = rule is None or in_share(f"{broadcast.campaign_uid}/test", key, rule.test_percent)
    if not variant and not in_test:
        return Recipient(key, send, "", "", pending=True, zone=zone)
    variant = variant or variant_of(broadcast.campaign_uid, key, spec.variants).id
    due = _due(broadcast, member, decisions, now)
    if due is not None:
        return Recipient(key, send, variant, "", pending=True, due_at=due, zone=zone)
    intended = Intended(
        workspace=broadcast.workspace,
        profile_key=key,
        channel=spec.channel,
        transactional=False,
        holdout_of=f"campaigns/{broadcast.campaign_id}",
        holdout_percent=spec.holdout_percent,
    )
    reason, sent = decisions.decide(intended, now, send)
    return Recipient(key, send, variant, reason, sent)


def _due(
    broadcast: Broadcast, member: Member, decisions: Decisions, now: datetime
) -> datetime | None:
    """When the member's send may go, if later than now: its local send time on its calendar,
    then the end of the quiet hours it falls in."""
    local_time = broadcast.spec.local_send_time
    quiet = decisions.policy_of(broadcast.workspace).quiet_hours
    if local_time is None and quiet is None:
        return None
    zone = profile_zone(member.zone)
    if local_time is not None:
        # The first such moment from the run's start on.
        since = broadcast.started - timedelta(microseconds=1)
        due = moments.next_time_of_day(since, zone, *local_time)
        if due > now:
            return due
    return quiet_until(quiet, zone, now) if quiet else None


@dataclass(frozen=True)
class Stats:
    """How one variant's sends have done so far."""

    sent: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0


def choose_winner(rule: WinnerRule, variants: Sequence[Variant], stats: dict[str, Stats]) -> str:
    """The variant with the best rate over its sent recipients; the first listed on a tie."""

    def rate(variant: Variant) -> float:
        found = stats.get(variant.id, Stats())
        hits: dict[int, int] = {
            METRIC_CLICK_RATE: found.clicked,
            METRIC_OPEN_RATE: found.opened,
            METRIC_CONVERSION_RATE: found.converted,
        }
        return hits[rule.metric] / found.sent if found.sent else 0.0

    return max(variants, key=rate).id


def send_messages(
    workspace: str,
    campaign_id: str,
    spec: CampaignSpec,
    recipients: Sequence[Recipient],
    now: datetime,
) -> list[OutgoingMessage]:
    """The sends of queued recipients, as the bus carries them."""
    common = bus_pb2.SendRequested(
        workspace=workspace,
        channel=cast(common_pb2.Channel, spec.channel),
        campaign=campaign_name(workspace, campaign_id),
    )
    common.occurred_at.FromDatetime(now)
    templates = {variant.id: variant.template for variant in spec.variants}
    subject = subjects.sends(spec.channel)
    messages = []
    for recipient in recipients:
        # A copy of what every send shares is cheaper than building each (a broadcast's
        # thousands a second).
        send = bus_pb2.SendRequested()
        send.CopyFrom(common)
        send.id, send.user_id = recipient.send_key, recipient.profile_key
        send.template = templates[recipient.variant]
        messages.append(OutgoingMessage(subject, send))
    return messages


def campaign_name(workspace: str, campaign_id: str) -> str:
    return resources.name_of("campaigns", campaign_id, workspace)
