"""Journeys: what a valid journey is and how an update changes its version. Pure: plain values
in, plain values out. The graph of steps is in `graph`."""

from collections.abc import Sequence
from dataclasses import dataclass

from engage import resources
from engage.errors import InvalidArgument
from engage.v1 import journey_pb2
from services.scheduler import graph
from services.scheduler.graph import Definition

DRAFT = journey_pb2.Journey.STATE_DRAFT
ACTIVE = journey_pb2.Journey.STATE_ACTIVE
PAUSED = journey_pb2.Journey.STATE_PAUSED
CREATABLE_STATES = frozenset({DRAFT, ACTIVE})
UPDATABLE_STATES = frozenset({DRAFT, ACTIVE, PAUSED, journey_pb2.Journey.STATE_ARCHIVED})
# What a journey does: a change to any of these saves a new version.
DEFINITION_PATHS = (
    "trigger",
    "steps",
    "goal",
    "exit_events",
    "reentry",
    "holdout_percent",
    "priority",
)
UPDATABLE_PATHS = ("display_name", "state", *DEFINITION_PATHS)
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class JourneySpec:
    display_name: str
    state: int
    definition: Definition


def parse_journey(
    journey: journey_pb2.Journey, workspace: str, field: str = "journey"
) -> JourneySpec:
    """Validate a journey to create; unset state means DRAFT."""
    state = journey.state or DRAFT
    return JourneySpec(
        display_name=parse_display_name(f"{field}.display_name", journey.display_name),
        state=parse_state(f"{field}.state", state, CREATABLE_STATES),
        definition=graph.parse_definition(journey, field, workspace),
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


def update_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """The fields an update mask names; an empty mask means every updatable field."""
    return resources.update_paths(paths, UPDATABLE_PATHS)


def apply_update(
    current: JourneySpec, patch: journey_pb2.Journey, paths: Sequence[str], workspace: str
) -> JourneySpec:
    """The journey after an update of `paths` from `patch` (validated)."""
    display_name, state = current.display_name, current.state
    if "display_name" in paths:
        display_name = parse_display_name("journey.display_name", patch.display_name)
    if "state" in paths:
        state = parse_state("journey.state", patch.state, UPDATABLE_STATES)
    definition = current.definition
    if any(path in paths for path in DEFINITION_PATHS):
        # The definition's fields are validated together (a step may name the goal's event):
        # the unchanged ones are taken from the current version.
        merged = graph.to_proto(current.definition)
        for path in DEFINITION_PATHS:
            if path in paths:
                merged.ClearField(path)
                if path == "exit_events":
                    merged.exit_events.extend(patch.exit_events)
                elif path == "steps":
                    merged.steps.extend(patch.steps)
                elif path in ("holdout_percent", "priority"):
                    setattr(merged, path, getattr(patch, path))
                elif patch.HasField(path):
                    getattr(merged, path).CopyFrom(getattr(patch, path))
        definition = graph.parse_definition(merged, "journey", workspace)
    return JourneySpec(display_name, state, definition)


def next_version(current_version: int, before: JourneySpec, after: JourneySpec) -> int:
    """A change of what a journey does saves a new version."""
    return current_version + 1 if before.definition != after.definition else current_version
