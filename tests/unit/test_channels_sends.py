"""Which template a send names: a bare id, or the resource name of one in its workspace."""

import pytest

from services.channels.sends import template_id_of


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("welcome", "welcome"),
        ("workspaces/acme/templates/welcome", "welcome"),
        ("workspaces/globex/templates/welcome", None),
        ("workspaces/acme/journeys/welcome", None),
        ("workspaces/acme/templates/", None),
        ("templates/welcome", None),
        ("Welcome!", None),
        ("", None),
    ],
)
def test_template_reference(reference: str, expected: str | None) -> None:
    assert template_id_of(reference, "acme") == expected
