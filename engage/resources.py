"""Resource names (`workspaces/{workspace}/journeys/{journey}`) and the workspace check."""

import re

from engage.auth import current_principal
from engage.errors import InvalidArgument, PermissionDenied

_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def workspace() -> str:
    """The calling principal's workspace."""
    return current_principal.get().workspace


def check_id(field: str, value: str) -> str:
    """A resource id per AIP-122: lower case letters, digits and hyphens, 1-63 long."""
    if not _ID.match(value):
        raise InvalidArgument(field, "must be 1-63 lower-case letters, digits or hyphens")
    return value


def parse_parent(field: str, value: str) -> str:
    """The workspace of a `workspaces/{workspace}` parent, which must be the caller's."""
    parts = value.split("/")
    if len(parts) != 2 or parts[0] != "workspaces" or not parts[1]:
        raise InvalidArgument(field, "must look like workspaces/{workspace}")
    return _own(parts[1])


def parse_name(field: str, value: str, collection: str) -> str:
    """The id in `workspaces/{workspace}/{collection}/{id}`, checking the workspace."""
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != "workspaces" or parts[2] != collection or not parts[3]:
        raise InvalidArgument(field, f"must look like workspaces/{{workspace}}/{collection}/{{id}}")
    _own(parts[1])
    return parts[3]


def name_of(collection: str, resource_id: str, in_workspace: str | None = None) -> str:
    return f"workspaces/{in_workspace or workspace()}/{collection}/{resource_id}"


def _own(named_workspace: str) -> str:
    if named_workspace != workspace():
        raise PermissionDenied(f"API key is not for workspace {named_workspace!r}")
    return named_workspace
