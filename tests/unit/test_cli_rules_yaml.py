"""The CLI's YAML form of rules maps onto `engage.v1.Rule` as the service keeps it: what
`engage export` writes, `engage apply` reads back as the very same proto."""

from pathlib import Path

import pytest
import yaml

from engage.rules.proto import from_proto, to_proto
from engage_cli import rules_yaml
from engage_cli.apply import referenced_segments, segment_from_file
from tests.unit.test_segments_rules import STORY_1

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "segments").glob("*.yaml"))
EXAMPLE_RULES = [yaml.safe_dump(rules_yaml.load(path.read_text())["rule"]) for path in EXAMPLES]


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


def condition_value(text: str) -> object:
    """The value of the one trait condition `text` holds, as the service receives it."""
    condition = rules_yaml.from_yaml(text).trait
    kind = condition.value.WhichOneof("kind")
    return getattr(condition.value, kind) if kind else None


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("{trait: country, equals: NO}", "NO"),  # Norway, not false (YAML 1.1 reads false)
        ("{trait: answer, equals: yes}", "yes"),
        ("{trait: answer, equals: off}", "off"),
        ("{trait: branch, equals: 010}", 10.0),  # ten, not octal 8
        ("{trait: branch, equals: 0o10}", 8.0),  # octal when said so
        ("{trait: vip, equals: true}", True),
        ("{trait: paid_at, equals: 2026-03-01T09:00:00Z}", "2026-03-01T09:00:00Z"),  # as written
        ("{trait: visit_date, equals: 2026-03-01}", "2026-03-01"),
        ("{trait: visit_date, equals: 2026-03-01 09:00:00+09:00}", "2026-03-01 09:00:00+09:00"),
        ("{trait: ratio, equals: 1.5e3}", 1500.0),
    ],
)
def test_values_mean_what_the_marketer_wrote(written: str, meant: object) -> None:
    assert condition_value(written) == meant


def test_a_date_literal_is_kept_as_written() -> None:
    rule = rules_yaml.from_yaml("{trait: prescribed_at, before: 2026-12-01}")
    assert rule.trait.value.string_value == "2026-12-01"


def test_a_segment_file_keeps_norway_a_string(tmp_path: Path) -> None:
    path = tmp_path / "norway.yaml"
    path.write_text("segment_id: norway\nrule: {trait: country, in: [NO, SE, DK]}\n")
    segment = segment_from_file(path, "acme").segment
    countries = [value.string_value for value in segment.rule.trait.value.list_value.values]
    assert countries == ["NO", "SE", "DK"]
