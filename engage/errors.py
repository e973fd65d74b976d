"""Domain errors, and how each becomes a gRPC status with `google.rpc` details."""

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "engage.v1"


class EngageError(Exception):
    """An error a caller can act on; its message goes to the caller verbatim."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_status(self) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN)
        if self.field:
            info.metadata["field"] = self.field
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        status.details.add().Pack(info)
        if self.field and self.code is grpc.StatusCode.INVALID_ARGUMENT:
            bad_request = error_details_pb2.BadRequest()
            bad_request.field_violations.add(field=self.field, description=self.message)
            status.details.add().Pack(bad_request)
        return status


class InvalidArgument(EngageError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}", field)
        self.description = description


class NotFound(EngageError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(EngageError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(EngageError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class PermissionDenied(EngageError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(EngageError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class ResourceExhausted(EngageError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


INTERNAL_STATUS = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")


class Unavailable(EngageError):
    """A dependency (the bus, a database) is down; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"
