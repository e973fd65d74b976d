"""What a journey would do to one profile, without sending: the real machinery (the engine, the
send decisions, quiet hours) run on an enrollment held in memory, under a clock that jumps from
each wait to the next. A wait for an event is taken to time out: the simulation cannot know
whether the event would come. Pure."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engage.profiles import ProfileView
from engage.v1 import bus_pb2
from services.scheduler import enrollments
from services.scheduler.decisions import Decisions
from services.scheduler.enrollments import ACTIVE, ActiveJourney, Enrollment, Outcome
from services.scheduler.outgoing import OutgoingMessage

ENTERED, SENT, SKIPPED, DEFERRED, ASSUMED_TIMEOUT = (
    "entered",
    "sent",
    "skipped",
    "deferred",
    "assumed_timeout",
)
WAITING = "waiting"
_Kind = bus_pb2.JourneyEvent


@dataclass(frozen=True)
class SimulatedStep:
    step_id: str
    kind: str
    time: datetime
    channel: int = 0
    template: str = ""
    reason: str = ""


@dataclass
class Simulation:
    steps: list[SimulatedStep] = field(default_factory=list)
    # How the enrollment ends within the horizon, or WAITING.
    outcome: str = WAITING


def simulate(
    journey: ActiveJourney,
    workspace: str,
    profile: ProfileView,
    decisions: Decisions,
    start: datetime,
    horizon: timedelta,
) -> Simulation:
    """Follow one profile through the journey from `start` for `horizon`."""
    key = profile.user_id
    enrollment = Enrollment(
        workspace=workspace,
        journey_id=journey.journey_id,
        version=journey.version,
        definition=journey.definition,
        enrollment_id="simulated",
        profile_key=key,
        user_id=key,
        anonymous_id="",
        enrolled_at=start,
    )
    simulation, outcome = Simulation(), Outcome()
    now, step_id, end = start, journey.definition.first_step, start + horizon
    while True:
        seen = len(outcome.messages)
        enrollments.run(enrollment, step_id, now, outcome, decisions, profile)
        simulation.steps += _translated(outcome.messages[seen:], now)
        if enrollment.status != ACTIVE:
            simulation.outcome = _ending(outcome)
            return simulation
        timer = enrollment.timer
        assert timer is not None
        if timer.due_at > end:
            return simulation
        if timer.event:
            simulation.steps.append(SimulatedStep(timer.step_id, ASSUMED_TIMEOUT, timer.due_at))
        now, step_id = timer.due_at, timer.resume_at


def _translated(messages: list[OutgoingMessage], now: datetime) -> list[SimulatedStep]:
    steps = []
    for message in messages:
        payload = message.payload
        if isinstance(payload, bus_pb2.SendRequested):
            steps.append(
                SimulatedStep(payload.step_id, SENT, now, payload.channel, payload.template)
            )
        elif payload.kind == _Kind.KIND_STEP:
            steps.append(SimulatedStep(payload.step_id, ENTERED, now))
        elif payload.kind == _Kind.KIND_SEND_SKIPPED:
            steps.append(SimulatedStep(payload.step_id, SKIPPED, now, reason=payload.reason))
        elif payload.kind == _Kind.KIND_SEND_DEFERRED:
            steps.append(SimulatedStep(payload.step_id, DEFERRED, now, reason=payload.reason))
    return steps


def _ending(outcome: Outcome) -> str:
    for message in reversed(outcome.messages):
        payload = message.payload
        if isinstance(payload, bus_pb2.JourneyEvent) and payload.kind == _Kind.KIND_EXITED:
            return payload.reason
    return WAITING
