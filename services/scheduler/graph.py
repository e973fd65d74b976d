"""What a journey version does, as a graph of steps: its parts, how they are validated from the
contract, and their storage form (the contract's own JSON). Pure."""

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from engage import resources
from engage.errors import InvalidArgument
from engage.rules.language import PropertyCondition, Rule, validate_where
from engage.rules.proto import from_proto as rule_from_proto
from engage.rules.proto import to_proto as rule_to_proto
from engage.rules.proto import where_from_proto, where_to_proto
from engage.v1 import common_pb2, journey_pb2, segment_pb2

# The scheduler decides on every channel; channels delivers what it has an adapter for and
# records the rest as skipped.
CHANNELS = frozenset(common_pb2.Channel.values()) - {common_pb2.CHANNEL_UNSPECIFIED}
MAX_STEPS = 100
MAX_EXIT_EVENTS = 20
# The longest wait or cool-down: long enough for a yearly plan's reminder, short enough that a
# typo of units (days for seconds) is caught.
MAX_WAIT = timedelta(days=2 * 366)

ONCE = journey_pb2.ReentryPolicy.MODE_ONCE
ONE_AT_A_TIME = journey_pb2.ReentryPolicy.MODE_ONE_AT_A_TIME
AFTER_COOLDOWN = journey_pb2.ReentryPolicy.MODE_AFTER_COOLDOWN

_STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Send:
    channel: int
    template: str
    transactional: bool = False


@dataclass(frozen=True)
class Exit:
    pass


@dataclass(frozen=True)
class WaitFor:
    """Wait a duration; or, when `event` is set, wait for it at most `duration`."""

    duration: timedelta
    event: str = ""
    # Where a wait for an event goes when it times out; empty: the enrollment ends.
    on_timeout: str = ""


@dataclass(frozen=True)
class WaitUntilTime:
    """Until the next time this time of day comes on the profile's calendar."""

    hours: int
    minutes: int


@dataclass(frozen=True)
class WaitUntilTraitDate:
    """Until the moment a date trait names, moved on the profile's calendar."""

    trait: str
    months: int = 0
    days: int = 0
    # (hours, minutes); None: the trait's own time of day.
    at: tuple[int, int] | None = None
    # Where a profile whose trait holds no date goes; empty: the enrollment ends.
    on_missing: str = ""


@dataclass(frozen=True)
class BranchPath:
    """Taken on a segment's membership (`segment` a name, `member` or not), or when `rule`
    holds (over the profile and the event that enrolled it)."""

    next: str
    segment: str = ""
    member: bool = True
    rule: Rule | None = None


@dataclass(frozen=True)
class Branch:
    # Tried in order; the first that holds is taken.
    paths: tuple[BranchPath, ...]
    otherwise: str = ""


@dataclass(frozen=True)
class UpdateTrait:
    trait: str
    # The new value as JSON text (kept as text: a definition is frozen).
    value: str


@dataclass(frozen=True)
class Split:
    # (percent, next step id or "" to end), in the order given; percents add up to 100.
    paths: tuple[tuple[int, str], ...]


Action = Send | Exit | WaitFor | WaitUntilTime | WaitUntilTraitDate | Split | Branch | UpdateTrait
# The steps that read the profile (its zone, its traits, its segments) to decide.
PROFILE_STEPS = (WaitUntilTime, WaitUntilTraitDate, Branch)
MAX_BRANCH_PATHS = 20
MAX_TRAIT_MONTHS = 120
MAX_TRAIT_DAYS = 3660
MAX_TRAIT_KEY = 128
MAX_PRIORITY = 100
# A trait a journey sets is a flag or a short value, not a document.
MAX_TRAIT_VALUE_BYTES = 4096


@dataclass(frozen=True)
class Step:
    id: str
    action: Action
    # The step after this one ("" ends the enrollment); for a split, unused.
    next: str = ""


