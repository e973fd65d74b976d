"""Real-time segment membership: after a batch of events changes some profiles, re-evaluate, in
Python and in the batch's own transaction, only the segments that read what changed, for those
profiles only, and record the differences (with their MembershipChanged in the outbox).

The segments of a workspace are kept in memory as a `Catalogue`, with an index from event names
and trait keys to the segments that read them; it is rebuilt only when the workspace's segments
change (one query of their ids and versions per transaction tells), so replicas and the API
that edits segments need no other signal. The evaluator's facts come from the applier (the
profiles' traits as it just wrote them), one query for memberships and one for the events the
candidate segments count (only as far back as the rules look). Segments are visited in
reference order, so a profile entering segment A re-evaluates, in the same pass, every segment
with `in_segment: A`.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.dates import profile_zone
from engage.rules.evaluate import Evaluation, Facts, Test, compile_trait, where_test
from engage.rules.language import (
    TIME_ZONE_KEY,
    EventCondition,
    Rule,
    TraitCondition,
    conditions,
    dependencies,
)
from services.segments.batch import Compiled, SegmentGraph, compiled
from services.segments.calendar import workspace_time_zone
from services.segments.event_applier import EventApplier
from services.segments.models import CHUNK, EVENTS, PROFILES, SEGMENTS, Segment
from services.segments.segment_store import ENTERED, EXITED, SegmentStore, Transition


@dataclass(frozen=True, slots=True)
class Visit:
    """A segment as a pass visits it: plain values, read for every profile."""

    id: str
    version: int
    rule: Compiled


# Whether an event's properties pass a condition's `where`.
Where = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class TraitChange:
    """A profile's traits before and after one applied call."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    # The zone the profile's dates are read in.
    zone: tzinfo

    def sides(self, now: datetime) -> tuple[Evaluation, Evaluation]:
        """The traits before and after, as trait conditions read them at `now`."""
        before = Evaluation(Facts(self.before, zone=self.zone), now)
        return before, Evaluation(Facts(self.after, zone=self.zone), now)


