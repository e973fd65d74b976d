"""WorkspaceService over gRPC: a workspace's settings (`workspaces/{w}/settings`), today its
time zone, the customers' calendar for profiles without a valid zone of their own."""

from collections.abc import Callable

import grpc
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, resources
from engage.clock import Clock, timestamp, utc_now
from engage.dates import zone_named
from engage.errors import InvalidArgument
from engage.v1 import workspace_pb2, workspace_pb2_grpc
from services.segments import workspace_settings
from services.segments.models import WorkspaceSettings

UPDATABLE = ("time_zone",)


def to_proto(settings: WorkspaceSettings) -> workspace_pb2.WorkspaceSettings:
    message = workspace_pb2.WorkspaceSettings(
        name=f"workspaces/{settings.workspace}/settings", time_zone=settings.time_zone
    )
    if settings.update_time is not None:
        message.update_time.CopyFrom(timestamp(settings.update_time))
    return message


def parse_settings_name(field: str, name: str) -> str:
    """The caller's workspace named by `workspaces/{workspace}/settings`."""
    workspace, slash, last = name.rpartition("/")
    if not slash or last != "settings":
        raise InvalidArgument(field, "must look like workspaces/{workspace}/settings")
    return resources.parse_parent(field, workspace)


def check_time_zone(field: str, time_zone: str) -> str:
    if time_zone and zone_named(time_zone) is None:
        raise InvalidArgument(field, "must be an IANA time zone like Asia/Tokyo, or empty for UTC")
    return time_zone


class WorkspaceApi(workspace_pb2_grpc.WorkspaceServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        published: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        # Wakes the outbox relay: a new zone can move profiles in and out of segments.
        self.published = published
        self.clock = clock

    async def GetWorkspaceSettings(
        self, request: workspace_pb2.GetWorkspaceSettingsRequest, context: grpc.aio.ServicerContext
    ) -> workspace_pb2.WorkspaceSettings:
        workspace = parse_settings_name("name", request.name)
        async with db.reading(self.sessions, workspace) as session:
            return to_proto(await workspace_settings.read(session, workspace))

    async def UpdateWorkspaceSettings(
        self,
        request: workspace_pb2.UpdateWorkspaceSettingsRequest,
        context: grpc.aio.ServicerContext,
    ) -> workspace_pb2.WorkspaceSettings:
        workspace = parse_settings_name("settings.name", request.settings.name)
        for path in request.update_mask.paths:
            if path not in UPDATABLE:
                raise InvalidArgument(
                    "update_mask", f"cannot update {path!r}; updatable: {', '.join(UPDATABLE)}"
                )
        time_zone = check_time_zone("settings.time_zone", request.settings.time_zone)
        async with db.transaction(self.sessions, workspace) as session:
            settings, _reread = await workspace_settings.set_time_zone(
                session, workspace, time_zone, self.clock()
            )
        self.published()
        return to_proto(settings)