@dataclass(frozen=True)
class Reentry:
    mode: int = ONCE
    cooldown: timedelta = timedelta()


@dataclass(frozen=True)
class Definition:
    """The parts of a journey a version pins: what enrolls, what happens then, what ends it.
    The trigger is an event, or (with `trigger_segment`) entering or leaving a segment."""

    trigger_event: str
    steps: tuple[Step, ...]
    goal_event: str = ""
    exit_events: tuple[str, ...] = ()
    reentry: Reentry = Reentry()
    trigger_segment: str = ""
    trigger_on_exit: bool = False
    # Conditions on the trigger event's properties, every one to pass.
    trigger_where: tuple[PropertyCondition, ...] = ()
    holdout_percent: float = 0.0
    # Higher is decided first among sends competing for a frequency cap at one moment.
    priority: int = 0

    @property
    def first_step(self) -> str:
        return self.steps[0].id

    def step(self, step_id: str) -> Step:
        return self._by_id()[step_id]

    @functools.cached_property
    def branches_on_rules(self) -> bool:
        """Whether a branch reads a rule (and so the event that enrolled the profile)."""
        return any(
            isinstance(step.action, Branch) and any(p.rule for p in step.action.paths)
            for step in self.steps
        )

    def _by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}


# --- validation ---------------------------------------------------------------------------------


def parse_definition(journey: journey_pb2.Journey, field: str, workspace: str) -> Definition:
    """The definition a journey message describes, validated; errors name the field path."""
    trigger = journey.trigger
    segment = trigger.segment
    by_segment = trigger.WhichOneof("kind") == "segment"
    return Definition(
        trigger_event="" if by_segment else _parse_trigger_event(f"{field}.trigger", trigger),
        trigger_segment=(
            _parse_segment(f"{field}.trigger.segment.segment", segment.segment, workspace)
            if by_segment
            else ""
        ),
        trigger_on_exit=by_segment and segment.change == segment.CHANGE_EXITED,
        trigger_where=_parse_where(f"{field}.trigger.event.where", trigger.event.where),
        steps=parse_steps(f"{field}.steps", journey.steps, workspace),
        goal_event=_parse_event_name(f"{field}.goal.event", journey.goal.event, required=False),
        exit_events=_parse_exit_events(f"{field}.exit_events", journey.exit_events),
        reentry=_parse_reentry(f"{field}.reentry", journey.reentry),
        holdout_percent=_parse_percent(f"{field}.holdout_percent", journey.holdout_percent),
        priority=_parse_priority(f"{field}.priority", journey.priority),
    )


def _parse_priority(field: str, priority: int) -> int:
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidArgument(field, f"must be from 0 to {MAX_PRIORITY}")
    return priority


def _parse_percent(field: str, percent: float) -> float:
    if not 0 <= percent < 100:
        raise InvalidArgument(field, "must be from 0 to under 100")
    return percent


def _parse_trigger_event(field: str, trigger: journey_pb2.JourneyTrigger) -> str:
    if trigger.WhichOneof("kind") != "event":
        raise InvalidArgument(f"{field}.event.event", "an event name (or a segment) is required")
    return _parse_event_name(f"{field}.event.event", trigger.event.event)


def _parse_where(
    field: str, where: Sequence[segment_pb2.PropertyCondition]
) -> tuple[PropertyCondition, ...]:
    conditions = where_from_proto(where, field)
    validate_where(conditions, field)
    return conditions


def _parse_segment(field: str, name: str, workspace: str) -> str:
    segment = resources.read_name(name, "segments")
    if segment is None or not resources.is_valid_id(segment.id):
        raise InvalidArgument(field, "must look like workspaces/{workspace}/segments/{segment}")
    if segment.workspace != workspace:
        raise InvalidArgument(field, f"must be a segment of workspace {workspace}")
    return name


def _parse_event_name(field: str, name: str, required: bool = True) -> str:
    if required and not name.strip():
        raise InvalidArgument(field, "an event name is required")
    if name != name.strip():
        raise InvalidArgument(field, "must not start or end with spaces")
    return name


