"""WorkspaceService over gRPC: a workspace's settings (`workspaces/{w}/settings`): its time
zone, the customers' calendar for profiles without a valid zone of their own, and its messaging
policy (frequency caps, the global control group), which the scheduler applies."""

import json
from collections.abc import Callable, Sequence
from datetime import timedelta

import grpc
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, resources
from engage.clock import Clock, timestamp, utc_now
from engage.dates import zone_named
from engage.errors import InvalidArgument
from engage.v1 import common_pb2, workspace_pb2, workspace_pb2_grpc
from services.segments import workspace_settings
from services.segments.models import WorkspaceSettings

UPDATABLE = ("time_zone", "frequency_caps", "global_control_percent", "quiet_hours")
MAX_FREQUENCY_CAPS = 20
LONGEST_CAP_WINDOW = timedelta(days=366)


def to_proto(settings: WorkspaceSettings) -> workspace_pb2.WorkspaceSettings:
    message = workspace_pb2.WorkspaceSettings(
        name=f"workspaces/{settings.workspace}/settings",
        time_zone=settings.time_zone,
        global_control_percent=settings.global_control_percent,
    )
    for cap in json.loads(settings.frequency_caps):
        message.frequency_caps.append(json_format.ParseDict(cap, workspace_pb2.FrequencyCap()))
    if settings.quiet_hours:
        json_format.Parse(settings.quiet_hours, message.quiet_hours)
    if settings.update_time is not None:
        message.update_time.CopyFrom(timestamp(settings.update_time))
    return message


def parse_changes(settings: workspace_pb2.WorkspaceSettings, paths: list[str]) -> dict[str, object]:
    """The stored columns an update sets, validated; `paths` empty: every settable field."""
    chosen = resources.update_paths(paths, UPDATABLE)
    changes: dict[str, object] = {}
    if "time_zone" in chosen:
        changes["time_zone"] = check_time_zone("settings.time_zone", settings.time_zone)
    if "frequency_caps" in chosen:
        changes["frequency_caps"] = _caps_json(settings.frequency_caps)
    if "global_control_percent" in chosen:
        percent = settings.global_control_percent
        if not 0 <= percent < 100:
            raise InvalidArgument("settings.global_control_percent", "must be from 0 to under 100")
        changes["global_control_percent"] = percent
    if "quiet_hours" in chosen:
        changes["quiet_hours"] = _quiet_hours_json(settings)
    return changes


def _quiet_hours_json(settings: workspace_pb2.WorkspaceSettings) -> str:
    if not settings.HasField("quiet_hours"):
        return ""
    hours = settings.quiet_hours
    for end in ("start", "end"):
        field = f"settings.quiet_hours.{end}"
        if not hours.HasField(end):
            raise InvalidArgument(field, "a time of day is required")
        time = getattr(hours, end)
        if not (0 <= time.hours <= 23 and 0 <= time.minutes <= 59):
            raise InvalidArgument(field, "must be a time from 00:00 to 23:59")
    if hours.start == hours.end:
        raise InvalidArgument("settings.quiet_hours.end", "must differ from the start")
    return json_format.MessageToJson(hours, indent=None)


def _caps_json(caps: Sequence[workspace_pb2.FrequencyCap]) -> str:
    if len(caps) > MAX_FREQUENCY_CAPS:
        raise InvalidArgument("settings.frequency_caps", f"at most {MAX_FREQUENCY_CAPS} caps")
    for index, cap in enumerate(caps):
        field = f"settings.frequency_caps[{index}]"
        known = set(common_pb2.Channel.values()) - {common_pb2.CHANNEL_UNSPECIFIED}
        if cap.channel not in known:
            raise InvalidArgument(f"{field}.channel", "a channel is required")
        if cap.max_sends < 1:
            raise InvalidArgument(f"{field}.max_sends", "must be at least 1")
        window = cap.window.ToTimedelta()
        if not timedelta() < window <= LONGEST_CAP_WINDOW:
            raise InvalidArgument(f"{field}.window", "must be more than 0 and at most 366 days")
    return json.dumps([json_format.MessageToDict(cap) for cap in caps])


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
        changes = parse_changes(request.settings, list(request.update_mask.paths))
        async with db.transaction(self.sessions, workspace) as session:
            settings, _reread = await workspace_settings.update(
                session, workspace, changes, self.clock()
            )
        self.published()
        return to_proto(settings)
