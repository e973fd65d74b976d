"""How the CLI reaches the suite: the addresses of the segments and scheduler processes (the
running `engage up` suite's, else their usual ports), an API key sent in every call's
metadata, and the workspace."""

from dataclasses import dataclass
from typing import Any

import grpc

from engage.auth import API_KEY_HEADER


@dataclass(frozen=True)
class Client:
    address: str
    api_key: str
    workspace: str
    # Where journeys and campaigns are served.
    scheduler_address: str = ""

    def channel(self, service: str = "segments") -> grpc.aio.Channel:
        address = self.scheduler_address if service == "scheduler" else self.address
        return grpc.aio.insecure_channel(address)

    @property
    def call(self) -> dict[str, Any]:
        """Keyword arguments for every call: the API key."""
        return {"metadata": ((API_KEY_HEADER, self.api_key),)}

    @property
    def parent(self) -> str:
        return f"workspaces/{self.workspace}"