def _parse_exit_events(field: str, names: Sequence[str]) -> tuple[str, ...]:
    if len(names) > MAX_EXIT_EVENTS:
        raise InvalidArgument(field, f"at most {MAX_EXIT_EVENTS} events")
    return tuple(_parse_event_name(f"{field}[{i}]", name) for i, name in enumerate(names))


def _parse_reentry(field: str, policy: journey_pb2.ReentryPolicy) -> Reentry:
    mode = policy.mode or ONCE
    if mode not in (ONCE, ONE_AT_A_TIME, AFTER_COOLDOWN):
        raise InvalidArgument(
            f"{field}.mode", "must be MODE_ONCE, MODE_ONE_AT_A_TIME or MODE_AFTER_COOLDOWN"
        )
    if mode != AFTER_COOLDOWN:
        if policy.HasField("cooldown"):
            raise InvalidArgument(f"{field}.cooldown", "is only for MODE_AFTER_COOLDOWN")
        return Reentry(mode)
    return Reentry(
        mode, _parse_duration(f"{field}.cooldown", policy.cooldown, policy.HasField("cooldown"))
    )


def _parse_duration(field: str, duration: Duration, present: bool) -> timedelta:
    if not present:
        raise InvalidArgument(field, "a duration is required")
    value = duration.ToTimedelta()
    if value <= timedelta():
        raise InvalidArgument(field, "must be positive")
    if value > MAX_WAIT:
        raise InvalidArgument(field, f"must be at most {MAX_WAIT.days} days")
    return value


def parse_steps(
    field: str, steps: Sequence[journey_pb2.JourneyStep], workspace: str
) -> tuple[Step, ...]:
    if not steps:
        raise InvalidArgument(field, "at least one step is required")
    if len(steps) > MAX_STEPS:
        raise InvalidArgument(field, f"at most {MAX_STEPS} steps")
    ids = [step.id for step in steps]
    parsed: list[Step] = []
    for index, step in enumerate(steps):
        path = f"{field}[{index}]"
        if not _STEP_ID.match(step.id):
            raise InvalidArgument(
                f"{path}.id", "must be 1-63 lower-case letters, digits, '-' or '_'"
            )
        if step.id in ids[:index]:
            raise InvalidArgument(f"{path}.id", f"step id {step.id!r} is used twice")
        following = ids[index + 1] if index + 1 < len(ids) else ""
        next_id = _parse_next(f"{path}.next", step.next, ids) or following
        parsed.append(Step(step.id, _parse_action(path, step, ids, workspace), next_id))
    _refuse_cycles(field, parsed)
    return tuple(parsed)


def _parse_next(field: str, next_id: str, ids: Sequence[str]) -> str:
    if next_id and next_id not in ids:
        raise InvalidArgument(field, f"no step has the id {next_id!r}")
    return next_id


def _parse_action(
    path: str, step: journey_pb2.JourneyStep, ids: Sequence[str], workspace: str
) -> Action:
    kind = step.WhichOneof("kind")
    if kind == "send":
        return _parse_send(f"{path}.send", step.send, workspace)
    if kind == "exit":
        if step.next:
            raise InvalidArgument(f"{path}.next", "an exit step has no next step")
        return Exit()
    if kind == "wait":
        return _parse_wait(f"{path}.wait", step.wait, ids)
    if kind in ("split", "branch") and step.next:
        raise InvalidArgument(f"{path}.next", f"a {kind} step goes on by its paths, not next")
    if kind == "split":
        return _parse_split(f"{path}.split", step.split, ids)
    if kind == "branch":
        return _parse_branch(f"{path}.branch", step.branch, ids, workspace)
    if kind == "update_trait":
        return _parse_update_trait(f"{path}.update_trait", step.update_trait)
    raise InvalidArgument(path, "must be a send, wait, branch, split, update_trait or exit step")


