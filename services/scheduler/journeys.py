"""Journeys: what a valid journey is, how an update changes its version, who a trigger event
enrolls, and the bus messages an enrollment produces. Pure: plain values in, plain values out;
time comes from the caller.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from engage import resources, subjects
from engage.errors import InvalidArgument
from engage.v1 import bus_pb2, common_pb2, journey_pb2

DRAFT = journey_pb2.Journey.STATE_DRAFT
ACTIVE = journey_pb2.Journey.STATE_ACTIVE
CREATABLE_STATES = frozenset({DRAFT, ACTIVE})
UPDATABLE_STATES = frozenset(
    {DRAFT, ACTIVE, journey_pb2.Journey.STATE_PAUSED, journey_pb2.Journey.STATE_ARCHIVED}
)
SUPPORTED_CHANNELS = frozenset({common_pb2.CHANNEL_EMAIL})
UPDATABLE_PATHS = ("display_name", "state", "trigger", "steps")
MAX_STEPS = 100
MAX_DISPLAY_NAME = 200

_STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class SendStep:
    channel: int
    template: str
    transactional: bool = False


@dataclass(frozen=True)
class Step:
    id: str
    # None: an exit step.
    send: SendStep | None = None


@dataclass(frozen=True)
class Definition:
    """The parts of a journey a version pins: what enrolls, and what happens then."""

    trigger_event: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class JourneySpec:
    display_name: str
    state: int
    definition: Definition


@dataclass(frozen=True)
class ActiveJourney:
    """What the enrollment path needs to know of an active journey."""

    journey_id: str
    uid: str
    version: int
    definition: Definition


@dataclass(frozen=True)
class TrackedEvent:
    event: str
    user_id: str
    anonymous_id: str


@dataclass(frozen=True)
class Enrollment:
    journey: ActiveJourney
    profile_key: str
    enrollment_id: str
    user_id: str
    anonymous_id: str


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    msg_id: str
    payload: bus_pb2.SendRequested | bus_pb2.JourneyEvent


# --- validation -------------------------------------------------------------------------------


def parse_journey(
    journey: journey_pb2.Journey, workspace: str, field: str = "journey"
) -> JourneySpec:
    """Validate a journey to create; unset state means DRAFT."""
    state = journey.state or DRAFT
    return JourneySpec(
        display_name=parse_display_name(f"{field}.display_name", journey.display_name),
        state=parse_state(f"{field}.state", state, CREATABLE_STATES),
        definition=Definition(
            trigger_event=parse_trigger(f"{field}.trigger", journey.trigger),
            steps=parse_steps(f"{field}.steps", journey.steps, workspace),
        ),
    )


def parse_display_name(field: str, value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidArgument(field, f"must be at most {MAX_DISPLAY_NAME} characters")
    return value


def parse_state(field: str, value: int, allowed: frozenset[int]) -> int:
    if value not in allowed:
        names = ", ".join(sorted(journey_pb2.Journey.State.Name(s) for s in allowed))
        raise InvalidArgument(field, f"must be one of {names}")
    return value


def parse_trigger(field: str, trigger: journey_pb2.JourneyTrigger) -> str:
    if trigger.WhichOneof("kind") != "event" or not trigger.event.event.strip():
        raise InvalidArgument(f"{field}.event.event", "an event name is required")
    return trigger.event.event


def parse_steps(
    field: str, steps: Sequence[journey_pb2.JourneyStep], workspace: str
) -> tuple[Step, ...]:
    if not steps:
        raise InvalidArgument(field, "at least one step is required")
    if len(steps) > MAX_STEPS:
        raise InvalidArgument(field, f"at most {MAX_STEPS} steps")
    parsed: list[Step] = []
    seen: set[str] = set()
    for index, step in enumerate(steps):
        path = f"{field}[{index}]"
        if not _STEP_ID.match(step.id):
            raise InvalidArgument(
                f"{path}.id", "must be 1-63 lower-case letters, digits, '-' or '_'"
            )
        if step.id in seen:
            raise InvalidArgument(f"{path}.id", f"step id {step.id!r} is used twice")
        seen.add(step.id)
        kind = step.WhichOneof("kind")
        if kind == "exit":
            parsed.append(Step(step.id))
        elif kind == "send":
            parsed.append(Step(step.id, _parse_send(f"{path}.send", step.send, workspace)))
        else:
            raise InvalidArgument(path, "must be a send or an exit step")
    return tuple(parsed)


def _parse_send(field: str, send: journey_pb2.SendStep, workspace: str) -> SendStep:
    if send.channel == common_pb2.CHANNEL_UNSPECIFIED:
        raise InvalidArgument(f"{field}.channel", "a channel is required")
    if send.channel not in SUPPORTED_CHANNELS:
        known = send.channel in common_pb2.Channel.values()
        name = common_pb2.Channel.Name(send.channel) if known else str(int(send.channel))
        raise InvalidArgument(f"{field}.channel", f"{name} is not supported yet")
    template = resources.read_name(send.template, "templates")
    if template is None or not resources.is_valid_id(template.id):
        raise InvalidArgument(
            f"{field}.template", "must look like workspaces/{workspace}/templates/{template}"
        )
    if template.workspace != workspace:
        raise InvalidArgument(f"{field}.template", f"must be a template of workspace {workspace}")
    return SendStep(send.channel, send.template, send.transactional)


def update_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """The fields an update mask names; an empty mask means every updatable field."""
    chosen = tuple(paths) or UPDATABLE_PATHS
    for path in chosen:
        if path not in UPDATABLE_PATHS:
            raise InvalidArgument(
                "update_mask", f"cannot update {path!r}; updatable: {', '.join(UPDATABLE_PATHS)}"
            )
    return chosen


def apply_update(
    current: JourneySpec, patch: journey_pb2.Journey, paths: Sequence[str], workspace: str
) -> JourneySpec:
    """The journey after an update of `paths` from `patch` (validated)."""
    display_name, state = current.display_name, current.state
    trigger_event, steps = current.definition.trigger_event, current.definition.steps
    if "display_name" in paths:
        display_name = parse_display_name("journey.display_name", patch.display_name)
    if "state" in paths:
        state = parse_state("journey.state", patch.state, UPDATABLE_STATES)
    if "trigger" in paths:
        trigger_event = parse_trigger("journey.trigger", patch.trigger)
    if "steps" in paths:
        steps = parse_steps("journey.steps", patch.steps, workspace)
    return JourneySpec(display_name, state, Definition(trigger_event, steps))


def next_version(current_version: int, before: JourneySpec, after: JourneySpec) -> int:
    """A change of what a journey does (trigger or steps) saves a new version."""
    return current_version + 1 if before.definition != after.definition else current_version


# --- storage form -------------------------------------------------------------------------------


def steps_to_json(steps: Sequence[Step]) -> str:
    encoded: list[dict[str, object]] = []
    for step in steps:
        if step.send is None:
            encoded.append({"id": step.id, "exit": {}})
        else:
            send = {
                "channel": step.send.channel,
                "template": step.send.template,
                "transactional": step.send.transactional,
            }
            encoded.append({"id": step.id, "send": send})
    return json.dumps(encoded, separators=(",", ":"))


def steps_from_json(text: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    for item in json.loads(text):
        send = item.get("send")
        if send is None:
            steps.append(Step(item["id"]))
        else:
            steps.append(
                Step(item["id"], SendStep(send["channel"], send["template"], send["transactional"]))
            )
    return tuple(steps)


def steps_to_proto(steps: Sequence[Step]) -> list[journey_pb2.JourneyStep]:
    protos = []
    for step in steps:
        if step.send is None:
            protos.append(journey_pb2.JourneyStep(id=step.id, exit=journey_pb2.ExitStep()))
        else:
            send = journey_pb2.SendStep(
                channel=cast(common_pb2.Channel, step.send.channel),
                template=step.send.template,
                transactional=step.send.transactional,
            )
            protos.append(journey_pb2.JourneyStep(id=step.id, send=send))
    return protos


# --- enrollment ---------------------------------------------------------------------------------


def profile_key(user_id: str, anonymous_id: str) -> str:
    """Whom an event is about: the user id, else the anonymous id; empty when neither is set."""
    if user_id:
        return user_id
    return f"anon:{anonymous_id}" if anonymous_id else ""


def enrollment_id(workspace: str, journey_id: str, journey_uid: str, profile: str) -> str:
    """Deterministic, so a replayed trigger names the same enrollment."""
    seed = f"{workspace}/{journey_id}/{journey_uid}/{profile}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def send_key(journey_id: str, version: int, enrollment: str, step_id: str) -> str:
    """The idempotency key of one intended send: channels send each key at most once."""
    return f"{journey_id}:v{version}:{enrollment}:{step_id}"


def plan_enrollments(
    workspace: str, events: Iterable[TrackedEvent], journeys: Sequence[ActiveJourney]
) -> list[Enrollment]:
    """Who the events enroll in which journey, in event order, each pair once."""
    by_trigger: dict[str, list[ActiveJourney]] = {}
    for journey in journeys:
        by_trigger.setdefault(journey.definition.trigger_event, []).append(journey)
    planned: dict[tuple[str, str], Enrollment] = {}
    for event in events:
        key = profile_key(event.user_id, event.anonymous_id)
        if not key:
            continue
        for journey in by_trigger.get(event.event, ()):
            if (journey.journey_id, key) in planned:
                continue
            planned[(journey.journey_id, key)] = Enrollment(
                journey=journey,
                profile_key=key,
                enrollment_id=enrollment_id(workspace, journey.journey_id, journey.uid, key),
                user_id=event.user_id,
                anonymous_id=event.anonymous_id,
            )
    return list(planned.values())


def sends_on_enrollment(steps: Sequence[Step]) -> list[Step]:
    """The send steps run at once on entry: every one in order, until an exit step."""
    sends = []
    for step in steps:
        if step.send is None:
            break
        sends.append(step)
    return sends


def journey_name(workspace: str, journey_id: str) -> str:
    return resources.name_of("journeys", journey_id, workspace)


def enrollment_messages(
    workspace: str, enrollment: Enrollment, now: datetime
) -> list[OutgoingMessage]:
    """What a new enrollment announces: ENROLLED, then one SendRequested per send step."""
    journey = enrollment.journey
    name = journey_name(workspace, journey.journey_id)
    occurred_at = Timestamp()
    occurred_at.FromDatetime(now)
    enrolled_id = f"{journey.journey_id}:v{journey.version}:{enrollment.enrollment_id}:enrolled"
    messages = [
        OutgoingMessage(
            subject=subjects.journeys(workspace),
            msg_id=enrolled_id,
            payload=bus_pb2.JourneyEvent(
                id=enrolled_id,
                occurred_at=occurred_at,
                workspace=workspace,
                kind=bus_pb2.JourneyEvent.KIND_ENROLLED,
                journey=name,
                journey_version=journey.version,
                enrollment_id=enrollment.enrollment_id,
                user_id=enrollment.user_id,
            ),
        )
    ]
    for step in sends_on_enrollment(journey.definition.steps):
        assert step.send is not None
        key = send_key(journey.journey_id, journey.version, enrollment.enrollment_id, step.id)
        request = bus_pb2.SendRequested(
            id=key,
            occurred_at=occurred_at,
            workspace=workspace,
            channel=cast(common_pb2.Channel, step.send.channel),
            template=step.send.template,
            user_id=enrollment.user_id,
            anonymous_id=enrollment.anonymous_id,
            journey=name,
            journey_version=journey.version,
            enrollment_id=enrollment.enrollment_id,
            step_id=step.id,
            transactional=step.send.transactional,
        )
        messages.append(OutgoingMessage(subjects.sends(step.send.channel), key, request))
    return messages
