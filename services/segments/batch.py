"""Segments as a whole: their rules compiled once per version, the graph of `in_segment`
references, and batch evaluation in SQL (on create, update, delete and by the time sweeper)
with the change cascading to the segments that reference the one that changed.
"""

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from engage.errors import FailedPrecondition, InvalidArgument
from engage.rules import language
from engage.rules.evaluate import Test, compile_rule
from engage.rules.proto import from_proto, to_proto
from engage.v1 import segment_pb2
from services.segments import rules_sql
from services.segments.models import Segment
from services.segments.segment_store import SegmentStore

log = logging.getLogger(__name__)

# How many segments a chain of `in_segment` references may pass through. Real-time evaluation
# walks the chain for each touched profile, so it is bounded to keep that walk short.
MAX_REFERENCE_DEPTH = 8


@dataclass(frozen=True)
class Compiled:
    """A segment version's rule and what it reads."""

    rule: language.Rule
    # The rule as a function, for real time.
    test: Test
    traits: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]
    time_dependent: bool
    # Whether it reads a percentage sample, which depends on the profile's id.
    sampled: bool

    @classmethod
    def of(cls, rule: language.Rule) -> "Compiled":
        reads = language.dependencies(rule)
        return cls(
            rule,
            compile_rule(rule),
            reads.traits,
            reads.events,
            reads.segments,
            language.is_time_dependent(rule),
            any(isinstance(leaf, language.Sample) for leaf in language.conditions(rule)),
        )


# A version's rule never changes, so its compiled form is kept for the process's life.
_compiled: dict[tuple[str, str, int], Compiled] = {}
_COMPILED_LIMIT = 10_000


def compiled(segment: Segment) -> Compiled:
    key = (segment.workspace, segment.id, segment.version)
    found = _compiled.get(key)
    if found is None:
        if len(_compiled) >= _COMPILED_LIMIT:
            _compiled.clear()
        found = Compiled.of(from_proto(segment_pb2.Rule.FromString(segment.rule)))
        _compiled[key] = found
    return found


def parse_rule(
    message: segment_pb2.Rule, field: str, workspace: str
) -> tuple[language.Rule, bytes]:
    """The validated rule of a request in `workspace` and its canonical stored form."""
    if message.WhichOneof("kind") is None:
        raise InvalidArgument(field, "is required")
    rule = from_proto(message, field, workspace)
    return rule, to_proto(rule).SerializeToString(deterministic=True)


class SegmentGraph:
    """The segments of one workspace and who references whom."""

    def __init__(self, segments: Iterable[Segment]) -> None:
        self.segments = {segment.id: segment for segment in segments}
        self.reads = {sid: compiled(segment).segments for sid, segment in self.segments.items()}

    def referrers(self, segment_id: str) -> list[str]:
        return sorted(sid for sid, reads in self.reads.items() if segment_id in reads)

    def check_references(self, segment_id: str, references: frozenset[str], field: str) -> None:
        """A rule may name existing segments only, never itself through a chain, and the
        chains through it stay within MAX_REFERENCE_DEPTH."""
        for reference in sorted(references):
            if reference not in self.segments and reference != segment_id:
                raise InvalidArgument(field, f"references segment {reference!r}, which is absent")
        reads = {**self.reads, segment_id: references}
        if self._reaches(reads, references, segment_id):
            raise InvalidArgument(field, f"references make segment {segment_id!r} contain itself")
        if _depth(reads, segment_id) + _height(reads, segment_id) > MAX_REFERENCE_DEPTH:
            raise InvalidArgument(
                field, f"segment references chain more than {MAX_REFERENCE_DEPTH} deep"
            )

    @staticmethod
    def _reaches(reads: dict[str, frozenset[str]], start: Iterable[str], target: str) -> bool:
        seen: set[str] = set()
        stack = list(start)
        while stack:
            current = stack.pop()
            if current == target:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(reads.get(current, ()))
        return False

    def dependents_in_order(self, changed: str) -> list[Segment]:
        """Every segment that reads `changed` directly or through others, each after all the
        segments it reads (so one pass sees settled memberships)."""
        affected: set[str] = set()
        stack = [changed]
        while stack:
            for referrer in self.referrers(stack.pop()):
                if referrer not in affected:
                    affected.add(referrer)
                    stack.append(referrer)
        return [self.segments[sid] for sid in self.order() if sid in affected]

    def order(self) -> list[str]:
        """Segment ids, each after the ones it references (references are acyclic)."""
        placed: list[str] = []
        done: set[str] = set()

        def visit(segment_id: str, depth: int) -> None:
            if segment_id in done or depth > MAX_REFERENCE_DEPTH + 1:
                return
            for read in sorted(self.reads.get(segment_id, ())):
                if read in self.segments:
                    visit(read, depth + 1)
            if segment_id not in done:
                done.add(segment_id)
                placed.append(segment_id)

        for segment_id in sorted(self.segments):
            visit(segment_id, 0)
        return placed


