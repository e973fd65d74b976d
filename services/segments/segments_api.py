"""SegmentService over gRPC: validate, call the segment store in one transaction, answer protos.

Deleting a segment announces an EXITED for each of its members before the segment goes, so
every downstream copy of a membership (journeys, reports) sees each ENTERED closed; a segment
that another segment references cannot be deleted (FAILED_PRECONDITION naming them).
"""

from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import cast

import grpc
from google.protobuf import empty_pb2
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging, resources
from engage.clock import Clock, timestamp, utc_now
from engage.dates import zone_name
from engage.errors import InvalidArgument
from engage.rules import language
from engage.v1 import segment_pb2, segment_pb2_grpc
from services.segments import batch, rules_sql
from services.segments.batch import SegmentGraph
from services.segments.calendar import workspace_time_zone
from services.segments.models import Segment
from services.segments.segment_store import SegmentStore

COLLECTION = "segments"
DEFAULT_SAMPLE = 10
MAX_SAMPLE = 100
# Profile names per streamed ListSegmentMembers message; each chunk is one keyset query.
MEMBERS_CHUNK = 1000
UPDATABLE = ("display_name", "description", "rule")


def to_proto(segment: Segment, member_count: int) -> segment_pb2.Segment:
    return segment_pb2.Segment(
        name=resources.name_of(COLLECTION, segment.id, segment.workspace),
        display_name=segment.display_name,
        description=segment.description,
        rule=segment_pb2.Rule.FromString(segment.rule),
        version=segment.version,
        member_count=member_count,
        create_time=timestamp(segment.create_time),
        update_time=timestamp(segment.update_time),
    )