@dataclass
class Touched:
    """What one applied batch changed, per profile."""

    trait_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Per profile, per event name, the properties of each event of that name that happened.
    events: dict[str, dict[str, list[Mapping[str, Any]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    # Per profile whose traits changed: its traits before and after, for `Catalogue` to tell
    # which trait conditions the change flips.
    traits: dict[str, TraitChange] = field(default_factory=dict)
    # Profiles grown by a merge: every segment may have changed for them.
    everything: set[str] = field(default_factory=set)
    # Profiles new in this call: they differ from an empty profile only by what is recorded
    # above, so only the segments an empty profile is in may change beside those reading it.
    created: set[str] = field(default_factory=set)
    # Profiles merged away: their memberships end.
    removed: set[str] = field(default_factory=set)

    @property
    def profiles(self) -> set[str]:
        return set(self.trait_keys) | set(self.events) | self.everything | self.created


def touched_by(applier: EventApplier) -> Touched:
    """What the applier's last call changed, per final profile: the trait keys whose values
    changed (and `$time_zone` when the zone did), the event names that happened."""
    touched = Touched()
    for item in applier.applied:
        if item.event.event:
            touched.events[item.profile_id][item.event.event].append(item.properties)
    for profile_id, state in applier.states.items():
        if state.changed:
            touched.trait_keys[profile_id].update(state.changed)
            zone = profile_zone(state.time_zone, applier.workspace_zone)
            touched.traits[profile_id] = TraitChange(
                state.traits_before(), state.traits.values, zone
            )
        if state.zone_changed:
            touched.trait_keys[profile_id].add(TIME_ZONE_KEY)
    resolver = applier.resolver
    touched.everything |= {resolver.final(pid) for pid in resolver.merged_into}
    touched.created |= {pid for pid in resolver.created if pid in resolver.profiles}
    touched.created -= touched.everything
    touched.removed |= set(resolver.merged_into)
    return touched


@dataclass(frozen=True)
class Catalogue:
    """The live segments of one workspace, in reference order, indexed by what they read."""

    versions: frozenset[tuple[str, int]]
    order: list[Visit]
    by_trait: Mapping[str, frozenset[str]]
    by_event: Mapping[str, frozenset[str]]
    # Per event name some rule counts, how far back the rules look (None: all of history).
    reach: Mapping[str, timedelta | None]
    # Per (segment, event name), the `where` of each of its conditions on that event (None: no
    # `where`, every such event counts): a new event that passes none of them cannot change
    # what the segment counts.
    wheres: Mapping[tuple[str, str], tuple[Where | None, ...]]
    # Per (segment, trait key), the trait conditions reading that key, or None when something
    # else reads it too (an event's `since`, the calendar): a change of the key's value that
    # flips none of them cannot change the segment.
    trait_readers: Mapping[tuple[str, str], tuple[Test, ...] | None]
    # Per segment, what a pass starting at that segment may need: the event names it and the
    # segments reading it (through any chain) count, and the segments whose memberships they
    # compare or read.
    counts: Mapping[str, frozenset[str]]
    memberships: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> "Catalogue":
        graph = SegmentGraph(segments)
        order = [
            Visit(sid, graph.segments[sid].version, compiled(graph.segments[sid]))
            for sid in graph.order()
        ]
        by_trait: dict[str, set[str]] = defaultdict(set)
        by_event: dict[str, set[str]] = defaultdict(set)
        reach: dict[str, timedelta | None] = {}
        wheres: dict[tuple[str, str], list[Where | None]] = defaultdict(list)
        readers: dict[tuple[str, str], list[Test] | None] = {}
        for visit in order:
            for key in visit.rule.traits:
                by_trait[key].add(visit.id)
            for name in visit.rule.events:
                by_event[name].add(visit.id)
            for leaf in conditions(visit.rule.rule):
                _add_trait_reader(readers, visit.id, leaf)
                if isinstance(leaf, EventCondition):
                    wheres[(visit.id, leaf.event)].append(where_test(leaf.where))
                    known, within = reach.get(leaf.event, timedelta(0)), leaf.within
                    reach[leaf.event] = (
                        None if known is None or within is None else max(known, within)
                    )
        passes = {
            visit.id: [graph.segments[visit.id], *graph.dependents_in_order(visit.id)]
            for visit in order
        }
        return cls(
            frozenset((segment.id, segment.version) for segment in segments),
            order,
            {key: frozenset(ids) for key, ids in by_trait.items()},
            {name: frozenset(ids) for name, ids in by_event.items()},
            reach,
            {key: tuple(found) for key, found in wheres.items()},
            {key: None if found is None else tuple(found) for key, found in readers.items()},
            {
                sid: frozenset().union(*(compiled(s).events for s in visited))
                for sid, visited in passes.items()
            },
            {
                sid: frozenset(s.id for s in visited).union(
                    *(compiled(s).segments for s in visited)
                )
                for sid, visited in passes.items()
            },
        )

    def of_new_profiles(self, now: datetime) -> frozenset[str]:
        """The segments a new profile may be in whatever its first events: those an empty
        profile is in at `now` (`not: {event: purchase}`, `at_most`), and samples, which
        depend on the profile's id."""
        memberships: set[str] = set()
        empty = Evaluation(Facts(memberships=memberships), now)
        for visit in self.order:
            if visit.rule.sampled or visit.rule.test(empty):
                memberships.add(visit.id)
        return frozenset(memberships)

    def candidates(
        self, touched: Touched, profile_id: str, now: datetime, new: frozenset[str]
    ) -> set[str]:
        """The segments that read something the batch changed for this profile; for a new
        profile, also those of `new` (`of_new_profiles`)."""
        if profile_id in touched.everything:
            return {visit.id for visit in self.order}
        found: set[str] = set(new) if profile_id in touched.created else set()
        change = touched.traits.get(profile_id)
        sides = None if change is None else change.sides(now)
        for key in touched.trait_keys.get(profile_id, ()):
            for segment_id in self.by_trait.get(key, frozenset()):
                if segment_id not in found and self._flips(segment_id, key, sides):
                    found.add(segment_id)
        for name, happened in touched.events.get(profile_id, {}).items():
            for segment_id in self.by_event.get(name, frozenset()):
                if segment_id not in found and self._counts_any(segment_id, name, happened):
                    found.add(segment_id)
        return found

    def _flips(
        self, segment_id: str, key: str, sides: tuple[Evaluation, Evaluation] | None
    ) -> bool:
        """Whether the change of `key` may change the segment: it flips one of its trait
        conditions on that key (or something other than a trait condition reads the key)."""
        readers = self.trait_readers.get((segment_id, key))
        if readers is None or sides is None:
            return True
        before, after = sides
        return any(holds(before) != holds(after) for holds in readers)

    def _counts_any(self, segment_id: str, name: str, happened: list[Mapping[str, Any]]) -> bool:
        """Whether one of these events of `name` passes the `where` of one of the segment's
        conditions on that event (and so may change what it counts)."""
        return any(
            where is None or any(where(properties) for properties in happened)
            for where in self.wheres[(segment_id, name)]
        )


def _add_trait_reader(
    readers: dict[tuple[str, str], list[Test] | None], segment_id: str, leaf: Rule
) -> None:
    for key in dependencies(leaf).traits:
        known = readers.setdefault((segment_id, key), [])
        if known is None:
            continue
        if isinstance(leaf, TraitCondition) and key != TIME_ZONE_KEY:
            known.append(compile_trait(leaf))
        else:
            readers[(segment_id, key)] = None


# Workspace -> its catalogue, as last loaded by this process.
_catalogues: dict[str, Catalogue] = {}
_CATALOGUE_LIMIT = 1_000


async def catalogue(session: AsyncSession, workspace: str) -> Catalogue:
    """The workspace's catalogue, reloaded only when a segment was created, updated or deleted
    (by this process or another replica) since it was last built."""
    rows = await session.exec(
        select(SEGMENTS.c.id, SEGMENTS.c.version).where(SEGMENTS.c.workspace == workspace)
    )
    versions = frozenset((segment_id, int(version)) for segment_id, version in rows.all())
    known = _catalogues.get(workspace)
    if known is not None and known.versions == versions:
        return known
    if len(_catalogues) >= _CATALOGUE_LIMIT:
        _catalogues.clear()
    built = Catalogue.of(await SegmentStore(session, workspace).all())
    _catalogues[workspace] = built
    return built


@dataclass
class _ProfileFacts:
    user_id: str
    traits: Mapping[str, Any]
    events: dict[str, list[tuple[datetime, Mapping[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Ids of the segments it is a member of, kept current as a pass finds changes.
    memberships: set[str] = field(default_factory=set)
    # The zone its dates are read in (`dates.profile_zone`), as SQL reads them.
    zone: tzinfo = UTC


async def reevaluate_applied(
    session: AsyncSession, applier: EventApplier, now: datetime
) -> list[Transition]:
    """Re-evaluate what the applier's last call changed (see `reevaluate`)."""
    known = {
        profile_id: _ProfileFacts(
            state.profile.user_id or "",
            state.traits.values,
            zone=profile_zone(state.time_zone, applier.workspace_zone),
        )
        for profile_id, state in applier.states.items()
    }
    return await reevaluate(session, applier.workspace, touched_by(applier), now, known)


async def reevaluate(
    session: AsyncSession,
    workspace: str,
    touched: Touched,
    now: datetime,
    known: Mapping[str, _ProfileFacts] | None = None,
) -> list[Transition]:
    """Re-evaluate the segments that read what changed, for the touched profiles; record and
    announce the differences in the session's transaction. Returns them. `known` holds the
    current traits of profiles the caller has at hand; others are read."""
    store = SegmentStore(session, workspace)
    segments = await catalogue(session, workspace)
    new = segments.of_new_profiles(now) if touched.created else frozenset()
    candidates = {pid: segments.candidates(touched, pid, now, new) for pid in touched.profiles}
    candidates = {pid: found for pid, found in candidates.items() if found}
    transitions = await _exits_of_removed(store, segments, touched.removed - touched.profiles)
    if candidates:
        starts = set().union(*candidates.values())
        counted = set().union(*(segments.counts[sid] for sid in starts))
        compared = set().union(*(segments.memberships[sid] for sid in starts))
        reach = {
            name: None if within is None else now - within
            for name, within in segments.reach.items()
            if name in counted
        }
        facts = await _load_facts(session, store, list(candidates), reach, compared, known or {})
        changes = {
            profile_id: _pass(segments.order, profile_id, facts[profile_id], initial, now)
            for profile_id, initial in candidates.items()
            if profile_id in facts
        }
        transitions += await _transitions(store, facts, changes, now)
    await store.record(transitions, now)
    return transitions


def _pass(
    order: Sequence[Visit],
    profile_id: str,
    profile: _ProfileFacts,
    initial: set[str],
    now: datetime,
) -> list[tuple[Visit, bool]]:
    """Evaluate one profile's candidate segments, then any segment reading one that changed.
    Returns each segment whose membership changed and whether the profile entered it."""
    changed: set[str] = set()
    found: list[tuple[Visit, bool]] = []
    memberships = profile.memberships
    facts = Facts(profile.traits, profile.events, memberships, profile_id, profile.zone)
    evaluation = Evaluation(facts, now)
    for segment in order:
        if segment.id not in initial and segment.rule.segments.isdisjoint(changed):
            continue
        member = segment.rule.test(evaluation)
        if member == (segment.id in memberships):
            continue
        changed.add(segment.id)
        if member:
            memberships.add(segment.id)
        else:
            memberships.discard(segment.id)
        found.append((segment, member))
    return found


async def _transitions(
    store: SegmentStore,
    facts: Mapping[str, _ProfileFacts],
    changes: dict[str, list[tuple[Visit, bool]]],
    now: datetime,
) -> list[Transition]:
    """The transitions of the passes' changes: an entry opens an episode now, an exit closes
    the one that began when the stored membership did (read only for the exits)."""
    exiting = sorted(pid for pid, found in changes.items() if not all(e for _, e in found))
    began = {
        (segment_id, profile_id): at
        for profile_id, segment_id, at in await store.memberships_of(exiting)
    }
    return [
        Transition(
            segment.id,
            segment.version,
            profile_id,
            facts[profile_id].user_id,
            ENTERED if entered else EXITED,
            now if entered else began[(segment.id, profile_id)],
        )
        for profile_id, found in changes.items()
        for segment, entered in found
    ]


async def _load_facts(
    session: AsyncSession,
    store: SegmentStore,
    profile_ids: list[str],
    reach: Mapping[str, datetime | None],
    segment_ids: set[str],
    known: Mapping[str, _ProfileFacts],
) -> dict[str, _ProfileFacts]:
    """The facts a pass needs: the events counted since as far back as the rules look (`reach`
    per event name) and the memberships of these segments (the ones compared or read)."""
    ws = store.workspace
    facts = {pid: known[pid] for pid in profile_ids if pid in known}
    unknown = [pid for pid in profile_ids if pid not in known]
    workspace_zone = await workspace_time_zone(session, ws) if unknown else ""
    for start in range(0, len(unknown), CHUNK):
        rows = await session.exec(
            select(
                PROFILES.c.id, PROFILES.c.user_id, PROFILES.c.traits, PROFILES.c.time_zone
            ).where(PROFILES.c.workspace == ws, PROFILES.c.id.in_(unknown[start : start + CHUNK]))
        )
        for profile_id, user_id, traits, time_zone in rows.all():
            zone = profile_zone(time_zone, workspace_zone)
            facts[profile_id] = _ProfileFacts(user_id or "", json.loads(traits), zone=zone)
    present = list(facts)
    if reach:
        for start in range(0, len(present), CHUNK):
            await _load_events(session, ws, present[start : start + CHUNK], reach, facts)
    for profile_id, segment_id in await store.members_among(present, segment_ids):
        facts[profile_id].memberships.add(segment_id)
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
    store: SegmentStore, segments: Catalogue, removed: set[str]
) -> list[Transition]:
    """A profile merged away leaves every segment it was in (its successor is re-evaluated)."""
    versions = dict(segments.versions)
    return [
        Transition(segment_id, versions.get(segment_id, 0), profile_id, "", EXITED, entered_at)
        for profile_id, segment_id, entered_at in await store.memberships_of(sorted(removed))
    ]
