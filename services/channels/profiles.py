"""The profile a send goes to, asked of the segments service's ProfileService."""

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


class ProfileDirectory:
    """Looks profiles up over gRPC with this service's API key."""

    def __init__(self, channel: grpc.aio.Channel, api_key: str) -> None:
        self.stub = profile_pb2_grpc.ProfileServiceStub(channel)
        self.api_key = api_key

    async def find(
        self, workspace: str, user_id: str = "", anonymous_id: str = ""
    ) -> ProfileView | None:
        """The profile, or None when ProfileService does not know it (yet)."""
        request = (
            profile_pb2.GetProfileRequest(user_id=user_id)
            if user_id
            else profile_pb2.GetProfileRequest(anonymous_id=anonymous_id)
        )
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
            raise
        traits = json_format.MessageToDict(profile.traits) if profile.HasField("traits") else {}
        return ProfileView(name=profile.name, user_id=profile.user_id, traits=traits)
