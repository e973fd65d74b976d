"""What events and timers do to enrollments: who enters which journey (by its re-entry policy),
who leaves (its goal, its exit events), who resumes (the event awaited, the time come), and the
bus messages that announce each step. Pure: the enrollments concerned are loaded by the caller,
changed here in memory, and written back by the caller in one transaction."""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from google.protobuf.timestamp_pb2 import Timestamp

from engage import resources, subjects
from engage.profiles import ProfileView
from engage.rules.evaluate import where_test
from engage.rules.language import PropertyCondition
from engage.v1 import bus_pb2, common_pb2
from services.scheduler import engine
from services.scheduler.decisions import QUIET_HOURS, Decisions, Intended, Sent
from services.scheduler.engine import Waiting
from services.scheduler.graph import AFTER_COOLDOWN, ONCE, Definition, Send, Step, UpdateTrait
from services.scheduler.outgoing import OutgoingMessage, TraitUpdate

# How an enrollment stands: in the journey, through to its end, left early, converted.
ACTIVE = 1
COMPLETED = 2
EXITED = 3
CONVERTED = 4


@dataclass(frozen=True)
class ActiveJourney:
    """What the enrollment path needs to know of a journey that enrolls."""

    journey_id: str
    uid: str
    version: int
    definition: Definition


@dataclass(frozen=True)
class TrackedEvent:
    message_id: str
    event: str
    user_id: str
    anonymous_id: str
    # JSON of the event's properties: a trigger's become its enrollment's context.
    properties: str = "{}"
    # Set for what channels reported of one enrollment's send (`opened:<step>`): only that
    # enrollment hears it, and it enrolls nobody.
    enrollment_id: str = ""

    @property
    def profile_key(self) -> str:
        return profile_key(self.user_id, self.anonymous_id)


@dataclass
class Enrollment:
    """One profile's pass through one journey version, as stored plus what changed here."""

    workspace: str
    journey_id: str
    version: int
    definition: Definition
    enrollment_id: str
    profile_key: str
    user_id: str
    anonymous_id: str
    enrolled_at: datetime
    trigger_message_id: str = ""
    # JSON of what templates may read of the trigger: `{"event": {...its properties}}`.
    context: str = "{}"
    status: int = ACTIVE
    # The step it is at: the wait holding it, or the last step it entered.
    step_id: str = ""
    # Set while a wait for an event holds it.
    awaiting_event: str = ""
    last_send_key: str = ""
    finished_at: datetime | None = None
    # Bumped by every change; a timer set at an earlier position is stale.
    position: int = 0
    # Not stored yet.
    is_new: bool = True
    # A timer to set (the previous one, if any, is dropped with any change).
    timer: Waiting | None = None
    changed: bool = False


@dataclass
class Outcome:
    """What handling events or timers changed: enrollments to write, messages to publish."""

    enrollments: list[Enrollment] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    # The marketing sends made, for the frequency ledger.
    sent: list[Sent] = field(default_factory=list)
    # The identifies of update-trait steps, for the EVENTS stream.
    trait_updates: list[TraitUpdate] = field(default_factory=list)

    def touch(self, enrollment: Enrollment) -> None:
        """Mark the enrollment as changed: it is written back, at the next position."""
        if not enrollment.changed:
            enrollment.changed = True
            enrollment.position += 1
            self.enrollments.append(enrollment)


def profile_key(user_id: str, anonymous_id: str) -> str:
    """Whom an event is about: the user id, else the anonymous id; empty when neither is set."""
    if user_id:
        return user_id
    return f"anon:{anonymous_id}" if anonymous_id else ""


def enrollment_id(
    journey: ActiveJourney, profile: str, trigger_message_id: str, workspace: str
) -> str:
    """Deterministic, so a replayed trigger names the same enrollment: per profile for a journey
    entered once ever, per trigger event where a profile may enter again."""
    once = journey.definition.reentry.mode == ONCE
    seed = f"{workspace}/{journey.journey_id}/{journey.uid}/{profile}"
    if not once:
        seed += f"/{trigger_message_id}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def send_key(journey_id: str, version: int, enrollment: str, step_id: str) -> str:
    """The idempotency key of one intended send: channels send each key at most once."""
    return f"{journey_id}:v{version}:{enrollment}:{step_id}"


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MembershipChange:
    """A profile entering or leaving a segment, as segments announced it."""

    change_id: str
    segment: str
    user_id: str
    entered: bool


