"""Journey and campaign files as `engage apply` reads them: the shorthands a marketer writes
become the contract's fields, and every mistake is named by file, line and the key as
written, whether the CLI finds it or the service names it by a field path."""

from pathlib import Path

import pytest
from google.protobuf import json_format

from engage.v1 import common_pb2, journey_pb2, segment_pb2
from engage_cli.apply import read_files
from engage_cli.definitions import refused
from engage_cli.documents import FileError

JOURNEY = """\
journey_id: cart
display_name: Cart abandonment
state: active
trigger: {event: added_to_cart}
goal: purchase
reentry: {mode: after_cooldown, cooldown: 7d}
steps:
  - id: no-purchase
    wait: {event: {event: purchase, timeout: 1h, on_timeout: remind}}
    next: done
  - id: remind
    send: {channel: email, template: cart-reminder}
  - id: done
    exit: {}
---
campaign_id: spring
segment: buyers
channel: email
variants:
  - {id: a, template: spring-a, weight: 50}
  - {id: b, template: spring-b, weight: 50}
winner_rule: {metric: conversion_rate, test_percent: 20, after: 4h}
goal: {event: purchase, within: 2d}
recurrence: ""
"""


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "definitions.yaml"
    path.write_text(text)
    return path


def test_shorthands_become_the_contracts_fields(tmp_path: Path) -> None:
    segments, (journey, campaign) = read_files([written(tmp_path, JOURNEY)], "acme")
    assert segments == []
    made = journey.message
    assert isinstance(made, journey_pb2.Journey)
    assert made.name == "workspaces/acme/journeys/cart"
    assert (made.state, made.trigger.event.event, made.goal.event) == (
        journey_pb2.Journey.STATE_ACTIVE,
        "added_to_cart",
        "purchase",
    )
    assert made.reentry.cooldown.ToSeconds() == 7 * 86400
    assert made.steps[0].wait.event.timeout.ToSeconds() == 3600
    assert made.steps[1].send.channel == common_pb2.CHANNEL_EMAIL
    assert made.steps[1].send.template == "workspaces/acme/templates/cart-reminder"
    assert campaign.message.segment == "workspaces/acme/segments/buyers"  # type: ignore[attr-defined]
    assert campaign.message.winner_rule.after.ToSeconds() == 4 * 3600  # type: ignore[attr-defined]
    assert campaign.message.goal.within.ToSeconds() == 2 * 86400  # type: ignore[attr-defined]


def test_a_trigger_where_is_written_as_segment_rules_write_it(tmp_path: Path) -> None:
    text = JOURNEY.replace(
        "trigger: {event: added_to_cart}",
        "trigger: {event: added_to_cart, where: [{property: price, greater_than: 100}]}",
    )
    _, (journey, _) = read_files([written(tmp_path, text)], "acme")
    assert isinstance(journey.message, journey_pb2.Journey)
    [condition] = journey.message.trigger.event.where
    assert (condition.property, condition.operator, condition.value.number_value) == (
        "price",
        segment_pb2.OPERATOR_GREATER_THAN,
        100,
    )


BRANCHING = """\
journey_id: pricing
trigger: {event: visited}
steps:
  - id: by-plan
    branch:
      paths:
        - rule:
            all:
              - {trait: plan, equals: gold}
              - {event: visited, where: [{property: page, equals: pricing}]}
          next: gold-offer
      otherwise: standard-offer
  - id: gold-offer
    update_trait: {trait: offer, value: {plan: gold, months: 3}}
  - id: gold-send
    send: {channel: email, template: gold}
  - id: standard-offer
    send: {channel: email, template: standard}
"""


def test_a_branch_rule_is_written_as_segment_rules_write_it(tmp_path: Path) -> None:
    _, (journey,) = read_files([written(tmp_path, BRANCHING)], "acme")
    assert isinstance(journey.message, journey_pb2.Journey)
    [path] = journey.message.steps[0].branch.paths
    plan, visited = path.rule.all.rules
    assert (plan.trait.trait, plan.trait.value.string_value) == ("plan", "gold")
    assert visited.event.where[0].value.string_value == "pricing"
    assert path.next == "gold-offer"
    update = journey.message.steps[1].update_trait
    assert (update.trait, json_format.MessageToDict(update.value)) == (
        "offer",
        {"plan": "gold", "months": 3},
    )

    broken = BRANCHING.replace("{trait: plan, equals: gold}", "{trait: plan, equal: gold}")
    with pytest.raises(FileError) as raised:
        read_files([written(tmp_path, broken)], "acme")
    assert ":9: steps[0].branch.paths[0].rule.all[0].equal: is not a field here" in str(
        raised.value
    )


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        ("cooldown: 7d", ("cooldown: 7 days", ":6: reentry.cooldown: must be a duration")),
        ("display_name: Cart abandonment", ("colour: red", ":2: colour:")),
        ("journey_id: cart", ("journey_id: Cart!", ":1: journey_id: must be")),
        (
            "trigger: {event: added_to_cart}",
            (
                "trigger: {event: added_to_cart, where: [{property: price, above: 100}]}",
                ":4: trigger.where[0].above: is not a field here",
            ),
        ),
    ],
)
def test_a_mistake_in_a_file_is_named_by_line_and_key(
    tmp_path: Path, broken: str, where: tuple[str, str]
) -> None:
    replacement, expected = where
    path = written(tmp_path, JOURNEY.replace(broken, replacement))
    with pytest.raises(FileError) as raised:
        read_files([path], "acme")
    assert str(raised.value).startswith(f"{path}{expected}")


def test_a_field_path_from_the_service_points_at_the_written_key(tmp_path: Path) -> None:
    path = written(tmp_path, JOURNEY)
    _, (journey, _) = read_files([path], "acme")
    error = refused(journey, "journey.steps[0].wait.event.on_timeout", "no step has the id")
    assert str(error) == f"{path}:9: steps[0].wait.event.on_timeout: no step has the id"
    # `goal: purchase` writes no `event` key: the nearest written key is named.
    error = refused(journey, "journey.goal.event", "must not end with spaces")
    assert str(error) == f"{path}:5: goal: must not end with spaces"
