"""Resource names (AIP-122: `workspaces/{workspace}/{collection}/{id}`), resource ids, and the
check that a name belongs to the caller's workspace. The one place names are split or built.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engage.errors import InvalidArgument, PermissionDenied
from engage.principal import current_principal

_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ID_RULE = "must be 1-63 lower-case letters, digits or hyphens, starting with a letter"


@dataclass(frozen=True)
class ResourceName:
    workspace: str
    collection: str
    id: str


def workspace() -> str:
    """The calling principal's workspace."""
    return current_principal.get().workspace


def is_valid_id(value: str) -> bool:
    """Whether `value` is a resource id per AIP-122 (the ids callers choose)."""
    return bool(_ID.match(value))


def check_id(field: str, value: str) -> str:
    """A resource id per AIP-122: lower case letters, digits and hyphens, 1-63 long."""
    if not is_valid_id(value):
        raise InvalidArgument(field, ID_RULE)
    return value


def read_name(value: str, collection: str, suffix: str = "") -> ResourceName | None:
    """`workspaces/{workspace}/{collection}/{id}` (then `/{suffix}` when given) split into its
    parts; None when `value` has another shape. Checks no workspace: see `parse_name`."""
    parts = value.split("/")
    expected = 5 if suffix else 4
    if len(parts) != expected or parts[0] != "workspaces" or parts[2] != collection:
        return None
    if not parts[1] or not parts[3] or (suffix and parts[4] != suffix):
        return None
    return ResourceName(parts[1], collection, parts[3])


def parse_parent(field: str, value: str) -> str:
    """The workspace of a `workspaces/{workspace}` parent, which must be the caller's."""
    parts = value.split("/")
    if len(parts) != 2 or parts[0] != "workspaces" or not parts[1]:
        raise InvalidArgument(field, "must look like workspaces/{workspace}")
    return _own(parts[1])


def parse_name(field: str, value: str, collection: str, suffix: str = "") -> str:
    """The id in a resource name of the caller's workspace (INVALID_ARGUMENT naming `field` for
    another shape, PERMISSION_DENIED for another workspace)."""
    name = read_name(value, collection, suffix)
    if name is None:
        shape = f"workspaces/{{workspace}}/{collection}/{{id}}" + (f"/{suffix}" if suffix else "")
        raise InvalidArgument(field, f"must look like {shape}")
    _own(name.workspace)
    return name.id


def name_of(collection: str, resource_id: str, in_workspace: str | None = None) -> str:
    """`workspaces/{workspace}/{collection}/{id}`, in the caller's workspace unless given."""
    return f"workspaces/{in_workspace or workspace()}/{collection}/{resource_id}"


def _own(named_workspace: str) -> str:
    if named_workspace != workspace():
        raise PermissionDenied(f"API key is not for workspace {named_workspace!r}")
    return named_workspace


def update_paths(paths: Sequence[str], updatable: Sequence[str]) -> tuple[str, ...]:
    """The fields an update's mask names, each one that may be updated; an empty mask names
    every updatable field (AIP-134). INVALID_ARGUMENT on `update_mask` otherwise."""
    chosen = tuple(paths) or tuple(updatable)
    for path in chosen:
        if path not in updatable:
            raise InvalidArgument(
                "update_mask", f"cannot update {path!r}; updatable: {', '.join(updatable)}"
            )
    return chosen