def _parse_update_trait(field: str, update: journey_pb2.UpdateTraitStep) -> UpdateTrait:
    trait = update.trait
    if not trait.strip() or trait != trait.strip() or len(trait) > MAX_TRAIT_KEY:
        raise InvalidArgument(
            f"{field}.trait", f"must be 1-{MAX_TRAIT_KEY} characters, without spaces around"
        )
    if not update.HasField("value"):
        raise InvalidArgument(f"{field}.value", "a value is required")
    try:
        value = json.dumps(
            json_format.MessageToDict(update.value), ensure_ascii=False, sort_keys=True
        )
    except (ValueError, json_format.SerializeToJsonError) as error:
        raise InvalidArgument(f"{field}.value", f"must be a JSON value: {error}") from None
    if "\\u0000" in value or len(value.encode()) > MAX_TRAIT_VALUE_BYTES:
        raise InvalidArgument(
            f"{field}.value", f"must be at most {MAX_TRAIT_VALUE_BYTES} bytes, without NUL"
        )
    return UpdateTrait(trait, value)


def _parse_send(field: str, send: journey_pb2.SendStep, workspace: str) -> Send:
    if send.channel == common_pb2.CHANNEL_UNSPECIFIED:
        raise InvalidArgument(f"{field}.channel", "a channel is required")
    if send.channel not in CHANNELS:
        raise InvalidArgument(f"{field}.channel", f"{int(send.channel)} is not a Channel")
    template = resources.read_name(send.template, "templates")
    if template is None or not resources.is_valid_id(template.id):
        raise InvalidArgument(
            f"{field}.template", "must look like workspaces/{workspace}/templates/{template}"
        )
    if template.workspace != workspace:
        raise InvalidArgument(f"{field}.template", f"must be a template of workspace {workspace}")
    return Send(send.channel, send.template, send.transactional)


def _parse_wait(field: str, wait: journey_pb2.WaitStep, ids: Sequence[str]) -> Action:
    until = wait.WhichOneof("until")
    if until == "time_of_day":
        return WaitUntilTime(*_parse_local_time(f"{field}.time_of_day", wait.time_of_day))
    if until == "trait_date":
        return _parse_trait_date(f"{field}.trait_date", wait.trait_date, ids)
    if until == "duration":
        return WaitFor(_parse_duration(f"{field}.duration", wait.duration, True))
    if until == "event":
        event = wait.event
        return WaitFor(
            duration=_parse_duration(
                f"{field}.event.timeout", event.timeout, event.HasField("timeout")
            ),
            event=_parse_event_name(f"{field}.event.event", event.event),
            on_timeout=_parse_next(f"{field}.event.on_timeout", event.on_timeout, ids),
        )
    raise InvalidArgument(field, "must wait for a duration, an event, a time of day or a date")


def _parse_local_time(field: str, time: common_pb2.LocalTime) -> tuple[int, int]:
    if not 0 <= time.hours <= 23:
        raise InvalidArgument(f"{field}.hours", "must be from 0 to 23")
    if not 0 <= time.minutes <= 59:
        raise InvalidArgument(f"{field}.minutes", "must be from 0 to 59")
    return time.hours, time.minutes


def _parse_trait_date(
    field: str, date: journey_pb2.TraitDate, ids: Sequence[str]
) -> WaitUntilTraitDate:
    if not date.trait.strip():
        raise InvalidArgument(f"{field}.trait", "a trait name is required")
    if abs(date.months) > MAX_TRAIT_MONTHS:
        raise InvalidArgument(f"{field}.months", f"must be within ±{MAX_TRAIT_MONTHS}")
    if abs(date.days) > MAX_TRAIT_DAYS:
        raise InvalidArgument(f"{field}.days", f"must be within ±{MAX_TRAIT_DAYS}")
    at = _parse_local_time(f"{field}.at", date.at) if date.HasField("at") else None
    on_missing = _parse_next(f"{field}.on_missing", date.on_missing, ids)
    return WaitUntilTraitDate(date.trait, date.months, date.days, at, on_missing)


