"""Profiles as other services read them: asked of the segments service's ProfileService."""

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format

from engage import telemetry
from engage.auth import API_KEY_HEADER, WORKSPACE_HEADER
from engage.v1 import profile_pb2, profile_pb2_grpc

CALL_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProfileView:
    name: str
    user_id: str
    traits: dict[str, Any]
    # The IANA zone its calendar is read in (its own, else the workspace's, else UTC).
    calendar_time_zone: str = "UTC"
    # The names of the segments it is in (read with `with_segments` only).
    segments: frozenset[str] = frozenset()


class NotAppliedYet(Exception):
    """The event the caller asked the profile to include is not applied yet; ask again."""


class ProfileDirectory:
    """Looks profiles up over gRPC with this service's API key."""

    def __init__(self, channel: grpc.aio.Channel, api_key: str) -> None:
        self.stub = profile_pb2_grpc.ProfileServiceStub(channel)
        self.api_key = api_key

    async def find(
        self,
        workspace: str,
        user_id: str = "",
        anonymous_id: str = "",
        applied_event: str = "",
        with_segments: bool = False,
    ) -> ProfileView | None:
        """The profile, or None when ProfileService does not know it (yet). With
        `applied_event` (a message id), the profile as it is with that event applied, or
        NotAppliedYet; `with_segments` reads the segments it is in too (the FULL view)."""
        request = (
            profile_pb2.GetProfileRequest(user_id=user_id)
            if user_id
            else profile_pb2.GetProfileRequest(anonymous_id=anonymous_id)
        )
        request.applied_event = applied_event
        if with_segments:
            request.view = profile_pb2.PROFILE_VIEW_FULL
        metadata = (
            (API_KEY_HEADER, self.api_key),
            (WORKSPACE_HEADER, workspace),
            *telemetry.inject_headers().items(),
        )
        try:
            profile = await self.stub.GetProfile(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            if applied_event and error.code() == grpc.StatusCode.UNAVAILABLE:
                raise NotAppliedYet() from error
            raise
        traits = json_format.MessageToDict(profile.traits) if profile.HasField("traits") else {}
        return ProfileView(
            name=profile.name,
            user_id=profile.user_id,
            traits=traits,
            calendar_time_zone=profile.calendar_time_zone or "UTC",
            segments=frozenset(membership.segment for membership in profile.memberships),
        )
