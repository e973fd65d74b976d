"""Journeys in tests: building them, running the scheduler on real parts, publishing events as
ingest would, and reading what the scheduler put on the bus."""

import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from engage import clock, subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, journey_pb2, journey_pb2_grpc
from tests.harness import MARKETER_KEY, WORKSPACE, Suite, auth

PARENT = f"workspaces/{WORKSPACE}"
TEMPLATE = f"{PARENT}/templates/welcome"
Kind = bus_pb2.JourneyEvent


def start_scheduler(suite: Suite) -> None:
    """Start the scheduler with what it reads: segments serves the workspace's messaging policy
    and the profiles that steps read. Blocking: call it off the event loop."""
    suite.start("segments")
    suite.start("scheduler")


def with_moving_clock(suite: Suite) -> Path:
    """Have the suite's services read a clock the test moves (see `move`), and timers polled
    often; returns the clock's file."""
    offset_file = suite.run_dir / "clock-offset"
    suite.env["ENGAGE_CLOCK_OFFSET_FILE"] = str(offset_file)
    suite.env["ENGAGE_TIMER_POLL_SECONDS"] = "0.1"
    return offset_file


def move(offset_file: Path, by: timedelta) -> None:
    clock.move_clock(offset_file, by)


def now_on(offset_file: Path) -> datetime:
    """What the services' moved clock reads now."""
    return clock.offset_clock(offset_file)()


def send(step_id: str, next: str = "") -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(
        id=step_id,
        send=journey_pb2.SendStep(channel=common_pb2.CHANNEL_EMAIL, template=TEMPLATE),
        next=next,
    )


def wait(step_id: str, duration: timedelta) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id)
    step.wait.duration.FromTimedelta(duration)
    return step


def wait_for(
    step_id: str, event: str, timeout: timedelta, on_timeout: str, next: str
) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id, next=next)
    step.wait.event.event = event
    step.wait.event.timeout.FromTimedelta(timeout)
    step.wait.event.on_timeout = on_timeout
    return step


def exit_step(step_id: str) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(id=step_id, exit=journey_pb2.ExitStep())


def a_journey(
    event: str = "signed_up",
    state: "journey_pb2.Journey.State" = journey_pb2.Journey.STATE_ACTIVE,
    steps: tuple[str, ...] = ("welcome-email",),
    graph: list[journey_pb2.JourneyStep] | None = None,
) -> journey_pb2.Journey:
    """A journey triggered by `event`: a send per id of `steps`, or the steps of `graph`."""
    return journey_pb2.Journey(
        display_name="Welcome",
        state=state,
        trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event=event)),
        steps=graph if graph is not None else [send(step_id) for step_id in steps],
    )


async def create(
    stub: journey_pb2_grpc.JourneyServiceStub, journey_id: str, journey: journey_pb2.Journey
) -> journey_pb2.Journey:
    created: journey_pb2.Journey = await stub.CreateJourney(
        journey_pb2.CreateJourneyRequest(parent=PARENT, journey_id=journey_id, journey=journey),
        metadata=auth(),
    )
    return created


async def track(
    bus: Bus, event: str, user_id: str = "", anonymous_id: str = "", *more_users: str
) -> None:
    """Publish TRACK events as ingest would (one per user, in one batch), under fresh ids."""
    events = [
        common_pb2.Event(
            message_id=uuid.uuid4().hex,
            type=common_pb2.EVENT_TYPE_TRACK,
            event=event,
            user_id=user,
            anonymous_id=anonymous_id if user == user_id else "",
        )
        for user in (user_id, *more_users)
    ]
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=events)
    subject = subjects.events(WORKSPACE, user_id or anonymous_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", workspace=WORKSPACE)


def identify_event(user_id: str, **traits: Any) -> common_pb2.Event:
    event = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
    )
    event.traits.update(traits)
    return event


def track_event(user_id: str, name: str) -> common_pb2.Event:
    return common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_TRACK, event=name, user_id=user_id
    )