def _height(reads: dict[str, frozenset[str]], segment_id: str, depth: int = 0) -> int:
    """Longest chain of references below `segment_id`."""
    if depth > MAX_REFERENCE_DEPTH:
        return depth
    below = [_height(reads, read, depth + 1) for read in reads.get(segment_id, ())]
    return max(below, default=depth)


def _depth(reads: dict[str, frozenset[str]], segment_id: str, depth: int = 0) -> int:
    """Longest chain of references above `segment_id` (segments that read it)."""
    if depth > MAX_REFERENCE_DEPTH:
        return depth
    above = [_depth(reads, sid, depth + 1) for sid, read in reads.items() if segment_id in read]
    return max(above, default=depth)


async def evaluate_in_sql(
    session: AsyncSession,
    store: SegmentStore,
    segment: Segment,
    now: datetime,
    field: str = "segment.rule",
    among: Collection[str] | None = None,
) -> tuple[int, int]:
    """Bring one segment's members up to date in SQL, then every segment that reads it; with
    `among`, only those profiles (the only ones whose membership can then change downstream).

    Returns the (entered, exited) counts of `segment` itself. A rule that cannot run on some
    stored value fails as `rules_sql.UnreadableValue` on `field`, naming the segment.
    """
    counts = await _reconcile(session, store, segment, now, field, among)
    if counts != (0, 0):
        graph = SegmentGraph(await store.all())
        for dependent in graph.dependents_in_order(segment.id):
            await _reconcile(session, store, dependent, now, field, among)
    return counts


async def disagreeing(
    session: AsyncSession, store: SegmentStore, segment: Segment, now: datetime, field: str
) -> list[str]:
    """The profiles whose stored membership of `segment` its rule no longer gives at `now`:
    a read, for finding what to change before taking the write lock."""
    rule = compiled(segment).rule
    members = await rules_sql.session_members_query(session, store.workspace, rule, now)
    with rules_sql.stored_values_read(field, f"the rule of segment {segment.id!r}"):
        return await store.disagreeing(segment.id, members, now)


async def _reconcile(
    session: AsyncSession,
    store: SegmentStore,
    segment: Segment,
    now: datetime,
    field: str,
    among: Collection[str] | None,
) -> tuple[int, int]:
    rule = compiled(segment).rule
    members = await rules_sql.session_members_query(session, store.workspace, rule, now)
    with rules_sql.stored_values_read(field, f"the rule of segment {segment.id!r}"):
        counts = await store.reconcile(segment, members, now, among)
    log.info(
        "segment evaluated",
        extra={
            "workspace": store.workspace,
            "segment": segment.id,
            "version": segment.version,
            "entered": counts[0],
            "exited": counts[1],
        },
    )
    return counts


async def empty(store: SegmentStore, segment: Segment, now: datetime) -> int:
    """Drop every member of a segment about to be deleted, announcing each exit.

    Downstream copies of membership (journeys, reports) see every ENTERED closed by an EXITED,
    which they would not if a deleted segment's members vanished silently.
    """
    graph = SegmentGraph(await store.all())
    referrers = graph.referrers(segment.id)
    if referrers:
        raise FailedPrecondition(
            f"segment {segment.id!r} is referenced by {', '.join(referrers)}", "name"
        )
    _entered, exited = await store.reconcile(segment, None, now)
    return exited
