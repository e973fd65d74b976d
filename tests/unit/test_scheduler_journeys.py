"""The journey rules, without any I/O: validation, versions, enrollments, idempotency keys."""

from datetime import UTC, datetime

import pytest

from engage.errors import InvalidArgument
from engage.v1 import bus_pb2, common_pb2, journey_pb2
from services.scheduler import journeys
from services.scheduler.journeys import ActiveJourney, Definition, SendStep, Step, TrackedEvent

WS = "acme"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TEMPLATE = f"workspaces/{WS}/templates/welcome"


def send(step_id: str, channel: int = common_pb2.CHANNEL_EMAIL) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(
        id=step_id,
        send=journey_pb2.SendStep(channel=channel, template=TEMPLATE),  # type: ignore[arg-type]
    )


def exit_step(step_id: str) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(id=step_id, exit=journey_pb2.ExitStep())


def journey(**overrides: object) -> journey_pb2.Journey:
    fields: dict[str, object] = {
        "display_name": "Welcome",
        "trigger": journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event="signed_up")),
        "steps": [send("welcome")],
    }
    fields.update(overrides)
    return journey_pb2.Journey(**fields)  # type: ignore[arg-type]


def invalid_field(made: journey_pb2.Journey) -> str:
    with pytest.raises(InvalidArgument) as raised:
        journeys.parse_journey(made, WS)
    return raised.value.field


def test_a_valid_journey_without_state_is_a_draft() -> None:
    spec = journeys.parse_journey(journey(), WS)
    assert spec.state == journeys.DRAFT
    assert spec.definition == Definition(
        "signed_up", (Step("welcome", SendStep(common_pb2.CHANNEL_EMAIL, TEMPLATE)),)
    )


def test_invalid_journeys_name_the_offending_field() -> None:
    assert invalid_field(journey(trigger=journey_pb2.JourneyTrigger())) == (
        "journey.trigger.event.event"
    )
    assert invalid_field(journey(steps=[])) == "journey.steps"
    assert invalid_field(journey(steps=[send("a"), send("a")])) == "journey.steps[1].id"
    assert invalid_field(journey(steps=[send("")])) == "journey.steps[0].id"
    assert invalid_field(journey(steps=[journey_pb2.JourneyStep(id="a")])) == "journey.steps[0]"
    assert invalid_field(journey(state=journey_pb2.Journey.STATE_PAUSED)) == "journey.state"
    bad_template = journey_pb2.JourneyStep(
        id="a", send=journey_pb2.SendStep(channel=common_pb2.CHANNEL_EMAIL, template="welcome")
    )
    assert invalid_field(journey(steps=[bad_template])) == "journey.steps[0].send.template"
    other_workspace = journey_pb2.JourneyStep(
        id="a",
        send=journey_pb2.SendStep(
            channel=common_pb2.CHANNEL_EMAIL, template="workspaces/globex/templates/welcome"
        ),
    )
    assert invalid_field(journey(steps=[other_workspace])) == "journey.steps[0].send.template"


def test_channels_other_than_email_are_not_supported_yet() -> None:
    with pytest.raises(InvalidArgument) as raised:
        journeys.parse_journey(journey(steps=[send("a"), send("b", common_pb2.CHANNEL_SMS)]), WS)
    assert raised.value.field == "journey.steps[1].send.channel"
    assert "not supported yet" in raised.value.message


def test_idempotency_keys_are_deterministic() -> None:
    first = journeys.enrollment_id(WS, "welcome", "uid1", "u1")
    assert first == journeys.enrollment_id(WS, "welcome", "uid1", "u1")
    assert len(first) == 24
    assert first != journeys.enrollment_id(WS, "welcome", "uid1", "u2")
    assert first != journeys.enrollment_id(WS, "welcome", "uid2", "u1")
    assert journeys.send_key("welcome", 3, first, "email-1") == f"welcome:v3:{first}:email-1"


