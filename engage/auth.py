"""API keys: who is calling (workspace and roles) and whether they may call a method."""

import hashlib
from collections.abc import Mapping

from engage.errors import InvalidArgument, PermissionDenied, Unauthenticated
from engage.principal import Principal
from engage.resources import is_valid_id

API_KEY_HEADER = "x-api-key"
# The workspace a platform key (granted workspace `*`) acts on, e.g. a service calling another.
WORKSPACE_HEADER = "x-engage-workspace"
ALL_WORKSPACES = "*"
WORKSPACE_RULE = "a workspace is 1-63 lower-case letters, digits or hyphens, starting with a letter"
ROLES = frozenset({"ingest", "marketer", "support", "admin"})

# Who may call each service's writing methods; reading methods also admit support and marketer.
WRITER_ROLES: Mapping[str, frozenset[str]] = {
    "IngestService": frozenset({"ingest"}),
    "ProfileService": frozenset(),
    "SegmentService": frozenset({"marketer"}),
    "CampaignService": frozenset({"marketer"}),
    "JourneyService": frozenset({"marketer"}),
    "TemplateService": frozenset({"marketer"}),
    "MessageService": frozenset({"ingest", "marketer"}),
    "SubscriptionService": frozenset({"marketer", "support"}),
    "ReportingService": frozenset(),
    # The customers' calendar (time zone) shapes every segment: marketers set it.
    "WorkspaceService": frozenset({"marketer"}),
}
READER_ROLES = frozenset({"support", "marketer"})
READING_VERBS = ("Get", "List", "Check", "Preview", "Export", "Render")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """Keys kept only as SHA-256 digests, each mapped to its workspace and roles."""

    def __init__(self, principals_by_digest: Mapping[bytes, Principal]) -> None:
        self._principals = dict(principals_by_digest)

    @classmethod
    def parse(cls, spec: str) -> "ApiKeys":
        """Read `key=workspace:role+role,...` (the `ENGAGE_API_KEYS` format)."""
        principals: dict[bytes, Principal] = {}
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            key, _, grant = entry.partition("=")
            workspace, _, roles_text = grant.partition(":")
            roles = frozenset(filter(None, roles_text.split("+")))
            if not key or not workspace or not roles or not roles <= ROLES:
                raise ValueError(f"bad API key entry for workspace {workspace!r}")
            if workspace != ALL_WORKSPACES and not is_valid_workspace(workspace):
                raise ValueError(f"API key workspace {workspace!r}: {WORKSPACE_RULE}")
            principals[_digest(key)] = Principal(workspace, roles)
        return cls(principals)

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        """The principal of the key in `x-api-key` (or `authorization: Bearer`)."""
        key = metadata.get(API_KEY_HEADER, "")
        bearer = metadata.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[len("bearer ") :].strip()
        if not key:
            raise Unauthenticated(f"missing API key: send it as `{API_KEY_HEADER}` metadata")
        # Looked up by SHA-256 digest: timing reveals nothing about a key whose hash is unknown.
        principal = self._principals.get(_digest(key))
        if principal is None:
            raise Unauthenticated("invalid API key")
        return _acting_principal(principal, metadata)


def _acting_principal(principal: Principal, metadata: Mapping[str, str]) -> Principal:
    """A platform key acts on the workspace its call names; any other key on its own."""
    if principal.workspace != ALL_WORKSPACES:
        return principal
    workspace = metadata.get(WORKSPACE_HEADER, "")
    if not workspace or workspace == ALL_WORKSPACES:
        raise PermissionDenied(f"a platform key must name the workspace in `{WORKSPACE_HEADER}`")
    if not is_valid_workspace(workspace):
        raise InvalidArgument(WORKSPACE_HEADER, WORKSPACE_RULE)
    return Principal(workspace, principal.roles)


def is_valid_workspace(workspace: str) -> bool:
    """Workspace names become NATS subject tokens and resource-name parts: AIP-122 ids."""
    return is_valid_id(workspace)


def authorize(principal: Principal, method: str) -> None:
    """Raise PermissionDenied unless the principal's roles admit `/engage.v1.Service/Method`."""
    if "admin" in principal.roles:
        return
    service, _, name = method.rpartition("/")
    writers = WRITER_ROLES.get(service.rpartition(".")[2], frozenset())
    allowed = writers | READER_ROLES if name.startswith(READING_VERBS) else writers
    if not principal.roles & allowed:
        raise PermissionDenied(f"API key may not call {name}: needs one of {sorted(allowed)}")
