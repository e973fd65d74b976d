"""Resource names are split and checked in one place, the same way for every service."""

import pytest

from engage import resources
from engage.errors import InvalidArgument, PermissionDenied
from engage.principal import Principal, current_principal


@pytest.fixture(autouse=True)
def caller_in_acme() -> None:
    current_principal.set(Principal(workspace="acme", roles=frozenset({"admin"})))


def test_a_name_splits_into_workspace_collection_and_id() -> None:
    name = resources.read_name("workspaces/acme/journeys/welcome/report", "journeys", "report")
    assert name == resources.ResourceName("acme", "journeys", "welcome")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "workspaces/acme/journeys/welcome",
        "workspaces//journeys/welcome/report",
        "workspaces/acme/journeys//report",
        "workspaces/acme/campaigns/welcome/report",
        "workspaces/acme/journeys/welcome/report/extra",
        "workspaces/acme/journeys/welcome/summary",
    ],
)
def test_malformed_names_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        resources.parse_name("name", value, "journeys", suffix="report")
    assert raised.value.field == "name"
    assert "workspaces/{workspace}/journeys/{id}/report" in raised.value.message


def test_a_name_in_another_workspace_is_denied() -> None:
    with pytest.raises(PermissionDenied):
        resources.parse_name("name", "workspaces/globex/segments/vip", "segments")


@pytest.mark.parametrize("value", ["vip", "a", "late-payers-2", "a" * 63])
def test_resource_ids_follow_aip_122(value: str) -> None:
    assert resources.check_id("segment_id", value) == value


@pytest.mark.parametrize("value", ["", "VIP", "2fast", "has_underscore", "a" * 64, "-x"])
def test_other_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        resources.check_id("segment_id", value)
    assert raised.value.field == "segment_id"