def test_changing_steps_or_trigger_bumps_the_version_and_a_rename_does_not() -> None:
    before = journeys.parse_journey(journey(), WS)
    renamed = journeys.apply_update(before, journey(display_name="Hello"), ["display_name"], WS)
    assert renamed.display_name == "Hello"
    assert journeys.next_version(1, before, renamed) == 1
    activated = journeys.apply_update(
        before, journey(state=journey_pb2.Journey.STATE_ACTIVE), ["state"], WS
    )
    assert journeys.next_version(1, before, activated) == 1
    restepped = journeys.apply_update(before, journey(steps=[send("other")]), ["steps"], WS)
    assert journeys.next_version(1, before, restepped) == 2
    retriggered = journeys.apply_update(
        before,
        journey(trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event="x"))),
        ["trigger"],
        WS,
    )
    assert journeys.next_version(4, before, retriggered) == 5
    same_steps = journeys.apply_update(before, journey(), ["steps", "trigger"], WS)
    assert journeys.next_version(1, before, same_steps) == 1


def test_an_unknown_update_mask_path_is_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        journeys.update_paths(["version"])
    assert raised.value.field == "update_mask"
    assert journeys.update_paths([]) == journeys.UPDATABLE_PATHS


def test_steps_survive_their_storage_form() -> None:
    steps = journeys.parse_journey(journey(steps=[send("a"), exit_step("stop")]), WS).definition
    assert journeys.steps_from_json(journeys.steps_to_json(steps.steps)) == steps.steps


def active(journey_id: str, event: str, *steps: Step, version: int = 1) -> ActiveJourney:
    return ActiveJourney(journey_id, f"uid-{journey_id}", version, Definition(event, steps))


def test_a_trigger_enrolls_each_profile_once_per_journey() -> None:
    welcome = active("welcome", "signed_up", Step("a", SendStep(1, TEMPLATE)))
    other = active("other", "bought", Step("a", SendStep(1, TEMPLATE)))
    events = [
        TrackedEvent("signed_up", "u1", ""),
        TrackedEvent("signed_up", "u1", "x"),
        TrackedEvent("signed_up", "", "anon-7"),
        TrackedEvent("signed_up", "", ""),
        TrackedEvent("viewed", "u2", ""),
    ]
    planned = journeys.plan_enrollments(WS, events, [welcome, other])
    assert [(e.journey.journey_id, e.profile_key) for e in planned] == [
        ("welcome", "u1"),
        ("welcome", "anon:anon-7"),
    ]


def test_an_enrollment_announces_itself_and_sends_until_an_exit_step() -> None:
    welcome = active(
        "welcome",
        "signed_up",
        Step("first", SendStep(common_pb2.CHANNEL_EMAIL, TEMPLATE, transactional=True)),
        Step("second", SendStep(common_pb2.CHANNEL_EMAIL, TEMPLATE)),
        Step("stop"),
        Step("never", SendStep(common_pb2.CHANNEL_EMAIL, TEMPLATE)),
        version=2,
    )
    [enrollment] = journeys.plan_enrollments(WS, [TrackedEvent("signed_up", "u1", "")], [welcome])
    messages = journeys.enrollment_messages(WS, enrollment, NOW)
    assert [m.subject for m in messages] == [
        "engage.journeys.acme",
        "engage.sends.email",
        "engage.sends.email",
    ]
    enrolled = messages[0].payload
    assert isinstance(enrolled, bus_pb2.JourneyEvent)
    assert enrolled.kind == bus_pb2.JourneyEvent.KIND_ENROLLED
    first = messages[1].payload
    assert isinstance(first, bus_pb2.SendRequested)
    key = f"welcome:v2:{enrollment.enrollment_id}:first"
    assert first.id == messages[1].msg_id == key
    assert first.journey == "workspaces/acme/journeys/welcome"
    assert (first.journey_version, first.step_id, first.user_id) == (2, "first", "u1")
    assert first.transactional
    assert first.occurred_at.ToDatetime(tzinfo=UTC) == NOW
    assert messages[2].msg_id.endswith(":second")