@dataclass(frozen=True)
class Entry:
    """A profile at a journey's door: by its trigger event, or by a segment change."""

    journey: ActiveJourney
    profile_key: str
    user_id: str
    anonymous_id: str
    # Seeds the enrollment id where a profile may enter again: the event's or change's id.
    seed: str
    # The event its profile is read with applied (empty for a segment change: segments
    # announces it once the profile is applied).
    applied_event: str
    # What templates may read of the trigger (see Enrollment.context).
    context: str = "{}"


def event_entries(journeys: Sequence[ActiveJourney], event: TrackedEvent) -> list[Entry]:
    if event.enrollment_id:
        return []
    key = event.profile_key
    if not key:
        return []
    triggered = [
        j
        for j in by_priority(journeys)
        if not j.definition.trigger_segment and j.definition.trigger_event == event.event
    ]
    if any(j.definition.trigger_where for j in triggered):
        properties = json.loads(event.properties)
        triggered = [j for j in triggered if _passes(j.definition.trigger_where, properties)]
    context = f'{{"event":{event.properties}}}'
    return [
        Entry(
            j, key, event.user_id, event.anonymous_id, event.message_id, event.message_id, context
        )
        for j in triggered
    ]


def _passes(where: Sequence[PropertyCondition], properties: dict[str, Any]) -> bool:
    test = where_test(where)
    return test is None or test(properties)


def membership_entries(journeys: Sequence[ActiveJourney], change: MembershipChange) -> list[Entry]:
    # Anonymous profiles have no user id to reach them by; their segment changes enroll nobody.
    return [
        Entry(j, change.user_id, change.user_id, "", change.change_id, "")
        for j in by_priority(journeys)
        if change.user_id
        and j.definition.trigger_segment == change.segment
        and j.definition.trigger_on_exit != change.entered
    ]


class Prioritized(Protocol):
    @property
    def journey_id(self) -> str: ...

    @property
    def definition(self) -> Definition: ...


PrioritizedT = TypeVar("PrioritizedT", bound=Prioritized)


def by_priority(items: Iterable[PrioritizedT]) -> list[PrioritizedT]:
    """Journeys (or their enrollments) in the order their sends are decided when they compete
    for a frequency cap at one moment: higher priority first, then by journey id."""
    return sorted(items, key=lambda item: (-item.definition.priority, item.journey_id))


