"""Segment rules written as YAML in tests: the CLI's YAML form, read into the segments domain
model the way the service reads a request (`engage.rules.proto.from_proto`, which validates)."""

from engage.rules.language import Rule
from engage.rules.proto import from_proto, to_proto
from engage_cli import rules_yaml


def from_yaml(text: str) -> Rule:
    """The validated domain rule of a YAML rule."""
    return from_proto(rules_yaml.from_yaml(text))


def from_data(data: object) -> Rule:
    """The validated domain rule of already-loaded YAML (the `rule:` of a segment file)."""
    return from_proto(rules_yaml.from_data(data))


def to_yaml(rule: Rule) -> str:
    """The YAML a marketer would write for a domain rule."""
    return rules_yaml.to_yaml(to_proto(rule))
