"""Real-time segment membership: after a batch of events changes some profiles, re-evaluate, in
Python and in the batch's own transaction, only the segments that read what changed, for those
profiles only, and record the differences (with their MembershipChanged in the outbox).

What the evaluator needs is loaded for all the batch's profiles at once: one query for the
profiles, one for their memberships, one for the events the candidate segments count (only as
far back as the rules look). Segments are visited in reference order, so a profile entering
segment A re-evaluates, in the same pass, every segment with `in_segment: A`.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.v1 import common_pb2
from services.segments.batch import Compiled, SegmentGraph, compiled
from services.segments.evaluate import Facts, evaluate
from services.segments.identity import ANONYMOUS_ID, USER_ID, IdentityResolver
from services.segments.models import CHUNK, EVENTS, PROFILES, Segment
from services.segments.rules import EventCondition, conditions
from services.segments.segment_store import ENTERED, EXITED, SegmentStore, Transition

# A segment and its compiled rule, in the order a pass visits them.
Visit = tuple[Segment, Compiled]


@dataclass
class Touched:
    """What one applied batch changed, per profile."""

    trait_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    event_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Profiles new, or grown by a merge: every segment may have changed for them.
    everything: set[str] = field(default_factory=set)
    # Profiles merged away: their memberships end.
    removed: set[str] = field(default_factory=set)

    @property
    def profiles(self) -> set[str]:
        return set(self.trait_keys) | set(self.event_names) | self.everything


def touched_by(events: Iterable[common_pb2.Event], resolver: IdentityResolver) -> Touched:
    """What the batch's events changed, per final profile, from the resolver that applied them."""
    touched = Touched()
    for event in events:
        key = (USER_ID, event.user_id) if event.user_id else (ANONYMOUS_ID, event.anonymous_id)
        found = resolver.identities.get(key)
        if found is None:
            continue  # not applied in this batch (a duplicate, or skipped)
        profile_id = resolver.final(found)
        if event.type == common_pb2.EVENT_TYPE_IDENTIFY and event.HasField("traits"):
            touched.trait_keys[profile_id].update(event.traits.keys())
        if event.event:
            touched.event_names[profile_id].add(event.event)
    touched.everything |= {resolver.final(pid) for pid in resolver.merged_into}
    touched.everything |= {pid for pid in resolver.created if pid in resolver.profiles}
    touched.removed |= set(resolver.merged_into)
    return touched


