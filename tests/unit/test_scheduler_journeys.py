"""The journey rules, without any I/O: validation of the graph, versions, the engine that moves
an enrollment, and what a batch of events does to enrollments."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration

from engage.errors import InvalidArgument
from engage.profiles import ProfileView
from engage.v1 import bus_pb2, common_pb2, journey_pb2, segment_pb2
from engage_cli import rules_yaml
from services.scheduler import decisions as decisions_module
from services.scheduler import engine, enrollments, graph, journeys, moments, simulation
from services.scheduler.decisions import Cap, Decisions, Intended, Policy
from services.scheduler.enrollments import (
    ACTIVE,
    COMPLETED,
    CONVERTED,
    EXITED,
    ActiveJourney,
    BatchPlan,
    Enrollment,
    TrackedEvent,
)
from services.scheduler.graph import Split
from services.scheduler.outgoing import OutgoingMessage

WS = "acme"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TEMPLATE = f"workspaces/{WS}/templates/welcome"
DAY = timedelta(days=1)
Mode = journey_pb2.ReentryPolicy


def send(
    step_id: str, channel: int = common_pb2.CHANNEL_EMAIL, next: str = ""
) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(
        id=step_id,
        send=journey_pb2.SendStep(channel=channel, template=TEMPLATE),  # type: ignore[arg-type]
        next=next,
    )


def exit_step(step_id: str) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(id=step_id, exit=journey_pb2.ExitStep())


def wait(step_id: str, duration: timedelta, next: str = "") -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id, next=next)
    step.wait.duration.FromTimedelta(duration)
    return step


def wait_for(
    step_id: str, event: str, timeout: timedelta, on_timeout: str = "", next: str = ""
) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id, next=next)
    step.wait.event.event = event
    step.wait.event.timeout.FromTimedelta(timeout)
    step.wait.event.on_timeout = on_timeout
    return step


def split(step_id: str, *paths: tuple[int, str]) -> journey_pb2.JourneyStep:
    return journey_pb2.JourneyStep(
        id=step_id,
        split=journey_pb2.SplitStep(
            paths=[journey_pb2.SplitPath(percent=p, next=n) for p, n in paths]
        ),
    )


def journey(**overrides: object) -> journey_pb2.Journey:
    fields: dict[str, object] = {
        "display_name": "Welcome",
        "trigger": journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event="signed_up")),
        "steps": [send("welcome")],
    }
    fields.update(overrides)
    return journey_pb2.Journey(**fields)  # type: ignore[arg-type]


def invalid(made: journey_pb2.Journey) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        journeys.parse_journey(made, WS)
    return raised.value


def invalid_field(made: journey_pb2.Journey) -> str:
    return invalid(made).field


# --- validation ---------------------------------------------------------------------------------


def test_a_valid_journey_without_state_is_a_draft_and_steps_follow_the_list() -> None:
    spec = journeys.parse_journey(journey(steps=[send("a"), send("b")]), WS)
    assert spec.state == journeys.DRAFT
    assert [(s.id, s.next) for s in spec.definition.steps] == [("a", "b"), ("b", "")]
    assert spec.definition.reentry.mode == graph.ONCE


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


def test_an_invalid_graph_names_the_step_field_at_fault() -> None:
    assert invalid_field(journey(steps=[send("a", next="nowhere")])) == "journey.steps[0].next"
    assert (
        invalid_field(journey(steps=[wait("a", timedelta())])) == "journey.steps[0].wait.duration"
    )
    assert invalid_field(journey(steps=[wait("a", 800 * DAY)])) == "journey.steps[0].wait.duration"
    no_timeout = journey_pb2.JourneyStep(id="a")
    no_timeout.wait.event.event = "bought"
    assert invalid_field(journey(steps=[no_timeout])) == "journey.steps[0].wait.event.timeout"
    assert (
        invalid_field(journey(steps=[wait_for("a", "", DAY)]))
        == "journey.steps[0].wait.event.event"
    )
    assert (
        invalid_field(journey(steps=[wait_for("a", "bought", DAY, on_timeout="zz")]))
        == "journey.steps[0].wait.event.on_timeout"
    )
    assert invalid_field(journey(steps=[split("a", (60, ""), (30, ""))])) == (
        "journey.steps[0].split.paths"
    )
    assert invalid_field(journey(steps=[split("a")])) == "journey.steps[0].split.paths"
    assert invalid_field(journey(steps=[split("a", (0, ""), (100, ""))])) == (
        "journey.steps[0].split.paths[0].percent"
    )
    exit_with_next = exit_step("a")
    exit_with_next.next = "a"
    assert invalid_field(journey(steps=[exit_with_next])) == "journey.steps[0].next"
    assert invalid_field(journey(exit_events=["ok", " bought"])) == "journey.exit_events[1]"
    assert (
        invalid_field(journey(goal=journey_pb2.JourneyGoal(event="paid "))) == "journey.goal.event"
    )


def test_a_loop_is_refused_with_its_steps_named() -> None:
    looping = journey(steps=[send("a"), wait("b", DAY), send("c", next="b")])
    error = invalid(looping)
    assert error.field == "journey.steps"
    assert "b → c → b" in error.message


def test_reentry_needs_a_cooldown_only_after_cooldown() -> None:
    no_cooldown = journey(reentry=Mode(mode=Mode.MODE_AFTER_COOLDOWN))
    assert invalid_field(no_cooldown) == "journey.reentry.cooldown"
    stray = journey(reentry=Mode(mode=Mode.MODE_ONE_AT_A_TIME, cooldown=Duration(seconds=60)))
    assert invalid_field(stray) == "journey.reentry.cooldown"
    assert invalid_field(journey(reentry=Mode(mode=9))) == "journey.reentry.mode"  # type: ignore[arg-type]


def test_a_send_names_a_known_channel() -> None:
    every = [send(f"s{n}", channel) for n, channel in enumerate(graph.CHANNELS)]
    assert len(journeys.parse_journey(journey(steps=every), WS).definition.steps) == 5
    assert (
        invalid_field(journey(steps=[send("a"), send("b", 0)])) == "journey.steps[1].send.channel"
    )
    error = invalid(journey(steps=[send("a", 42)]))
    assert error.field == "journey.steps[0].send.channel"
    assert error.message.endswith("42 is not a Channel")


def test_a_definition_survives_its_storage_form() -> None:
    made = journey(
        steps=[
            send("a"),
            wait_for("cart", "bought", timedelta(hours=1), on_timeout="remind", next="done"),
            split("ab", (30, "remind"), (70, "")),
            send("remind"),
            exit_step("done"),
        ],
        goal=journey_pb2.JourneyGoal(event="paid"),
        exit_events=["unsubscribed"],
        reentry=Mode(mode=Mode.MODE_AFTER_COOLDOWN, cooldown=Duration(seconds=3600)),
    )
    definition = journeys.parse_journey(made, WS).definition
    assert graph.from_json(graph.to_json(definition), WS) == definition


def test_what_a_journey_does_is_versioned_and_a_rename_is_not() -> None:
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
    with_goal = journeys.apply_update(
        before, journey(goal=journey_pb2.JourneyGoal(event="paid")), ["goal"], WS
    )
    assert with_goal.definition.goal_event == "paid"
    assert with_goal.definition.steps == before.definition.steps
    assert journeys.next_version(4, before, with_goal) == 5
    same = journeys.apply_update(before, journey(), ["steps", "trigger", "exit_events"], WS)
    assert journeys.next_version(1, before, same) == 1


def test_an_unknown_update_mask_path_is_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        journeys.update_paths(["version"])
    assert raised.value.field == "update_mask"
    assert journeys.update_paths([]) == journeys.UPDATABLE_PATHS


# --- the engine -----------------------------------------------------------------------------------


def definition(*steps: journey_pb2.JourneyStep, **fields: object) -> graph.Definition:
    return journeys.parse_journey(journey(steps=list(steps), **fields), WS).definition


def test_the_engine_runs_until_a_wait_and_resumes_after_it() -> None:
    made = definition(send("a"), wait("pause", DAY), send("b"))
    first = engine.advance(made, "a", NOW, "u1")
    assert first.entered == ["a", "pause"]
    assert [s.id for s in first.sends] == ["a"]
    assert first.waiting == engine.Waiting("pause", NOW + DAY, "b")
    assert not first.ended
    second = engine.advance(made, first.waiting.resume_at, NOW + DAY, "u1")
    assert ([s.id for s in second.sends], second.ended) == (["b"], engine.COMPLETED)


def test_a_wait_for_an_event_times_out_to_its_own_path() -> None:
    made = definition(
        wait_for("cart", "bought", timedelta(hours=1), on_timeout="remind", next="done"),
        send("remind"),
        exit_step("done"),
    )
    held = engine.advance(made, "cart", NOW, "u1")
    assert held.waiting == engine.Waiting("cart", NOW + timedelta(hours=1), "remind", "bought")
    assert engine.resume_on_event(made, "cart") == "done"
    assert engine.advance(made, "done", NOW, "u1").ended == engine.EXIT_STEP


def test_a_split_is_stable_per_profile_and_near_its_percentages() -> None:
    action = Split(((30, "a"), (70, "b")))
    paths = [engine.split_path(action, "ab", f"user-{n}") for n in range(10_000)]
    assert paths == [engine.split_path(action, "ab", f"user-{n}") for n in range(10_000)]
    assert 2_800 < paths.count("a") < 3_200
    other = [engine.split_path(action, "other", f"user-{n}") for n in range(10_000)]
    assert other != paths


def on_sale_trigger(*conditions: segment_pb2.PropertyCondition) -> journey_pb2.JourneyTrigger:
    return journey_pb2.JourneyTrigger(
        event=journey_pb2.EventTrigger(event="flight_searched", where=conditions)
    )


def condition(
    path: str, operator: "segment_pb2.Operator", value: Any = None
) -> segment_pb2.PropertyCondition:
    made = segment_pb2.PropertyCondition(property=path, operator=operator)
    if value is not None:
        made.value.CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    return made


def test_a_trigger_where_names_its_faulty_condition() -> None:
    no_operator = condition("on_sale", segment_pb2.OPERATOR_UNSPECIFIED, True)
    assert invalid_field(journey(trigger=on_sale_trigger(no_operator))) == (
        "journey.trigger.event.where[0].operator"
    )
    bad_path = condition("route..from", segment_pb2.OPERATOR_EQUALS, "NRT")
    fine = condition("on_sale", segment_pb2.OPERATOR_EQUALS, True)
    assert invalid_field(journey(trigger=on_sale_trigger(fine, bad_path))) == (
        "journey.trigger.event.where[1].property"
    )
    no_bounds = condition("price", segment_pb2.OPERATOR_BETWEEN, [1])
    assert invalid_field(journey(trigger=on_sale_trigger(no_bounds))).startswith(
        "journey.trigger.event.where[0]"
    )


def test_a_trigger_where_survives_storage_and_reads_back_as_written() -> None:
    conditions = (
        condition("on_sale", segment_pb2.OPERATOR_EQUALS, True),
        condition("route", segment_pb2.OPERATOR_IN, ["NRT-HNL", "HND-HNL"]),
    )
    made = journey(trigger=on_sale_trigger(*conditions))
    definition = journeys.parse_journey(made, WS).definition
    assert graph.from_json(graph.to_json(definition), WS) == definition
    assert list(graph.to_proto(definition).trigger.event.where) == list(conditions)


def rule_branch(rule_yaml: str, next_id: str, otherwise: str) -> journey_pb2.JourneyStep:
    path = journey_pb2.BranchPath(rule=rules_yaml.from_yaml(rule_yaml), next=next_id)
    return journey_pb2.JourneyStep(
        id="by-rule", branch=journey_pb2.BranchStep(paths=[path], otherwise=otherwise)
    )


def test_a_branch_path_tests_a_segment_or_a_rule_and_names_its_faulty_field() -> None:
    both = rule_branch("{trait: plan, equals: gold}", "a", "a")
    both.branch.paths[0].segment = f"workspaces/{WS}/segments/gold"
    assert invalid_field(journey(steps=[both, send("a")])) == (
        "journey.steps[0].branch.paths[0].segment"
    )
    bad_operand = rule_branch("{trait: visits, greater_than: 3}", "a", "a")
    bad_operand.branch.paths[0].rule.trait.value.string_value = "many"
    assert invalid_field(journey(steps=[bad_operand, send("a")])).startswith(
        "journey.steps[0].branch.paths[0].rule.trait"
    )


def test_a_rule_branch_survives_storage() -> None:
    rule = """
    all:
      - {trait: plan, equals: gold}
      - {event: visited, where: [{property: page, equals: pricing}]}
    """
    made = journey(steps=[rule_branch(rule, "offer", ""), send("offer")])
    definition = journeys.parse_journey(made, WS).definition
    assert graph.from_json(graph.to_json(definition), WS) == definition
    assert graph.to_proto(definition).steps[0] == made.steps[0]


def update_trait(step_id: str, trait: str, value: Any) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(
        id=step_id, update_trait=journey_pb2.UpdateTraitStep(trait=trait)
    )
    if value is not None:
        step.update_trait.value.CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    return step


def test_an_update_trait_step_names_its_faulty_field() -> None:
    field = "journey.steps[0].update_trait"
    assert invalid_field(journey(steps=[update_trait("a", " plan", "gold")])) == f"{field}.trait"
    assert invalid_field(journey(steps=[update_trait("a", "x" * 129, 1)])) == f"{field}.trait"
    assert invalid_field(journey(steps=[update_trait("a", "plan", None)])) == f"{field}.value"
    assert invalid_field(journey(steps=[update_trait("a", "notes", "x" * 5000)])) == (
        f"{field}.value"
    )
    assert invalid_field(journey(steps=[update_trait("a", "notes", "a\u0000b")])) == (
        f"{field}.value"
    )


def test_an_update_trait_step_survives_storage() -> None:
    value = {"stage": "reminded", "count": 2, "tags": ["renewal", None]}
    made = journey(steps=[update_trait("mark", "renewal", value), send("welcome")])
    definition = journeys.parse_journey(made, WS).definition
    assert graph.from_json(graph.to_json(definition), WS) == definition
    assert graph.to_proto(definition).steps[0] == journey_pb2.JourneyStep(
        id="mark", update_trait=made.steps[0].update_trait, next="welcome"
    )


# --- what events do to enrollments ----------------------------------------------------------------


def active_journey(
    made: graph.Definition, journey_id: str = "welcome", version: int = 1
) -> ActiveJourney:
    return ActiveJourney(journey_id, f"uid-{journey_id}", version, made)


def plan(
    *journeys_: ActiveJourney,
    active: list[Enrollment] | None = None,
    last_entered: dict[tuple[str, str], datetime] | None = None,
    now: datetime = NOW,
) -> BatchPlan:
    return BatchPlan(
        WS, list(journeys_), active or [], last_entered or {}, set(), now, Decisions({})
    )


def reason_of(message: OutgoingMessage) -> str:
    assert isinstance(message.payload, bus_pb2.JourneyEvent)
    return message.payload.reason


def tracked(event: str, user_id: str, n: int = 0) -> TrackedEvent:
    return TrackedEvent(f"m-{event}-{user_id}-{n}", event, user_id, "")


def test_a_trigger_enrolls_each_profile_once_and_announces_every_step() -> None:
    welcome = active_journey(definition(send("first"), send("second")))
    outcome = enrollments.handle_events(
        plan(welcome),
        [
            tracked("signed_up", "u1"),
            tracked("signed_up", "u1", 1),
            TrackedEvent("m", "signed_up", "", ""),
        ],
    )
    [enrollment] = outcome.enrollments
    assert (enrollment.profile_key, enrollment.status) == ("u1", COMPLETED)
    kinds = [
        (m.payload.kind, m.payload.step_id)
        if isinstance(m.payload, bus_pb2.JourneyEvent)
        else m.payload.id
        for m in outcome.messages
    ]
    key = f"welcome:v1:{enrollment.enrollment_id}"
    assert kinds == [
        (bus_pb2.JourneyEvent.KIND_ENROLLED, ""),
        (bus_pb2.JourneyEvent.KIND_STEP, "first"),
        f"{key}:first",
        (bus_pb2.JourneyEvent.KIND_STEP, "second"),
        f"{key}:second",
        (bus_pb2.JourneyEvent.KIND_EXITED, ""),
    ]
    assert reason_of(outcome.messages[-1]) == "completed"


def test_only_an_event_whose_properties_pass_the_where_enrolls() -> None:
    on_sale = condition("on_sale", segment_pb2.OPERATOR_EQUALS, True)
    short_haul = condition("flight.hours", segment_pb2.OPERATOR_LESS_THAN, 4)
    made = definition(send("route-reminder"), trigger=on_sale_trigger(on_sale, short_haul))
    sale = active_journey(made)
    searches = {
        "u1": '{"on_sale": true, "flight": {"hours": 3}}',
        "u2": '{"on_sale": "true", "flight": {"hours": "2.5"}}',
        "u3": '{"on_sale": false, "flight": {"hours": 3}}',
        "u4": '{"on_sale": true, "flight": {"hours": 9}}',
        "u5": '{"flight": {"hours": 3}}',
    }
    events = [
        TrackedEvent(f"m-{user}", "flight_searched", user, "", properties)
        for user, properties in searches.items()
    ]

    outcome = enrollments.handle_events(plan(sale), events)

    assert sorted(e.profile_key for e in outcome.enrollments) == ["u1", "u2"]


def test_a_rule_branch_reads_the_profile_as_it_is_and_the_event_that_enrolled_it() -> None:
    rule = """
    all:
      - {trait: plan, equals: gold}
      - {in_segment: buyers}
      - {event: visited, where: [{property: page, equals: pricing}]}
    """
    made = definition(
        rule_branch(rule, "gold-pricing", "standard"),
        send("gold-pricing", next="done"),
        send("standard"),
        exit_step("done"),
    )
    buyers = frozenset({f"workspaces/{WS}/segments/buyers"})

    def sent(plan: str, segments: frozenset[str], trigger: engine.Trigger | None) -> list[str]:
        profile = ProfileView(f"workspaces/{WS}/profiles/p1", "u1", {"plan": plan}, "UTC", segments)
        progress = engine.advance(made, "by-rule", NOW, "u1", profile, None, trigger)
        return [step.id for step in progress.sends]

    pricing = engine.Trigger("visited", NOW, {"page": "pricing"})
    assert sent("gold", buyers, pricing) == ["gold-pricing"]
    assert sent("free", buyers, pricing) == ["standard"]
    assert sent("gold", frozenset(), pricing) == ["standard"]
    home = engine.Trigger("visited", NOW, {"page": "home"})
    assert sent("gold", buyers, home) == ["standard"]
    # Enrolled by a segment change: no event to read.
    assert sent("gold", buyers, None) == ["standard"]


def test_an_update_trait_step_makes_one_identify_of_the_profile_per_enrollment() -> None:
    made = definition(update_trait("mark", "welcomed", True), send("welcome"))
    outcome = enrollments.handle_events(
        plan(active_journey(made)), [tracked("signed_up", "u1"), tracked("signed_up", "u2")]
    )

    updates = outcome.trait_updates
    assert [(u.workspace, u.identify.user_id) for u in updates] == [(WS, "u1"), (WS, "u2")]
    identify = updates[0].identify
    assert identify.type == common_pb2.EVENT_TYPE_IDENTIFY
    assert json_format.MessageToDict(identify.traits) == {"welcomed": True}
    enrollment = outcome.enrollments[0]
    assert identify.message_id == f"welcome:v1:{enrollment.enrollment_id}:mark:update_trait"
    sent = [m.payload for m in outcome.messages if isinstance(m.payload, bus_pb2.SendRequested)]
    assert [send.step_id for send in sent] == ["welcome", "welcome"]


def test_the_goal_converts_with_the_last_send_and_stops_the_rest() -> None:
    made = definition(
        send("a"), wait("pause", DAY), send("b"), goal=journey_pb2.JourneyGoal(event="paid")
    )
    entered = enrollments.handle_events(plan(active_journey(made)), [tracked("signed_up", "u1")])
    [enrollment] = entered.enrollments
    assert enrollment.timer is not None and enrollment.status == ACTIVE
    later = NOW + timedelta(hours=5)
    paid = enrollments.handle_events(plan(active=[enrollment], now=later), [tracked("paid", "u1")])
    assert enrollment.status == CONVERTED and enrollment.timer is None
    [converted] = [m.payload for m in paid.messages]
    assert isinstance(converted, bus_pb2.JourneyEvent)
    assert converted.kind == bus_pb2.JourneyEvent.KIND_CONVERTED
    assert converted.attributed_send == f"welcome:v1:{enrollment.enrollment_id}:a"
    assert converted.time_to_convert.ToTimedelta() == timedelta(hours=5)


def test_an_event_before_the_trigger_does_not_end_what_the_trigger_starts() -> None:
    made = definition(wait("pause", DAY), send("b"), exit_events=["cancelled"])
    outcome = enrollments.handle_events(
        plan(active_journey(made)), [tracked("cancelled", "u1"), tracked("signed_up", "u1")]
    )
    assert [e.status for e in outcome.enrollments] == [ACTIVE]
    after = enrollments.handle_events(
        plan(active_journey(made)), [tracked("signed_up", "u2"), tracked("cancelled", "u2")]
    )
    [left] = after.enrollments
    assert left.status == EXITED
    assert reason_of(after.messages[-1]) == "exit_event:cancelled"


def test_the_awaited_event_resumes_on_the_wait_steps_next() -> None:
    made = definition(
        wait_for("cart", "bought", timedelta(hours=1), on_timeout="remind", next="thanks"),
        send("remind", next=""),
        send("thanks"),
    )
    outcome = enrollments.handle_events(
        plan(active_journey(made)), [tracked("signed_up", "u1"), tracked("bought", "u1")]
    )
    sent = [
        m.payload.step_id for m in outcome.messages if isinstance(m.payload, bus_pb2.SendRequested)
    ]
    assert sent == ["thanks"]


def test_reentry_follows_the_policy() -> None:
    made = definition(wait("pause", DAY), send("b"))
    once = active_journey(made)
    seen = {("welcome", "u1"): NOW - 30 * DAY}
    assert not enrollments.handle_events(
        plan(once, last_entered=seen), [tracked("signed_up", "u1")]
    ).enrollments

    one_at_a_time = active_journey(
        definition(wait("pause", DAY), send("b"), reentry=Mode(mode=Mode.MODE_ONE_AT_A_TIME))
    )
    first = enrollments.handle_events(plan(one_at_a_time), [tracked("signed_up", "u1")])
    [running] = first.enrollments
    again = enrollments.handle_events(
        plan(one_at_a_time, active=[running], last_entered=seen), [tracked("signed_up", "u1", 2)]
    )
    assert not again.enrollments
    after_it = enrollments.handle_events(
        plan(one_at_a_time, last_entered=seen), [tracked("signed_up", "u1", 3)]
    )
    [second] = after_it.enrollments
    assert second.enrollment_id != running.enrollment_id

    cooldown = Mode(mode=Mode.MODE_AFTER_COOLDOWN, cooldown=Duration(seconds=7 * 86400))
    cooling = active_journey(definition(send("a"), reentry=cooldown))
    recent = {("welcome", "u1"): NOW - 6 * DAY}
    assert not enrollments.handle_events(
        plan(cooling, last_entered=recent), [tracked("signed_up", "u1")]
    ).enrollments
    old = {("welcome", "u1"): NOW - 8 * DAY}
    assert enrollments.handle_events(
        plan(cooling, last_entered=old), [tracked("signed_up", "u1")]
    ).enrollments


def test_a_replayed_trigger_enters_nobody_again() -> None:
    made = active_journey(definition(send("a"), reentry=Mode(mode=Mode.MODE_ONE_AT_A_TIME)))
    [first] = enrollments.handle_events(plan(made), [tracked("signed_up", "u1")]).enrollments
    replay = plan(made, last_entered={("welcome", "u1"): NOW})
    replay.stored_ids = {first.enrollment_id}
    assert not enrollments.handle_events(replay, [tracked("signed_up", "u1")]).enrollments


def test_idempotency_keys_are_deterministic() -> None:
    welcome = active_journey(definition(send("a")))
    first = enrollments.enrollment_id(welcome, "u1", "m1", WS)
    assert first == enrollments.enrollment_id(welcome, "u1", "m2", WS)
    assert len(first) == 24
    assert first != enrollments.enrollment_id(welcome, "u2", "m1", WS)
    again = active_journey(definition(send("a"), reentry=Mode(mode=Mode.MODE_ONE_AT_A_TIME)))
    assert enrollments.enrollment_id(again, "u1", "m1", WS) != enrollments.enrollment_id(
        again, "u1", "m2", WS
    )
    assert enrollments.send_key("welcome", 3, first, "email-1") == f"welcome:v3:{first}:email-1"


# --- the customer's calendar ----------------------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def test_the_next_time_of_day_is_read_in_the_profiles_zone() -> None:
    # 09:00 UTC is 18:00 in Tokyo: 10:00 there is tomorrow, 20:00 today.
    assert moments.next_time_of_day(NOW, TOKYO, 10, 0) == datetime(2025, 3, 2, 1, 0, tzinfo=UTC)
    assert moments.next_time_of_day(NOW, TOKYO, 20, 0) == datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    # New York springs forward on 2025-03-09: 09:00 local is 14:00 UTC before, 13:00 after.
    saturday = datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
    assert moments.next_time_of_day(saturday, NEW_YORK, 9, 0) == datetime(
        2025, 3, 9, 13, 0, tzinfo=UTC
    )


def test_a_trait_date_moves_by_calendar_months_and_days() -> None:
    seven_days_before = moments.trait_moment("2025-03-19", TOKYO, 0, -7, (10, 0))
    assert seven_days_before == datetime(2025, 3, 12, 1, 0, tzinfo=UTC)
    # Month 11 of a plan started on 31 March: the last day of February, at its own time.
    month_eleven = moments.trait_moment("2024-03-31T09:30:00+09:00", TOKYO, 11, 0, None)
    assert month_eleven == datetime(2025, 2, 28, 0, 30, tzinfo=UTC)
    assert moments.trait_moment("soon", TOKYO, 0, 1, None) is None
    assert moments.trait_moment(None, TOKYO, 0, 1, None) is None


def trait_wait(
    step_id: str, trait: str, days: int, on_missing: str = ""
) -> journey_pb2.JourneyStep:
    step = journey_pb2.JourneyStep(id=step_id)
    step.wait.trait_date.trait = trait
    step.wait.trait_date.days = days
    step.wait.trait_date.at.SetInParent()
    step.wait.trait_date.at.hours = 10
    step.wait.trait_date.on_missing = on_missing
    return step


def profile(zone: str = "Asia/Tokyo", **traits: object) -> ProfileView:
    return ProfileView("workspaces/acme/profiles/p1", "u1", dict(traits), zone)


def test_a_step_that_reads_the_profile_waits_for_it_and_then_for_its_date() -> None:
    made = definition(
        trait_wait("before-cancel", "auto_cancel_at", -7, on_missing="no-date"),
        send("reminder", next="done"),
        send("no-date"),
        exit_step("done"),
    )
    blind = engine.advance(made, "before-cancel", NOW, "u1")
    assert blind.waiting == engine.Waiting(
        "before-cancel", NOW, "before-cancel", needs_profile=True
    )
    assert blind.entered == []

    held = engine.advance(made, "before-cancel", NOW, "u1", profile(auto_cancel_at="2025-03-19"))
    assert held.waiting == engine.Waiting(
        "before-cancel", datetime(2025, 3, 12, 1, 0, tzinfo=UTC), "reminder"
    )
    past = engine.advance(made, "before-cancel", NOW, "u1", profile(auto_cancel_at="2025-03-05"))
    assert [s.id for s in past.sends] == ["reminder"]
    missing = engine.advance(made, "before-cancel", NOW, "u1", profile())
    assert [s.id for s in missing.sends] == ["no-date"]


def test_a_time_of_day_wait_survives_its_storage_form() -> None:
    at_midnight = journey_pb2.JourneyStep(id="midnight")
    at_midnight.wait.time_of_day.SetInParent()
    made = definition(at_midnight, trait_wait("t", "renew_at", 0), send("a"))
    assert graph.from_json(graph.to_json(made), WS) == made
    assert isinstance(made.steps[0].action, graph.WaitUntilTime)


# --- send decisions -------------------------------------------------------------------------------

EMAIL = common_pb2.CHANNEL_EMAIL


def intended(profile: str, transactional: bool = False, holdout: float = 0.0) -> Intended:
    return Intended(WS, profile, EMAIL, transactional, "journeys/welcome", holdout)


def test_the_global_control_group_and_a_holdout_are_stable_shares_of_profiles() -> None:
    decisions = Decisions({WS: Policy(global_control_percent=10)})
    reasons = [decisions.decide(intended(f"u{n}"), NOW, f"k{n}")[0] for n in range(5_000)]
    assert 400 < reasons.count(decisions_module.GLOBAL_CONTROL) < 600
    again = [decisions.decide(intended(f"u{n}"), NOW, f"j{n}")[0] for n in range(5_000)]
    assert again == reasons
    assert decisions.decide(intended("u1", transactional=True), NOW, "t")[0] == ""

    held = Decisions({})
    holdout = [held.decide(intended(f"u{n}", holdout=50), NOW, f"k{n}")[0] for n in range(2_000)]
    assert 900 < holdout.count(decisions_module.HOLDOUT) < 1_100


def test_a_frequency_cap_counts_marketing_sends_within_its_window_only() -> None:
    cap = Cap(EMAIL, max_sends=2, window=timedelta(days=7))
    decisions = Decisions({WS: Policy(caps=(cap,))})
    assert decisions.decide(intended("u1"), NOW - 8 * DAY, "old")[1] is not None
    assert decisions.decide(intended("u1"), NOW - DAY, "a")[0] == ""
    assert decisions.decide(intended("u1", transactional=True), NOW, "receipt") == ("", None)
    assert decisions.decide(intended("u1"), NOW, "b")[0] == ""
    assert decisions.decide(intended("u1"), NOW, "c") == (decisions_module.FREQUENCY_CAP, None)
    assert decisions.decide(intended("u2"), NOW, "d")[0] == ""
    sms = Intended(WS, "u1", common_pb2.CHANNEL_SMS, False, "journeys/welcome", 0)
    assert decisions.decide(sms, NOW, "e")[0] == ""


def test_a_skipped_send_is_announced_with_its_reason_and_the_journey_goes_on() -> None:
    made = definition(send("a"), send("b"), holdout_percent=99.99)
    outcome = enrollments.handle_events(plan(active_journey(made)), [tracked("signed_up", "u1")])
    skipped = [
        (m.payload.step_id, m.payload.reason)
        for m in outcome.messages
        if isinstance(m.payload, bus_pb2.JourneyEvent)
        and m.payload.kind == bus_pb2.JourneyEvent.KIND_SEND_SKIPPED
    ]
    assert skipped == [("a", "holdout"), ("b", "holdout")]
    assert not any(isinstance(m.payload, bus_pb2.SendRequested) for m in outcome.messages)
    assert reason_of(outcome.messages[-1]) == "completed"


def test_quiet_hours_hold_a_marketing_send_until_they_end_on_the_profiles_calendar() -> None:
    night = ((21, 0), (9, 0))
    quiet_until = decisions_module.quiet_until
    # 09:00 UTC is 18:00 in Tokyo: not quiet; 13:00 UTC is 22:00 there: quiet until 09:00.
    assert quiet_until(night, TOKYO, NOW) is None
    late = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    tokyo_nine = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
    assert quiet_until(night, TOKYO, late) == tokyo_nine
    lunch = ((12, 0), (13, 30))
    at_lunch = datetime(2025, 3, 1, 12, 59, tzinfo=UTC)
    assert quiet_until(lunch, UTC, at_lunch) == datetime(2025, 3, 1, 13, 30, tzinfo=UTC)

    made = definition(send("promo"), send("receipt"))
    blind = engine.advance(made, "promo", late, "u1", None, night)
    assert blind.waiting is not None and blind.waiting.needs_profile and not blind.deferred
    held = engine.advance(made, "promo", late, "u1", profile(), night)
    assert held.waiting == engine.Waiting("promo", tokyo_nine, "promo", needs_profile=True)
    assert (held.deferred, held.sends) == ("promo", [])

    receipt = send("receipt")
    receipt.send.transactional = True
    transactional = definition(receipt)
    sent = engine.advance(transactional, "receipt", late, "u1", None, night).sends
    assert [s.id for s in sent] == ["receipt"]


def test_a_simulation_assumes_awaited_events_never_come_and_stops_at_the_horizon() -> None:
    made = definition(
        wait_for("cart", "bought", timedelta(hours=1), on_timeout="remind", next="done"),
        send("remind"),
        wait("a-week", 7 * DAY),
        send("last"),
        exit_step("done"),
    )
    journey = active_journey(made)
    followed = simulation.simulate(journey, WS, profile(), Decisions({}), NOW, 3 * DAY)
    kinds = [(step.step_id, step.kind) for step in followed.steps]
    assert kinds == [
        ("cart", simulation.ENTERED),
        ("cart", simulation.ASSUMED_TIMEOUT),
        ("remind", simulation.ENTERED),
        ("remind", simulation.SENT),
        ("a-week", simulation.ENTERED),
    ]
    assert followed.steps[3].time == NOW + timedelta(hours=1)
    assert followed.outcome == simulation.WAITING
    whole = simulation.simulate(journey, WS, profile(), Decisions({}), NOW, 30 * DAY)
    assert (whole.steps[-1].step_id, whole.outcome) == ("done", engine.EXIT_STEP)


def test_the_higher_priority_journey_wins_a_capped_moment() -> None:
    cap = Cap(EMAIL, max_sends=1, window=timedelta(days=1))
    promo = active_journey(definition(send("promo")), "a-promo")
    service = active_journey(definition(send("service"), priority=50), "z-service")

    for journeys_ in ([promo, service], [service, promo]):
        decided = BatchPlan(WS, journeys_, [], {}, set(), NOW, Decisions({WS: Policy(caps=(cap,))}))
        outcome = enrollments.handle_events(decided, [tracked("signed_up", "u1")])
        sent = [m.payload for m in outcome.messages if isinstance(m.payload, bus_pb2.SendRequested)]
        assert [send.step_id for send in sent] == ["service"]
        skipped = [
            m.payload.step_id
            for m in outcome.messages
            if isinstance(m.payload, bus_pb2.JourneyEvent)
            and m.payload.reason == decisions_module.FREQUENCY_CAP
        ]
        assert skipped == ["promo"]


def test_a_priority_is_from_0_to_100() -> None:
    assert invalid_field(journey(priority=101)) == "journey.priority"
    assert invalid_field(journey(priority=-1)) == "journey.priority"
    made = journey(priority=100)
    definition_ = journeys.parse_journey(made, WS).definition
    assert graph.to_proto(definition_).priority == 100
