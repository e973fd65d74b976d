"""The CLI's YAML form of rules maps onto `engage.v1.Rule` as the service keeps it: what
`engage export` writes, `engage apply` reads back as the very same proto."""

from pathlib import Path

import pytest
import yaml

from engage_cli import rules_yaml
from engage_cli.apply import referenced_segments
from services.segments.rules_proto import from_proto, to_proto
from tests.unit.test_segments_rules import STORY_1

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "segments").glob("*.yaml"))
EXAMPLE_RULES = [yaml.safe_dump(yaml.safe_load(path.read_text())["rule"]) for path in EXAMPLES]


@pytest.mark.parametrize("text", EXAMPLE_RULES)
def test_yaml_reads_as_the_services_own_form(text: str) -> None:
    rule = rules_yaml.from_yaml(text)

    assert to_proto(from_proto(rule)) == rule


@pytest.mark.parametrize("text", [STORY_1, *EXAMPLE_RULES])
def test_written_yaml_reads_back_as_the_same_proto(text: str) -> None:
    # Dates are the one thing the service rewrites (to UTC ISO); written back, they stay so.
    rule = to_proto(from_proto(rules_yaml.from_yaml(text)))

    assert rules_yaml.from_yaml(rules_yaml.to_yaml(rule)) == rule


def test_conditions_are_written_one_per_line_as_marketers_write_them() -> None:
    text = "all: [{trait: email, exists: false}, not: {event: paid, within: 18d}]"

    assert rules_yaml.to_yaml(rules_yaml.from_yaml(text)) == (
        "all:\n  - {trait: email, exists: false}\n  - not: {event: paid, within: 18d}\n"
    )


def test_referenced_segments_are_read_from_the_proto() -> None:
    rule = rules_yaml.from_yaml(
        "any: [{in_segment: vip}, not: {in_segment: workspaces/acme/segments/lapsed}]"
    )

    assert sorted(referenced_segments(rule)) == ["lapsed", "vip"]