def _parse_branch(
    field: str, branch: journey_pb2.BranchStep, ids: Sequence[str], workspace: str
) -> Branch:
    if not branch.paths:
        raise InvalidArgument(f"{field}.paths", "a branch needs at least one path")
    if len(branch.paths) > MAX_BRANCH_PATHS:
        raise InvalidArgument(f"{field}.paths", f"at most {MAX_BRANCH_PATHS} paths")
    paths = tuple(
        _parse_branch_path(f"{field}.paths[{i}]", path, ids, workspace)
        for i, path in enumerate(branch.paths)
    )
    return Branch(paths, _parse_next(f"{field}.otherwise", branch.otherwise, ids))


def _parse_branch_path(
    field: str, path: journey_pb2.BranchPath, ids: Sequence[str], workspace: str
) -> BranchPath:
    next_id = _parse_next(f"{field}.next", path.next, ids)
    if not path.HasField("rule"):
        segment = _parse_segment(f"{field}.segment", path.segment, workspace)
        return BranchPath(next_id, segment, path.member)
    if path.segment:
        raise InvalidArgument(f"{field}.segment", "a path tests a segment or a rule, not both")
    return BranchPath(next_id, rule=rule_from_proto(path.rule, f"{field}.rule", workspace))


def _parse_split(field: str, split: journey_pb2.SplitStep, ids: Sequence[str]) -> Split:
    if not split.paths:
        # One path of 100% is a split whose winner is kept.
        raise InvalidArgument(f"{field}.paths", "a split needs at least one path")
    paths = []
    for index, path in enumerate(split.paths):
        if not 1 <= path.percent <= 100:
            raise InvalidArgument(f"{field}.paths[{index}].percent", "must be from 1 to 100")
        paths.append((path.percent, _parse_next(f"{field}.paths[{index}].next", path.next, ids)))
    if sum(percent for percent, _ in paths) != 100:
        raise InvalidArgument(f"{field}.paths", "the percentages must add up to 100")
    return Split(tuple(paths))


def successors(step: Step) -> list[str]:
    """The steps an enrollment can go to from `step`."""
    action = step.action
    if isinstance(action, Exit):
        return []
    if isinstance(action, Split):
        return [next_id for _, next_id in action.paths if next_id]
    if isinstance(action, Branch):
        return [n for n in (*(path.next for path in action.paths), action.otherwise) if n]
    found = [step.next] if step.next else []
    if isinstance(action, WaitFor) and action.on_timeout:
        found.append(action.on_timeout)
    if isinstance(action, WaitUntilTraitDate) and action.on_missing:
        found.append(action.on_missing)
    return found


def _refuse_cycles(field: str, steps: Sequence[Step]) -> None:
    """A cycle would send the same step twice to one enrollment (its idempotency key would
    stop the second) or loop for ever; journeys are acyclic graphs."""
    by_id = {step.id: step for step in steps}
    done: set[str] = set()
    for start in by_id:
        on_path: list[str] = []
        _visit(field, start, by_id, on_path, done)


def _visit(
    field: str, step_id: str, by_id: dict[str, Step], on_path: list[str], done: set[str]
) -> None:
    if step_id in done:
        return
    if step_id in on_path:
        loop = " → ".join([*on_path[on_path.index(step_id) :], step_id])
        raise InvalidArgument(field, f"the steps loop ({loop}); a journey must not loop")
    on_path.append(step_id)
    for next_id in successors(by_id[step_id]):
        _visit(field, next_id, by_id, on_path, done)
    on_path.pop()
    done.add(step_id)


# --- the contract's form, and storage -------------------------------------------------------------


