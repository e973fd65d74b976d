"""How the CLI reaches the suite: the addresses of the segments and scheduler processes (the
running `engage up` suite's, else their usual ports), an API key sent in every call's
metadata, and the workspace."""

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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


def field_violation(error: grpc.aio.AioRpcError) -> tuple[str, str] | None:
    """The field path and description of the first violation a refusal names, if any."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request) and bad_request.field_violations:
            violation = bad_request.field_violations[0]
            return violation.field, violation.description.removeprefix(f"{violation.field}: ")
    return None
