"""API keys: parsing, authentication and what each role may call."""

import pytest

from engage.auth import ApiKeys, authorize
from engage.errors import InvalidArgument, PermissionDenied, Unauthenticated
from engage.principal import Principal

KEYS = ApiKeys.parse("k-admin=acme:admin, k-ingest=acme:ingest, k-support=acme:support+marketer")


def test_key_maps_to_its_workspace_and_roles() -> None:
    assert KEYS.authenticate({"x-api-key": "k-ingest"}) == Principal("acme", frozenset({"ingest"}))
    assert KEYS.authenticate({"authorization": "Bearer k-admin"}).roles == {"admin"}


@pytest.mark.parametrize("metadata", [{}, {"x-api-key": "wrong"}, {"authorization": "Basic x"}])
def test_missing_or_unknown_key_is_unauthenticated(metadata: dict[str, str]) -> None:
    with pytest.raises(Unauthenticated):
        KEYS.authenticate(metadata)


@pytest.mark.parametrize("spec", ["k=acme", "k=acme:", "=acme:admin", "k=acme:superuser"])
def test_malformed_key_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad API key"):
        ApiKeys.parse(spec)


@pytest.mark.parametrize(
    ("roles", "method", "allowed"),
    [
        ({"ingest"}, "/engage.v1.IngestService/Track", True),
        ({"support"}, "/engage.v1.IngestService/Track", False),
        ({"support"}, "/engage.v1.ReportingService/GetJourneyReport", True),
        ({"ingest"}, "/engage.v1.ReportingService/GetJourneyReport", False),
        ({"marketer"}, "/engage.v1.JourneyService/CreateJourney", True),
        ({"support"}, "/engage.v1.JourneyService/CreateJourney", False),
        ({"support"}, "/engage.v1.JourneyService/ListJourneys", True),
        ({"marketer"}, "/engage.v1.ProfileService/DeleteProfile", False),
        ({"admin"}, "/engage.v1.ProfileService/DeleteProfile", True),
    ],
)
def test_roles_decide_which_methods_a_key_may_call(
    roles: set[str], method: str, allowed: bool
) -> None:
    principal = Principal("acme", frozenset(roles))
    if allowed:
        authorize(principal, method)
    else:
        with pytest.raises(PermissionDenied):
            authorize(principal, method)


PLATFORM = ApiKeys.parse("k-service=*:admin")


def test_platform_key_acts_on_the_workspace_its_call_names() -> None:
    metadata = {"x-api-key": "k-service", "x-engage-workspace": "globex"}

    assert PLATFORM.authenticate(metadata) == Principal("globex", frozenset({"admin"}))


@pytest.mark.parametrize("workspace", [None, "", "*"])
def test_platform_key_without_a_workspace_is_denied(workspace: str | None) -> None:
    metadata = {"x-api-key": "k-service"}
    if workspace is not None:
        metadata["x-engage-workspace"] = workspace
    with pytest.raises(PermissionDenied):
        PLATFORM.authenticate(metadata)


def test_a_workspace_key_ignores_the_workspace_header() -> None:
    metadata = {"x-api-key": "k-ingest", "x-engage-workspace": "globex"}

    assert KEYS.authenticate(metadata).workspace == "acme"


@pytest.mark.parametrize("workspace", ["a.b", "acme.>", "Acme", "ümlaut", "a b", "-x"])
def test_a_platform_key_cannot_act_on_a_workspace_that_is_not_a_name(workspace: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        PLATFORM.authenticate({"x-api-key": "k-service", "x-engage-workspace": workspace})
    assert raised.value.field == "x-engage-workspace"


@pytest.mark.parametrize("spec", ["k=acme.eu:admin", "k=ACME:admin"])
def test_a_key_for_a_workspace_that_is_not_a_name_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="workspace"):
        ApiKeys.parse(spec)