@dataclass
class _ProfileFacts:
    user_id: str
    traits: dict[str, Any]
    events: dict[str, list[tuple[datetime, Mapping[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Segment id -> entered at, kept current as this pass records transitions.
    memberships: dict[str, datetime] = field(default_factory=dict)


async def reevaluate(
    session: AsyncSession, workspace: str, touched: Touched, now: datetime
) -> list[Transition]:
    """Re-evaluate the segments that read what changed, for the touched profiles; record and
    announce the differences in the session's transaction. Returns them."""
    store = SegmentStore(session, workspace)
    segments = await store.all()
    graph = SegmentGraph(segments)
    order = [(graph.segments[sid], compiled(graph.segments[sid])) for sid in graph.order()]
    candidates = {pid: _candidates(order, touched, pid) for pid in touched.profiles}
    candidates = {pid: found for pid, found in candidates.items() if found}
    transitions = await _exits_of_removed(store, segments, touched.removed - touched.profiles)
    if candidates:
        facts = await _load_facts(session, store, list(candidates), _event_reach(segments, now))
        for profile_id, initial in candidates.items():
            if profile_id in facts:
                transitions += _pass(order, profile_id, facts[profile_id], initial, now)
    await store.record(transitions, now)
    return transitions


def _candidates(order: Sequence[Visit], touched: Touched, profile_id: str) -> set[str]:
    if profile_id in touched.everything:
        return {segment.id for segment, _ in order}
    keys = touched.trait_keys.get(profile_id, set())
    names = touched.event_names.get(profile_id, set())
    return {segment.id for segment, rule in order if rule.traits & keys or rule.events & names}


def _pass(
    order: Sequence[Visit],
    profile_id: str,
    profile: _ProfileFacts,
    initial: set[str],
    now: datetime,
) -> list[Transition]:
    """Evaluate one profile's candidate segments, then any segment reading one that changed."""
    changed: set[str] = set()
    found: list[Transition] = []
    memberships = set(profile.memberships)
    facts = Facts(profile.traits, profile.events, memberships, profile_id)
    for segment, rule in order:
        if segment.id not in initial and not rule.segments & changed:
            continue
        member = evaluate(rule.rule, facts, now)
        entered_at = profile.memberships.get(segment.id)
        if member == (entered_at is not None):
            continue
        changed.add(segment.id)
        if member:
            change, episode = ENTERED, now
            profile.memberships[segment.id] = now
            memberships.add(segment.id)
        else:
            assert entered_at is not None
            change, episode = EXITED, entered_at
            del profile.memberships[segment.id]
            memberships.discard(segment.id)
        found.append(
            Transition(segment.id, segment.version, profile_id, profile.user_id, change, episode)
        )
    return found


def _event_reach(segments: Sequence[Segment], now: datetime) -> dict[str, datetime | None]:
    """Per event name the segments count, the earliest time any of them looks back to (None:
    all of history), so a long-lived profile's old events are not loaded for a 7-day rule."""
    reach: dict[str, datetime | None] = {}
    for segment in segments:
        for leaf in conditions(compiled(segment).rule):
            if not isinstance(leaf, EventCondition):
                continue
            start = None if leaf.within is None else now - leaf.within
            if leaf.event not in reach:
                reach[leaf.event] = start
            else:
                known = reach[leaf.event]
                reach[leaf.event] = None if known is None or start is None else min(known, start)
    return reach


async def _load_facts(
    session: AsyncSession,
    store: SegmentStore,
    profile_ids: list[str],
    reach: Mapping[str, datetime | None],
) -> dict[str, _ProfileFacts]:
    ws = store.workspace
    facts: dict[str, _ProfileFacts] = {}
    for start in range(0, len(profile_ids), CHUNK):
        chunk = profile_ids[start : start + CHUNK]
        rows = await session.exec(
            select(PROFILES.c.id, PROFILES.c.user_id, PROFILES.c.traits).where(
                PROFILES.c.workspace == ws, PROFILES.c.id.in_(chunk)
            )
        )
        for profile_id, user_id, traits in rows.all():
            facts[profile_id] = _ProfileFacts(user_id or "", json.loads(traits))
        if reach:
            await _load_events(session, ws, chunk, reach, facts)
    for profile_id, segment_id, entered_at in await store.memberships_of(list(facts)):
        facts[profile_id].memberships[segment_id] = entered_at
    return facts


async def _load_events(
    session: AsyncSession,
    workspace: str,
    profile_ids: list[str],
    reach: Mapping[str, datetime | None],
    facts: dict[str, _ProfileFacts],
) -> None:
    whole = [name for name, since in reach.items() if since is None]
    recent = [(name, since) for name, since in reach.items() if since is not None]
    wanted: list[sa.ColumnElement[bool]] = [EVENTS.c.event.in_(whole)] if whole else []
    wanted += [sa.and_(EVENTS.c.event == name, EVENTS.c.timestamp >= t) for name, t in recent]
    rows = await session.exec(
        select(EVENTS.c.profile_id, EVENTS.c.event, EVENTS.c.timestamp, EVENTS.c.properties).where(
            EVENTS.c.workspace == workspace, EVENTS.c.profile_id.in_(profile_ids), sa.or_(*wanted)
        )
    )
    for profile_id, name, at, properties in rows.all():
        if profile_id in facts:
            # "{}" is by far the most common; skip parsing it.
            loaded = json.loads(properties) if properties != "{}" else {}
            facts[profile_id].events[name].append((at, loaded))


async def _exits_of_removed(
    store: SegmentStore, segments: Sequence[Segment], removed: set[str]
) -> list[Transition]:
    """A profile merged away leaves every segment it was in (its successor is re-evaluated)."""
    versions = {segment.id: segment.version for segment in segments}
    return [
        Transition(segment_id, versions.get(segment_id, 0), profile_id, "", EXITED, entered_at)
        for profile_id, segment_id, entered_at in await store.memberships_of(sorted(removed))
    ]