async def publish(bus: Bus, user_id: str, *events: common_pb2.Event) -> None:
    """Events of one user in one batch, on the user's partition, as ingest would publish them."""
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=list(events))
    subject = subjects.events(WORKSPACE, user_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", workspace=WORKSPACE)


async def identify(bus: Bus, user_id: str, traits: dict[str, Any], then: str = "") -> None:
    """An identify with these traits and, when named, an event just after it, in one batch (as
    a web shop sends them one after the other)."""
    events = [identify_event(user_id, **traits)]
    if then:
        events.append(track_event(user_id, then))
    await publish(bus, user_id, *events)


async def report(
    bus: Bus, sends: list[bus_pb2.SendRequested], kind: "bus_pb2.DeliveryEvent.Kind"
) -> None:
    """What channels publishes of these sends: sent, opened, clicked…"""
    name = bus_pb2.DeliveryEvent.Kind.Name(kind).removeprefix("KIND_").lower()
    for send in sends:
        event = bus_pb2.DeliveryEvent(
            id=f"{send.id}:{name}",
            workspace=WORKSPACE,
            kind=kind,
            channel=send.channel,
            idempotency_key=send.id,
            user_id=send.user_id,
            journey=send.journey,
            journey_version=send.journey_version,
            step_id=send.step_id,
            campaign=send.campaign,
        )
        subject = subjects.deliveries(WORKSPACE, send.channel)
        await bus.publish(subject, event, event.id, workspace=WORKSPACE)


class WireTap:
    """Every send published, as it crossed the wire, where JetStream's deduplication has not yet
    hidden anything: a step fired twice shows as two different requests under one idempotency
    key (each firing stamps its own time, and bundles its sends anew). The relay publishing the
    same committed message again after a crash is the bus's at-least-once and shows as the same
    message with the same bytes."""

    def __init__(self) -> None:
        # Each key's first request, in the order first seen.
        self.seen: dict[str, bus_pb2.SendRequested] = {}
        self._copies: dict[str, set[tuple[str, bytes]]] = defaultdict(set)

    async def start(self, bus: Bus) -> None:
        async def heard(message: Msg) -> None:
            requests = bus_pb2.SendRequests.FromString(message.data)
            for send in requests.sends:
                self.seen.setdefault(send.id, send)
                copy = (requests.id, send.SerializeToString(deterministic=True))
                self._copies[send.id].add(copy)

        await bus.client.subscribe(subjects.SENDS, cb=heard)

    def requests(self) -> list[bus_pb2.SendRequested]:
        return list(self.seen.values())

    def steps(self) -> dict[str, int]:
        """How many distinct keys each step was requested under."""
        return dict(Counter(send.step_id for send in self.seen.values()))

    def fired_twice(self) -> list[str]:
        return [key for key, copies in self._copies.items() if len(copies) > 1]


async def _stream(bus: Bus, stream: str) -> list[bytes]:
    state = (await bus.js.stream_info(stream)).state
    found = []
    for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        found.append((await bus.js.get_msg(stream, sequence)).data or b"")
    return found


async def sends(bus: Bus) -> list[bus_pb2.SendRequested]:
    """Every send on the SENDS stream, in order (read without consuming)."""
    stored = await _stream(bus, "SENDS")
    return [send for data in stored for send in bus_pb2.SendRequests.FromString(data).sends]


async def sends_to(bus: Bus, user_id: str) -> list[bus_pb2.SendRequested]:
    return [request for request in await sends(bus) if request.user_id == user_id]


async def steps_sent(bus: Bus, user_id: str) -> list[str]:
    return [request.step_id for request in await sends_to(bus, user_id)]


async def journey_events(bus: Bus, user_id: str) -> list[bus_pb2.JourneyEvent]:
    """The JOURNEYS stream's events about `user_id`, in order."""
    stored = await _stream(bus, "JOURNEYS")
    events = [event for data in stored for event in bus_pb2.JourneyEvents.FromString(data).events]
    return [event for event in events if event.user_id == user_id]


EXAMPLES = Path(__file__).parents[1] / "examples"


def engage_apply(suite: Suite, *paths: Path | str) -> subprocess.CompletedProcess[str]:
    """`engage apply` of these files or folders against the suite, as a marketer runs it.
    Blocking: call it off the event loop."""
    command = [sys.executable, "-m", "engage_cli", "apply", *map(str, paths)]
    command += ["--address", suite.address("segments")]
    command += ["--scheduler-address", suite.address("scheduler")]
    command += ["--workspace", WORKSPACE, "--api-key", MARKETER_KEY]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)