def to_proto(definition: Definition) -> journey_pb2.Journey:
    """The journey fields a definition sets (trigger, steps, goal, exit events, re-entry)."""
    journey = journey_pb2.Journey(
        trigger=_trigger_to_proto(definition),
        steps=[_step_to_proto(step, definition) for step in definition.steps],
        exit_events=definition.exit_events,
        holdout_percent=definition.holdout_percent,
        priority=definition.priority,
    )
    if definition.goal_event:
        journey.goal.event = definition.goal_event
    if definition.reentry != Reentry():
        journey.reentry.mode = cast(journey_pb2.ReentryPolicy.Mode, definition.reentry.mode)
        if definition.reentry.mode == AFTER_COOLDOWN:
            journey.reentry.cooldown.FromTimedelta(definition.reentry.cooldown)
    return journey


def _trigger_to_proto(definition: Definition) -> journey_pb2.JourneyTrigger:
    if not definition.trigger_segment:
        event = journey_pb2.EventTrigger(event=definition.trigger_event)
        where_to_proto(definition.trigger_where, event.where)
        return journey_pb2.JourneyTrigger(event=event)
    change = journey_pb2.SegmentTrigger.CHANGE_ENTERED
    if definition.trigger_on_exit:
        change = journey_pb2.SegmentTrigger.CHANGE_EXITED
    segment = journey_pb2.SegmentTrigger(segment=definition.trigger_segment, change=change)
    return journey_pb2.JourneyTrigger(segment=segment)


def _step_to_proto(step: Step, definition: Definition) -> journey_pb2.JourneyStep:
    proto = journey_pb2.JourneyStep(id=step.id)
    action = step.action
    if isinstance(action, Send):
        proto.send.channel = cast(common_pb2.Channel, action.channel)
        proto.send.template = action.template
        proto.send.transactional = action.transactional
    elif isinstance(action, Exit):
        proto.exit.SetInParent()
    elif isinstance(action, WaitFor) and action.event:
        proto.wait.event.event = action.event
        proto.wait.event.timeout.FromTimedelta(action.duration)
        proto.wait.event.on_timeout = action.on_timeout
    elif isinstance(action, WaitFor):
        proto.wait.duration.FromTimedelta(action.duration)
    elif isinstance(action, WaitUntilTime):
        # SetInParent: 00:00 sets no field, yet the wait is for a time of day.
        proto.wait.time_of_day.SetInParent()
        proto.wait.time_of_day.hours, proto.wait.time_of_day.minutes = action.hours, action.minutes
    elif isinstance(action, WaitUntilTraitDate):
        date = proto.wait.trait_date
        date.trait, date.months, date.days = action.trait, action.months, action.days
        date.on_missing = action.on_missing
        date.SetInParent()
        if action.at is not None:
            date.at.SetInParent()
            date.at.hours, date.at.minutes = action.at
    elif isinstance(action, Branch):
        proto.branch.otherwise = action.otherwise
        proto.branch.paths.extend(_branch_path_to_proto(path) for path in action.paths)
    elif isinstance(action, UpdateTrait):
        proto.update_trait.trait = action.trait
        json_format.ParseDict(json.loads(action.value), proto.update_trait.value)
    else:
        proto.split.paths.extend(
            journey_pb2.SplitPath(percent=percent, next=next_id)
            for percent, next_id in action.paths
        )
    if not isinstance(action, (Exit, Split, Branch)):
        # Written out in full, so the stored form reads the same wherever the step moves.
        proto.next = step.next
    return proto


def to_json(definition: Definition) -> str:
    return json_format.MessageToJson(to_proto(definition), indent=None)


def from_json(text: str, workspace: str) -> Definition:
    """A stored definition (validated when it was saved)."""
    journey = json_format.Parse(text, journey_pb2.Journey())
    return parse_definition(journey, "journey", workspace)


def _branch_path_to_proto(path: BranchPath) -> journey_pb2.BranchPath:
    if path.rule is None:
        return journey_pb2.BranchPath(segment=path.segment, member=path.member, next=path.next)
    return journey_pb2.BranchPath(rule=rule_to_proto(path.rule), next=path.next)