@dataclass
class BatchPlan:
    """The state one batch of events or segment changes works on, loaded by the caller."""

    workspace: str
    # The active journeys the batch may enroll in.
    journeys: Sequence[ActiveJourney]
    # The active enrollments of the batch's profiles.
    active: list[Enrollment]
    # When each (journey id, profile key) last entered, for re-entry.
    last_entered: dict[tuple[str, str], datetime]
    # Enrollment ids already stored: a replayed trigger enters nobody again.
    stored_ids: set[str]
    now: datetime
    decisions: Decisions
    by_profile: dict[str, list[Enrollment]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for enrollment in self.active:
            self.by_profile.setdefault(enrollment.profile_key, []).append(enrollment)


def handle_events(plan: BatchPlan, events: Iterable[TrackedEvent]) -> Outcome:
    """Each event in order: first what it does to the profile's enrollments (goal, exit, an
    awaited event), then whom it enrolls; so a goal before a trigger does not end what the
    trigger starts, and an event after a trigger in the same batch reaches the new enrollment."""
    outcome = Outcome()
    for event in events:
        for enrollment in by_priority(plan.by_profile.get(event.profile_key, [])):
            meant = not event.enrollment_id or event.enrollment_id == enrollment.enrollment_id
            if enrollment.status == ACTIVE and meant:
                _on_event(enrollment, event, plan, outcome)
        for entry in event_entries(plan.journeys, event):
            _enter(plan, entry, outcome)
    return outcome


def handle_memberships(plan: BatchPlan, changes: Iterable[MembershipChange]) -> Outcome:
    """Enroll the profiles whose segment changes trigger journeys, in order."""
    outcome = Outcome()
    for change in changes:
        for entry in membership_entries(plan.journeys, change):
            _enter(plan, entry, outcome)
    return outcome


def _on_event(
    enrollment: Enrollment, event: TrackedEvent, plan: BatchPlan, outcome: Outcome
) -> None:
    definition, now = enrollment.definition, plan.now
    if definition.goal_event == event.event:
        finish(enrollment, CONVERTED, definition.goal_event, now, outcome)
    elif event.event in definition.exit_events:
        finish(enrollment, EXITED, f"exit_event:{event.event}", now, outcome)
    elif enrollment.awaiting_event == event.event:
        resume_at = engine.resume_on_event(definition, enrollment.step_id)
        run(enrollment, resume_at, now, outcome, plan.decisions)


def _enter(plan: BatchPlan, entry: Entry, outcome: Outcome) -> None:
    journey, key = entry.journey, entry.profile_key
    reentry = journey.definition.reentry
    enrollments_of_profile = plan.by_profile.setdefault(key, [])
    if any(
        e.journey_id == journey.journey_id and e.status == ACTIVE for e in enrollments_of_profile
    ):
        return
    last = plan.last_entered.get((journey.journey_id, key))
    if last is not None and reentry.mode == ONCE:
        return
    if last is not None and reentry.mode == AFTER_COOLDOWN and plan.now - last < reentry.cooldown:
        return
    new_id = enrollment_id(journey, key, entry.seed, plan.workspace)
    if new_id in plan.stored_ids:
        return
    enrollment = Enrollment(
        workspace=plan.workspace,
        journey_id=journey.journey_id,
        version=journey.version,
        definition=journey.definition,
        enrollment_id=new_id,
        profile_key=key,
        user_id=entry.user_id,
        anonymous_id=entry.anonymous_id,
        enrolled_at=plan.now,
        trigger_message_id=entry.applied_event,
        context=entry.context,
    )
    outcome.messages.append(_journey_event(enrollment, "enrolled", plan.now))
    run(enrollment, journey.definition.first_step, plan.now, outcome, plan.decisions)
    enrollments_of_profile.append(enrollment)
    plan.last_entered[(journey.journey_id, key)] = plan.now


# --- moving on ----------------------------------------------------------------------------------


def _trigger_of(enrollment: Enrollment) -> engine.Trigger | None:
    """The event that enrolled the profile, when a branch's rule is to read it."""
    definition = enrollment.definition
    if not (definition.branches_on_rules and definition.trigger_event):
        return None
    properties = json.loads(enrollment.context).get("event", {})
    return engine.Trigger(definition.trigger_event, enrollment.enrolled_at, properties)


def run(
    enrollment: Enrollment,
    step_id: str,
    now: datetime,
    outcome: Outcome,
    decisions: Decisions,
    profile: ProfileView | None = None,
) -> None:
    """Advance the enrollment from `step_id` and announce what it did; each send goes out or
    is skipped as `decisions` decides."""
    policy = decisions.policy_of(enrollment.workspace)
    progress = engine.advance(
        enrollment.definition,
        step_id,
        now,
        enrollment.profile_key,
        profile,
        policy.quiet_hours,
        _trigger_of(enrollment),
    )
    outcome.touch(enrollment)
    enrollment.timer = progress.waiting
    enrollment.awaiting_event = progress.waiting.event if progress.waiting else ""
    sends = {step.id: step for step in progress.sends}
    updates = {step.id: step for step in progress.trait_updates}
    for entered in progress.entered:
        enrollment.step_id = entered
        outcome.messages.append(_journey_event(enrollment, "step", now, step_id=entered))
        if entered in sends:
            outcome.messages.append(
                _send_or_skip(enrollment, sends[entered], now, decisions, outcome)
            )
        if entered in updates:
            outcome.trait_updates.append(_trait_update(enrollment, updates[entered], now))
    if progress.deferred:
        outcome.messages.append(
            _journey_event(
                enrollment, "send_deferred", now, step_id=progress.deferred, reason=QUIET_HOURS
            )
        )
    if progress.ended:
        # Announced as `exited` either way, with its reason; kept apart for the counts.
        status = COMPLETED if progress.ended == engine.COMPLETED else EXITED
        finish(enrollment, status, progress.ended, now, outcome)


def retry_later(enrollment: Enrollment, waiting: Waiting, outcome: Outcome) -> None:
    """Keep the enrollment where it is, with a timer set again (a profile not ready yet)."""
    outcome.touch(enrollment)
    enrollment.timer = waiting


def finish(
    enrollment: Enrollment, status: int, reason: str, now: datetime, outcome: Outcome
) -> None:
    outcome.touch(enrollment)
    enrollment.status = status
    enrollment.timer = None
    enrollment.awaiting_event = ""
    enrollment.finished_at = now
    kind = "converted" if status == CONVERTED else "exited"
    outcome.messages.append(_journey_event(enrollment, kind, now, reason=reason))


# --- messages -----------------------------------------------------------------------------------

_KINDS = {
    "enrolled": bus_pb2.JourneyEvent.KIND_ENROLLED,
    "step": bus_pb2.JourneyEvent.KIND_STEP,
    "exited": bus_pb2.JourneyEvent.KIND_EXITED,
    "converted": bus_pb2.JourneyEvent.KIND_CONVERTED,
    "send_skipped": bus_pb2.JourneyEvent.KIND_SEND_SKIPPED,
    "send_deferred": bus_pb2.JourneyEvent.KIND_SEND_DEFERRED,
}


def journey_name(workspace: str, journey_id: str) -> str:
    return resources.name_of("journeys", journey_id, workspace)


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _journey_event(
    enrollment: Enrollment,
    kind: str,
    now: datetime,
    step_id: str = "",
    reason: str = "",
) -> OutgoingMessage:
    prefix = f"{enrollment.journey_id}:v{enrollment.version}:{enrollment.enrollment_id}"
    # One of each kind per enrollment (and per step: journeys do not loop), so ids repeat only
    # when the same change is replayed.
    event_id = f"{prefix}:{step_id}:{kind}" if step_id else f"{prefix}:{kind}"
    workspace = enrollment.workspace
    event = bus_pb2.JourneyEvent(
        id=event_id,
        occurred_at=_stamp(now),
        workspace=workspace,
        kind=_KINDS[kind],
        journey=journey_name(workspace, enrollment.journey_id),
        journey_version=enrollment.version,
        enrollment_id=enrollment.enrollment_id,
        user_id=enrollment.user_id,
        step_id=step_id,
        reason=reason,
    )
    if kind == "converted":
        event.attributed_send = enrollment.last_send_key
        event.time_to_convert.FromTimedelta(max(now - enrollment.enrolled_at, timedelta()))
    return OutgoingMessage(subjects.journeys(workspace), event)


def _send_or_skip(
    enrollment: Enrollment, step: Step, now: datetime, decisions: Decisions, outcome: Outcome
) -> OutgoingMessage:
    action = step.action
    assert isinstance(action, Send)
    key = send_key(enrollment.journey_id, enrollment.version, enrollment.enrollment_id, step.id)
    intended = Intended(
        workspace=enrollment.workspace,
        profile_key=enrollment.profile_key,
        channel=action.channel,
        transactional=action.transactional,
        holdout_of=f"journeys/{enrollment.journey_id}",
        holdout_percent=enrollment.definition.holdout_percent,
    )
    reason, sent = decisions.decide(intended, now, key)
    if sent is not None:
        outcome.sent.append(sent)
    if reason:
        return _journey_event(enrollment, "send_skipped", now, step_id=step.id, reason=reason)
    return _send(enrollment, step, key, now)


def _trait_update(enrollment: Enrollment, step: Step, now: datetime) -> TraitUpdate:
    """The identify that sets the step's trait, under an id of the enrollment and step: a
    replayed step is the same identify again, which EVENTS and segments take once."""
    action = step.action
    assert isinstance(action, UpdateTrait)
    identify = common_pb2.Event(
        message_id=f"{enrollment.journey_id}:v{enrollment.version}:"
        f"{enrollment.enrollment_id}:{step.id}:update_trait",
        type=common_pb2.EVENT_TYPE_IDENTIFY,
        user_id=enrollment.user_id,
        anonymous_id=enrollment.anonymous_id,
    )
    identify.traits.update({action.trait: json.loads(action.value)})
    identify.timestamp.FromDatetime(now)
    identify.received_at.FromDatetime(now)
    return TraitUpdate(enrollment.workspace, identify)


def _send(enrollment: Enrollment, step: Step, key: str, now: datetime) -> OutgoingMessage:
    action = step.action
    workspace = enrollment.workspace
    assert isinstance(action, Send)
    enrollment.last_send_key = key
    request = bus_pb2.SendRequested(
        id=key,
        occurred_at=_stamp(now),
        workspace=workspace,
        channel=cast(common_pb2.Channel, action.channel),
        template=action.template,
        user_id=enrollment.user_id,
        anonymous_id=enrollment.anonymous_id,
        journey=journey_name(workspace, enrollment.journey_id),
        journey_version=enrollment.version,
        enrollment_id=enrollment.enrollment_id,
        step_id=step.id,
        transactional=action.transactional,
    )
    # The trigger's properties, for a template to name what the customer did.
    request.data.update(json.loads(enrollment.context))
    return OutgoingMessage(subjects.sends(action.channel), request)


def delivery_event(kind: str, send_key: str, user_id: str, delivery_id: str) -> TrackedEvent | None:
    """What channels reported of a journey's send (`opened`, `clicked`…), as the event its
    enrollment may wait for: `<kind>:<step id>`, heard by that enrollment only. None for a key
    that is not a journey's (see `send_key`)."""
    parts = send_key.split(":")
    if len(parts) != 4 or not parts[1].startswith("v"):
        return None
    _, _, enrollment, step_id = parts
    return TrackedEvent(delivery_id, f"{kind}:{step_id}", user_id, "", enrollment_id=enrollment)
