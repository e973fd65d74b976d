"""From a field path of the proto form of a rule (`rule.all.rules[1].trait.value`, as the
segments service and `rules_yaml` name a mistake) back to the keys the marketer wrote
(`rule.all[1].equals`), so that an error points at a key and a line of the file.

The YAML form is the proto form with a few words changed: a group's `rules` is the list itself,
a condition's `value` (or `relative_to`, `operator`) is the operator key written (`equals`,
`before`), counts are `at_least` / `at_most`, and `{trait: t, exists: false}` is a `not`
written without one. A path the YAML does not spell out stops at the nearest written key.
"""

import re
from typing import Any

from engage_cli.documents import KeyPath
from engage_cli.rules_yaml import OPERATOR_KEYS

_FIELD = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")
# Older names of the counting fields, as a service of the previous release names them.
_RENAMED = {"min_count": "at_least", "max_count": "at_most"}
# The fields of a condition that the YAML writes as its operator key.
_OPERAND = {"value", "relative_to", "operator"}

Field = tuple[str, int | None]


def parse_fields(path: str) -> list[Field]:
    """`all.rules[1].trait` as [("all", None), ("rules", 1), ("trait", None)]."""
    return [(name, int(index) if index else None) for name, index in _FIELD.findall(path)]


def rule_keys(data: Any, fields: list[Field]) -> KeyPath:
    """The keys, within the rule's YAML `data`, that `fields` (below the rule) name."""
    path: KeyPath = ()
    node = data
    while fields and isinstance(node, dict):
        (name, _), fields = fields[0], fields[1:]
        if name == "not":
            if "not" in node:  # else `exists: false`, a negation written inside the condition
                path, node = (*path, "not"), node["not"]
            continue
        if name not in node:
            return path
        if name in ("trait", "event"):
            return path + _condition_keys(node, fields)
        path, node = (*path, name), node[name]
        if name in ("all", "any") and fields and fields[0][0] == "rules":
            index = fields[0][1]
            if index is None or not isinstance(node, list) or index >= len(node):
                return path
            path, node, fields = (*path, index), node[index], fields[1:]
        elif name in ("in_segment", "sample"):
            return path + _condition_keys(node, fields)
    return path


def _condition_keys(node: Any, fields: list[Field]) -> KeyPath:
    """Within one condition (or a `where` item, a time point), the keys `fields` name."""
    path: KeyPath = ()
    for name, index in fields:
        if not isinstance(node, dict):
            break
        key = _RENAMED.get(name, name)
        if key in _OPERAND:
            written = [k for k in node if k in OPERATOR_KEYS]
            if not written:
                break
            key = written[0]
        if key not in node:
            break
        path, node = (*path, key), node[key]
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                break
            path, node = (*path, index), node[index]
    return path