class SegmentApi(segment_pb2_grpc.SegmentServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay once a transaction with bus messages has committed.
        self.published = published
        self.clock = clock

    async def CreateSegment(
        self, request: segment_pb2.CreateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.Segment:
        workspace = resources.parse_parent("parent", request.parent)
        segment_id = resources.check_id("segment_id", request.segment_id)
        _check_texts(request.segment, UPDATABLE)
        rule, stored = batch.parse_rule(request.segment.rule, "segment.rule", workspace)
        now = self.clock()
        reads = batch.Compiled.of(rule)
        segment = Segment(
            workspace=workspace,
            id=segment_id,
            display_name=request.segment.display_name,
            description=request.segment.description,
            version=1,
            rule=stored,
            time_dependent=reads.time_dependent,
            create_time=now,
            update_time=now,
        )
        if request.validate_only:
            async with db.reading(self.sessions, workspace) as session:
                store = SegmentStore(session, workspace)
                SegmentGraph(await store.all()).check_references(
                    segment_id, reads.segments, "segment.rule"
                )
                await store.check_absent(segment_id)
                return to_proto(segment, await _would_have(session, workspace, rule, now))
        async with db.transaction(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            graph = SegmentGraph(await store.all())
            graph.check_references(segment_id, reads.segments, "segment.rule")
            segment = await store.create(segment)
            entered, _ = await batch.evaluate_in_sql(session, store, segment, now)
        self.published()
        return to_proto(segment, entered)

    async def GetSegment(
        self, request: segment_pb2.GetSegmentRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.Segment:
        segment_id = resources.parse_name("name", request.name, COLLECTION)
        workspace = resources.workspace()
        async with db.reading(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segment = await store.get(segment_id)
            counts = await store.member_counts([segment_id])
        return to_proto(segment, counts.get(segment_id, 0))

    async def ListSegments(
        self, request: segment_pb2.ListSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.ListSegmentsResponse:
        workspace = resources.parse_parent("parent", request.parent)
        size = paging.page_size(request.page_size)
        async with db.reading(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segments, next_token = await store.page(size, request.page_token)
            counts = await store.member_counts([s.id for s in segments])
        return segment_pb2.ListSegmentsResponse(
            segments=[to_proto(s, counts.get(s.id, 0)) for s in segments],
            next_page_token=next_token,
        )

    async def UpdateSegment(
        self, request: segment_pb2.UpdateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.Segment:
        segment_id = resources.parse_name("segment.name", request.segment.name, COLLECTION)
        workspace = resources.workspace()
        paths = _mask(request)
        _check_texts(request.segment, paths)
        new_rule = None
        if "rule" in paths:
            new_rule = batch.parse_rule(request.segment.rule, "segment.rule", workspace)
        now = self.clock()
        opened = db.reading if request.validate_only else db.transaction
        async with opened(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segment = await store.get(segment_id, lock=not request.validate_only)
            changes = _changes(segment, request.segment, paths, new_rule)
            if new_rule is not None and "rule" in changes:
                graph = SegmentGraph(s for s in await store.all() if s.id != segment_id)
                reads = batch.Compiled.of(new_rule[0])
                graph.check_references(segment_id, reads.segments, "segment.rule")
                changes["time_dependent"] = reads.time_dependent
            if not changes:  # AIP-134: the same content is no new version, and no evaluation
                counts = await store.member_counts([segment_id])
                return to_proto(segment, counts.get(segment_id, 0))
            if request.validate_only:
                return await _as_updated(session, segment, changes, new_rule, now)
            for field, value in changes.items():
                setattr(segment, field, value)
            segment.version += 1
            segment.update_time = now
            await store.save_version(segment)
            if "rule" in changes:
                await batch.evaluate_in_sql(session, store, segment, now)
            counts = await store.member_counts([segment_id])
        self.published()
        return to_proto(segment, counts.get(segment_id, 0))

    async def DeleteSegment(
        self, request: segment_pb2.DeleteSegmentRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        segment_id = resources.parse_name("name", request.name, COLLECTION)
        workspace = resources.workspace()
        now = self.clock()
        async with db.transaction(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            segment = await store.get(segment_id, lock=True)
            await batch.empty(store, segment, now)
            await store.delete(segment)
        self.published()
        return empty_pb2.Empty()

    async def PreviewSegment(
        self, request: segment_pb2.PreviewSegmentRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.PreviewSegmentResponse:
        workspace = resources.parse_parent("parent", request.parent)
        if request.sample_size < 0:
            raise InvalidArgument("sample_size", "must not be negative")
        # Like page_size (AIP-158), a larger request is coerced to the maximum.
        sample_size = min(request.sample_size or DEFAULT_SAMPLE, MAX_SAMPLE)
        rule, _ = batch.parse_rule(request.rule, "rule", workspace)
        now = self.clock()
        async with db.reading(self.sessions, workspace) as session:
            graph = SegmentGraph(await SegmentStore(session, workspace).all())
            # "" is never a segment id, so only the references themselves are checked.
            graph.check_references("", batch.Compiled.of(rule).segments, "rule")
            with rules_sql.stored_values_read("rule"):
                count = await rules_sql.count_members(session, workspace, rule, now)
                sample = await rules_sql.member_ids(session, workspace, rule, now, sample_size)
        return segment_pb2.PreviewSegmentResponse(
            member_count=count,
            sample_profiles=[resources.name_of("profiles", p, workspace) for p in sample],
        )

    async def ListSegmentMembers(
        self, request: segment_pb2.ListSegmentMembersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[segment_pb2.ListSegmentMembersResponse]:
        segment_id = resources.parse_name("segment", request.segment, COLLECTION)
        workspace = resources.workspace()
        after = ""
        if request.start_after:
            after = resources.parse_name("start_after", request.start_after, "profiles")
        async with db.reading(self.sessions, workspace) as session:
            await SegmentStore(session, workspace).get(segment_id)
            workspace_zone = await workspace_time_zone(session, workspace)
        while True:
            # One short transaction per chunk: memory stays flat and no snapshot is held open
            # while a slow reader drains the stream.
            async with db.reading(self.sessions, workspace) as session:
                store = SegmentStore(session, workspace)
                chunk = await store.members_after(segment_id, after, MEMBERS_CHUNK)
                details = await store.member_details(chunk)
            if not chunk:
                return
            members = [
                segment_pb2.SegmentMember(
                    profile=resources.name_of("profiles", profile_id, workspace),
                    user_id=details[profile_id][0],
                    calendar_time_zone=zone_name(details[profile_id][1], workspace_zone),
                )
                for profile_id in chunk
            ]
            yield segment_pb2.ListSegmentMembersResponse(
                profiles=[member.profile for member in members], members=members
            )
            if len(chunk) < MEMBERS_CHUNK:
                return
            after = chunk[-1]

    async def CheckMembership(
        self, request: segment_pb2.CheckMembershipRequest, context: grpc.aio.ServicerContext
    ) -> segment_pb2.CheckMembershipResponse:
        segment_id = resources.parse_name("segment", request.segment, COLLECTION)
        profile_id = resources.parse_name("profile", request.profile, "profiles")
        workspace = resources.workspace()
        async with db.reading(self.sessions, workspace) as session:
            store = SegmentStore(session, workspace)
            await store.get(segment_id)
            entered_at = await store.entered_at(segment_id, profile_id)
        if entered_at is None:
            return segment_pb2.CheckMembershipResponse(member=False)
        return segment_pb2.CheckMembershipResponse(member=True, entered_time=timestamp(entered_at))


def _changes(
    segment: Segment,
    requested: segment_pb2.Segment,
    paths: set[str],
    new_rule: tuple[language.Rule, bytes] | None,
) -> dict[str, object]:
    """The stored fields an update would change, with their new values."""
    changes: dict[str, object] = {
        field: getattr(requested, field)
        for field in ("display_name", "description")
        if field in paths and getattr(requested, field) != getattr(segment, field)
    }
    if new_rule is not None and new_rule[1] != segment.rule:
        changes["rule"] = new_rule[1]
    return changes


async def _as_updated(
    session: AsyncSession,
    segment: Segment,
    changes: dict[str, object],
    new_rule: tuple[language.Rule, bytes] | None,
    now: datetime,
) -> segment_pb2.Segment:
    """The segment as an update would leave it, computed without touching the stored row."""
    if new_rule is not None and "rule" in changes:
        count = await _would_have(session, segment.workspace, new_rule[0], now)
    else:
        counts = await SegmentStore(session, segment.workspace).member_counts([segment.id])
        count = counts.get(segment.id, 0)
    would_be = to_proto(segment, count)
    would_be.version += 1
    would_be.update_time.CopyFrom(timestamp(now))
    for field in ("display_name", "description"):
        if field in changes:
            setattr(would_be, field, changes[field])
    if "rule" in changes:
        would_be.rule.ParseFromString(cast(bytes, changes["rule"]))
    return would_be


async def _would_have(
    session: AsyncSession, workspace: str, rule: language.Rule, now: datetime
) -> int:
    """How many profiles `rule` holds now, as PreviewSegment counts them."""
    with rules_sql.stored_values_read("segment.rule"):
        return await rules_sql.count_members(session, workspace, rule, now)


def _check_texts(segment: segment_pb2.Segment, paths: Iterable[str]) -> None:
    # PostgreSQL cannot store U+0000 in text: refused here, not as a failed write.
    for field in {"display_name", "description"} & set(paths):
        if "\x00" in getattr(segment, field):
            raise InvalidArgument(f"segment.{field}", "must not contain U+0000")


def _mask(request: segment_pb2.UpdateSegmentRequest) -> set[str]:
    """The fields to update: the mask's paths, or every updatable field without one (AIP-134)."""
    return set(resources.update_paths(request.update_mask.paths, UPDATABLE))
