"""Domain errors become gRPC statuses whose details name the field, as AIP-193 asks."""

import grpc
from google.rpc import error_details_pb2

from engage.errors import InvalidArgument, NotFound


def test_invalid_argument_names_the_field_in_bad_request_and_error_info() -> None:
    status = InvalidArgument("journey.trigger.event.event", "required").to_status()

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == "journey.trigger.event.event: required"
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad_request)
    assert info.reason == "INVALID_ARGUMENT"
    assert info.metadata["field"] == "journey.trigger.event.event"
    assert bad_request.field_violations[0].field == "journey.trigger.event.event"


def test_not_found_carries_error_info_only() -> None:
    status = NotFound("no journey welcome").to_status()

    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert len(status.details) == 1
