"""ProfileService over gRPC: validate, call the profile store in one session, answer protos."""

from collections.abc import Callable

import grpc
from google.protobuf import empty_pb2
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging, resources
from engage.clock import Clock, timestamp, utc_now
from engage.errors import InvalidArgument, Unavailable
from engage.v1 import profile_pb2, profile_pb2_grpc
from services.segments import profile_filter, rules_sql
from services.segments.identity import ANONYMOUS_ID, USER_ID
from services.segments.models import Profile, ProfileEvent
from services.segments.profiles import ProfileStore
from services.segments.segment_store import SegmentStore

COLLECTION = "profiles"
# Events in a FULL view: enough to see what a person did lately (ExportProfile has them all).
RECENT_EVENTS = 20


class ProfileApi(profile_pb2_grpc.ProfileServiceServicer):
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

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.Profile:
        workspace = resources.workspace()
        key = request.WhichOneof("key")
        if key is None:
            raise InvalidArgument("key", "set one of name, user_id, anonymous_id or email")
        value: str = getattr(request, key)
        if not value:
            raise InvalidArgument(key, "must not be empty")
        if request.view not in profile_pb2.ProfileView.values():
            raise InvalidArgument("view", f"{request.view} is not a ProfileView")
        async with db.reading(self.sessions, workspace) as session:
            store = ProfileStore(session, workspace)
            if request.applied_event:
                await _applied(session, request.applied_event)
            profile = await _find(store, key, value)
            answer = (await store.to_protos([profile]))[0]
            if request.view == profile_pb2.PROFILE_VIEW_FULL:
                await _add_full_view(session, workspace, profile.id, answer)
            return answer

    async def ListProfiles(
        self, request: profile_pb2.ListProfilesRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ListProfilesResponse:
        workspace = resources.parse_parent("parent", request.parent)
        size = paging.page_size(request.page_size)
        restrictions = profile_filter.parse(request.filter) if request.filter.strip() else []
        async with db.reading(self.sessions, workspace) as session:
            dialect = session.get_bind().dialect.name
            now = self.clock()
            where = [profile_filter.condition(r, workspace, dialect, now) for r in restrictions]
            store = ProfileStore(session, workspace)
            with rules_sql.stored_values_read("filter", "the filter"):
                # A token is good for the filter it was issued with only (AIP-158).
                profiles, next_token = await store.page(
                    size, request.page_token, where, scope=request.filter
                )
            return profile_pb2.ListProfilesResponse(
                profiles=await store.to_protos(profiles), next_page_token=next_token
            )

    async def DeleteProfile(
        self, request: profile_pb2.DeleteProfileRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        profile_id = resources.parse_name("name", request.name, COLLECTION)
        workspace = resources.workspace()
        async with db.transaction(self.sessions, workspace) as session:
            await ProfileStore(session, workspace).erase(profile_id)
        self.published()
        return empty_pb2.Empty()

    async def ExportProfile(
        self, request: profile_pb2.ExportProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ExportProfileResponse:
        profile_id = resources.parse_name("name", request.name, COLLECTION)
        workspace = resources.workspace()
        async with db.reading(self.sessions, workspace) as session:
            store = ProfileStore(session, workspace)
            profile = await store.by_id(profile_id)
            return profile_pb2.ExportProfileResponse(
                profile=(await store.to_protos([profile]))[0],
                events=await store.events(profile_id),
                merges=await store.merge_protos(profile_id),
            )


async def _add_full_view(
    session: AsyncSession, workspace: str, profile_id: str, answer: profile_pb2.Profile
) -> None:
    """What the FULL view adds: memberships (by segment id) and the latest events."""
    memberships = await SegmentStore(session, workspace).memberships_of([profile_id])
    for _, segment_id, entered_at in sorted(memberships, key=lambda row: row[1]):
        answer.memberships.add(
            segment=resources.name_of("segments", segment_id, workspace),
            entered_time=timestamp(entered_at),
        )
    store = ProfileStore(session, workspace)
    answer.recent_events.extend(await store.recent_events(profile_id, RECENT_EVENTS))


async def _find(store: ProfileStore, key: str, value: str) -> Profile:
    if key == "name":
        return await store.by_id(resources.parse_name("name", value, COLLECTION))
    if key == "email":
        return await store.by_email(value)
    return await store.by_identity(USER_ID if key == "user_id" else ANONYMOUS_ID, value)


async def _applied(session: AsyncSession, message_id: str) -> None:
    """Raise UNAVAILABLE unless the event with this message id has been applied."""
    found = await session.exec(
        select(ProfileEvent.message_id).where(ProfileEvent.message_id == message_id)
    )
    if found.first() is None:
        raise Unavailable(f"event {message_id!r} is not applied to a profile yet; retry")
