"""How an enrollment moves through its journey's graph: from a step, run each step in turn until
one holds it (a wait) or it ends. Pure: the definition, a position, the time and (for steps that
read it) the profile in; the steps run, the sends to make and where it stopped out.

A step that reads the profile (a time of day or a date in its zone) when the profile is not at
hand stops the run there, not entered yet: the caller fetches the profile and runs again from
that step."""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engage.dates import profile_zone
from engage.profiles import ProfileView
from engage.resources import read_name
from engage.rules.evaluate import Facts, evaluate
from services.scheduler import decisions, moments
from services.scheduler.decisions import QuietHours
from services.scheduler.graph import (
    PROFILE_STEPS,
    Action,
    Branch,
    Definition,
    Exit,
    Send,
    Split,
    Step,
    UpdateTrait,
    WaitFor,
    WaitUntilTime,
    WaitUntilTraitDate,
)

COMPLETED = "completed"
EXIT_STEP = "exit_step"


@dataclass(frozen=True)
class Waiting:
    # The wait step holding the enrollment.
    step_id: str
    # When the timer fires, and the step it resumes at ("" ends the enrollment).
    due_at: datetime
    resume_at: str
    # A wait for an event: the event that resumes it at the wait step's `next`.
    event: str = ""
    # Not a wait: the step needs the profile, to be fetched before it runs (at `resume_at`).
    needs_profile: bool = False
    # How many fetches found the profile not ready yet.
    attempts: int = 0


@dataclass(frozen=True)
class Trigger:
    """The event that enrolled the profile, as a branch's rule reads it."""

    event: str
    at: datetime
    properties: Mapping[str, Any]


@dataclass
class Progress:
    """What one advance did."""

    # Every step entered, in order (wait steps included).
    entered: list[str] = field(default_factory=list)
    sends: list[Step] = field(default_factory=list)
    trait_updates: list[Step] = field(default_factory=list)
    # Set when a wait holds the enrollment; else `ended` says why it left.
    waiting: Waiting | None = None
    ended: str = ""
    # A send step held by quiet hours (the waiting above ends with them).
    deferred: str = ""


def advance(
    definition: Definition,
    step_id: str,
    now: datetime,
    profile_key: str,
    profile: ProfileView | None = None,
    quiet_hours: QuietHours | None = None,
    trigger: Trigger | None = None,
) -> Progress:
    """Run from `step_id` ("" ends at once) until a wait holds the enrollment or it ends.
    With `quiet_hours`, a marketing send reads the profile's zone and, within them, holds the
    enrollment there until they end; a branch's rule reads the `trigger` too. Journeys are
    acyclic (graph validation), so this always stops."""
    progress = Progress()
    while step_id:
        step = definition.step(step_id)
        action = step.action
        quiet = quiet_hours if isinstance(action, Send) and not action.transactional else None
        if profile is None and (isinstance(action, PROFILE_STEPS) or quiet):
            progress.waiting = Waiting(step_id, now, step_id, needs_profile=True)
            return progress
        if quiet and profile is not None:
            until = decisions.quiet_until(quiet, profile_zone(profile.calendar_time_zone), now)
            if until is not None:
                progress.waiting = Waiting(step_id, until, step_id, needs_profile=True)
                progress.deferred = step_id
                return progress
        progress.entered.append(step_id)
        if isinstance(action, Exit):
            progress.ended = EXIT_STEP
            return progress
        if isinstance(action, Split):
            step_id = split_path(action, step_id, profile_key)
            continue
        if isinstance(action, Branch):
            assert profile is not None
            step_id = branch_path(action, profile, trigger, now)
            continue
        if isinstance(action, Send):
            progress.sends.append(step)
            step_id = step.next
            continue
        if isinstance(action, UpdateTrait):
            progress.trait_updates.append(step)
            step_id = step.next
            continue
        assert not isinstance(action, (Send, Exit, Split, Branch, UpdateTrait))
        waiting, step_id = _wait(step, action, now, profile)
        if waiting is not None:
            progress.waiting = waiting
            return progress
    progress.ended = COMPLETED
    return progress


def _wait(
    step: Step, action: Action, now: datetime, profile: ProfileView | None
) -> tuple[Waiting | None, str]:
    """How a wait step holds the enrollment; or, when its moment is already past (or, for a
    date trait, missing), no hold and the step to go on to at once."""
    if isinstance(action, WaitFor):
        resume_at = action.on_timeout if action.event else step.next
        return Waiting(step.id, now + action.duration, resume_at, action.event), ""
    assert profile is not None
    zone = profile_zone(profile.calendar_time_zone)
    if isinstance(action, WaitUntilTime):
        due = moments.next_time_of_day(now, zone, action.hours, action.minutes)
        return Waiting(step.id, due, step.next), ""
    assert isinstance(action, WaitUntilTraitDate)
    value = profile.traits.get(action.trait)
    due_or_none = moments.trait_moment(value, zone, action.months, action.days, action.at)
    if due_or_none is None:
        return None, action.on_missing
    if due_or_none <= now:
        return None, step.next
    return Waiting(step.id, due_or_none, step.next), ""


def resume_on_event(definition: Definition, waiting_step: str) -> str:
    """Where an enrollment waiting at `waiting_step` goes when its event arrives."""
    return definition.step(waiting_step).next


def branch_path(
    branch: Branch, profile: ProfileView, trigger: Trigger | None, now: datetime
) -> str:
    """The first path whose condition holds, else `otherwise`."""
    facts: Facts | None = None
    for path in branch.paths:
        if path.rule is None:
            holds = (path.segment in profile.segments) == path.member
        else:
            facts = facts or _facts(profile, trigger)
            holds = evaluate(path.rule, facts, now)
        if holds:
            return path.next
    return branch.otherwise


def _facts(profile: ProfileView, trigger: Trigger | None) -> Facts:
    """What a branch's rule reads: the profile as it is and the one event that enrolled it."""
    events = {trigger.event: [(trigger.at, trigger.properties)]} if trigger else {}
    segments = (read_name(name, "segments") for name in profile.segments)
    profile_name = read_name(profile.name, "profiles")
    return Facts(
        traits=profile.traits,
        events=events,
        memberships=frozenset(segment.id for segment in segments if segment),
        profile_id=profile_name.id if profile_name else "",
        zone=profile_zone(profile.calendar_time_zone),
    )


def split_path(split: Split, step_id: str, profile_key: str) -> str:
    """The path a profile takes at a split: by a hash of the profile and the step, so the same
    profile always takes the same path, and paths of different splits are independent."""
    digest = hashlib.sha256(f"{step_id}/{profile_key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for percent, next_id in split.paths:
        if bucket < percent:
            return next_id
        bucket -= percent
    raise AssertionError("split percentages add up to 100")
