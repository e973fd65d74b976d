"""Each workspace's messaging policy (frequency caps, the global control group), read from the
WorkspaceService that keeps the workspace's settings, and kept for a few seconds: a policy is
read for every batch of sends, and changes rarely."""

import logging
import time
from collections.abc import Iterable

import grpc

from engage import telemetry
from engage.auth import API_KEY_HEADER, WORKSPACE_HEADER
from engage.v1 import workspace_pb2, workspace_pb2_grpc
from services.scheduler.decisions import Cap, Policy

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 5.0


class WorkspacePolicies:
    def __init__(
        self, channel: grpc.aio.Channel, api_key: str, fresh_for_seconds: float = 10.0
    ) -> None:
        self.stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        self.api_key = api_key
        self.fresh_for_seconds = fresh_for_seconds
        self._known: dict[str, tuple[float, Policy]] = {}

    async def of(self, workspaces: Iterable[str]) -> dict[str, Policy]:
        return {workspace: await self.policy(workspace) for workspace in set(workspaces)}

    async def policy(self, workspace: str) -> Policy:
        """The workspace's policy, read again once it is older than `fresh_for_seconds`. When
        the settings cannot be read, the last known policy holds; with none known the batch
        fails and is retried, rather than send past a cap it could not read."""
        known = self._known.get(workspace)
        if known is not None and time.monotonic() - known[0] < self.fresh_for_seconds:
            return known[1]
        try:
            settings = await self._read(workspace)
        except grpc.aio.AioRpcError as error:
            if known is None:
                raise
            log.warning(
                "workspace settings not read; the last known policy holds: %s",
                error.code().name,
                extra={"workspace": workspace},
            )
            return known[1]
        policy = Policy(
            caps=tuple(
                Cap(cap.channel, cap.max_sends, cap.window.ToTimedelta())
                for cap in settings.frequency_caps
            ),
            global_control_percent=settings.global_control_percent,
            time_zone=settings.time_zone,
            quiet_hours=_quiet_hours(settings),
        )
        self._known[workspace] = (time.monotonic(), policy)
        return policy

    async def _read(self, workspace: str) -> workspace_pb2.WorkspaceSettings:
        metadata = (
            (API_KEY_HEADER, self.api_key),
            (WORKSPACE_HEADER, workspace),
            *telemetry.inject_headers().items(),
        )
        request = workspace_pb2.GetWorkspaceSettingsRequest(name=f"workspaces/{workspace}/settings")
        settings: workspace_pb2.WorkspaceSettings = await self.stub.GetWorkspaceSettings(
            request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
        )
        return settings


def _quiet_hours(
    settings: workspace_pb2.WorkspaceSettings,
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    if not settings.HasField("quiet_hours"):
        return None
    start, end = settings.quiet_hours.start, settings.quiet_hours.end
    return (start.hours, start.minutes), (end.hours, end.minutes)
