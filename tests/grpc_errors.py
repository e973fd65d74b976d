"""Reading the `google.rpc` details of a failed call, as any gRPC client would."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """Fields named by the BadRequest detail of an INVALID_ARGUMENT status."""
    status = rpc_status.from_call(error)
    assert status is not None, "status carries no google.rpc details"
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [violation.field for violation in bad_request.field_violations]
    return fields
