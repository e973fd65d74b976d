"""How an enrollment moves through its journey's graph: from a step, run each step in turn until
one holds it (a wait) or it ends. Pure: the definition, a position and the time in; the steps
run, the sends to make and where it stopped out."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from services.scheduler.graph import Definition, Exit, Send, Split, Step, WaitFor

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


@dataclass
class Progress:
    """What one advance did."""

    # Every step entered, in order (wait steps included).
    entered: list[str] = field(default_factory=list)
    sends: list[Step] = field(default_factory=list)
    # Set when a wait holds the enrollment; else `ended` says why it left.
    waiting: Waiting | None = None
    ended: str = ""


def advance(definition: Definition, step_id: str, now: datetime, profile_key: str) -> Progress:
    """Run from `step_id` ("" ends at once) until a wait holds the enrollment or it ends.
    Journeys are acyclic (graph validation), so this always stops."""
    progress = Progress()
    while step_id:
        step = definition.step(step_id)
        progress.entered.append(step_id)
        action = step.action
        if isinstance(action, Exit):
            progress.ended = EXIT_STEP
            return progress
        if isinstance(action, WaitFor):
            resume_at = action.on_timeout if action.event else step.next
            progress.waiting = Waiting(step_id, now + action.duration, resume_at, action.event)
            return progress
        if isinstance(action, Split):
            step_id = split_path(action, step_id, profile_key)
            continue
        if isinstance(action, Send):
            progress.sends.append(step)
        step_id = step.next
    progress.ended = COMPLETED
    return progress


def resume_on_event(definition: Definition, waiting_step: str) -> str:
    """Where an enrollment waiting at `waiting_step` goes when its event arrives."""
    return definition.step(waiting_step).next


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
