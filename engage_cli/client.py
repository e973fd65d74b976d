"""How the CLI reaches the suite: the segments process's address (the running `engage up`
suite's, else its usual port), an API key sent in every call's metadata, and the workspace."""

from dataclasses import dataclass
from typing import Any

import grpc

from engage.auth import API_KEY_HEADER


@dataclass(frozen=True)
class Client:
    address: str
    api_key: str
    workspace: str

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    @property
    def call(self) -> dict[str, Any]:
        """Keyword arguments for every call: the API key."""
        return {"metadata": ((API_KEY_HEADER, self.api_key),)}

    @property
    def parent(self) -> str:
        return f"workspaces/{self.workspace}"
