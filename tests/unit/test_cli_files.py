"""Segment files as `engage apply` reads them: every mistake is named by file, line and the key
as written, whether the CLI finds it or the service names it by a proto field path."""

from pathlib import Path

import pytest

from engage_cli.apply import read_segment_files, refused, segment_from_file
from engage_cli.documents import FileError, key_text, read_documents
from engage_cli.rule_paths import parse_fields, rule_keys


def written(tmp_path: Path, text: str, name: str = "segment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(FileError) as refused_file:
        read_segment_files([path], "acme")
    return str(refused_file.value).removeprefix(f"{path}:")


RULE = """\
all:
  - {trait: plan, equals: pro}
  - {trait: email, exists: false}
  - not:
      event: paid
      at_most: 2
      since: {trait: prescribed_at, offset: 1d}
      where:
        - {property: sku, in: [A, B]}
  - {trait: renewal, before: {trait: signed_up_at, offset: 30d}}
  - {in_segment: vip}
  - {sample: {percent: 10}}
"""


@pytest.mark.parametrize(
    ("field", "key", "line"),
    [
        ("rule.all.rules[0].trait.value", "rule.all[0].equals", 4),
        ("rule.all.rules[0].trait.trait", "rule.all[0].trait", 4),
        ("rule.all.rules[1].not.trait.value", "rule.all[1].exists", 5),  # `not` left unwritten
        ("rule.all.rules[2].not.event.at_most", "rule.all[2].not.at_most", 8),
        ("rule.all.rules[2].not.event.max_count", "rule.all[2].not.at_most", 8),  # older name
        ("rule.all.rules[2].not.event.since.offset", "rule.all[2].not.since.offset", 9),
        ("rule.all.rules[2].not.event.where[0].value", "rule.all[2].not.where[0].in", 11),
        ("rule.all.rules[2].not.event.at_least", "rule.all[2].not", 6),  # not written: its event
        ("rule.all.rules[3].trait.relative_to.offset", "rule.all[3].before.offset", 12),
        ("rule.all.rules[4].in_segment.segment", "rule.all[4].in_segment", 13),
        ("rule.all.rules[5].sample.percent", "rule.all[5].sample.percent", 14),
        ("rule.all.rules[9].trait.value", "rule.all", 3),  # no such item: the list
        ("rule.all.rules", "rule.all", 3),
        ("segment.rule.all.rules[0].trait.value", "rule.all[0].equals", 4),
        ("segment.display_name", "display_name", 1),
    ],
)
def test_a_proto_field_path_names_the_key_and_line_written(
    tmp_path: Path, field: str, key: str, line: int
) -> None:
    indented = "".join(f"  {row}\n" for row in RULE.splitlines())
    path = written(tmp_path, f"display_name: Mixed\nrule:\n{indented}")
    (document,) = read_documents(path)

    error = refused(document, field, "is wrong")

    assert (key_text(error.key), error.line) == (key, line)
    assert str(error) == f"{path}:{line}: {key}: is wrong"


def test_the_rule_keys_walk_below_the_rule() -> None:
    rule = {"any": [{"trait": "plan", "in": ["pro"]}]}

    assert rule_keys(rule, parse_fields("any.rules[0].trait.value")) == ("any", 0, "in")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "segment_id: a\ndescripton: x\nrule: {trait: p, equals: 1}\n",
            2,
            "descripton: is not a field here; did you mean `description`?",
        ),
        ("segment_id: a\nrule:\n  all:\n    - {trait: p, equalz: 1}\n", 4, "rule.all[0]"),
        ("segment_id: a\nrule:\n  any:\n    - event: paid\n      withinn: 7d\n", 5, "withinn"),
        (
            "segment_id: a\nrule:\n  event: paid\n  where:\n    - {property: sku, equalz: A}\n",
            5,
            "rule.where[0]",
        ),
        ("segment_id: a\nrule: {sample: {percent: 5, sed: x}}\n", 2, "rule.sample"),
        ("segment_id: a\nrule: {trait: p, equals: 1}\nrule: {trait: q, equals: 2}\n", 3, "rule"),
    ],
)
def test_unknown_and_repeated_keys_are_refused_at_every_level(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    refused_at = refusal(written(tmp_path, text))

    assert refused_at.startswith(f"{line}: "), refused_at
    assert message in refused_at


def test_a_repeated_key_is_named_as_written_twice(tmp_path: Path) -> None:
    text = "segment_id: a\nrule: {trait: p, equals: 1, equals: 2}\n"

    assert refusal(written(tmp_path, text)) == "2: rule.equals: is written twice in one mapping"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segment_id: a\n", "1: needs `rule`"),
        ("rule: {trait: p, equals: 1}\n", "1: needs `segment_id`"),
        ("segment_id: 42\nrule: {trait: p, equals: 1}\n", "1: segment_id: must be text"),
        ("- segment_id: a\n", "1: must be a mapping with `segment_id` and `rule`"),
        ("segment_id: a\nrule:\n\tall: []\n", "3: is not valid YAML: "),
        ("", " holds no segment"),
    ],
)
def test_a_file_that_is_not_a_segment_says_why_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    refused_file = refusal(written(tmp_path, text))

    assert refused_file.startswith(message), refused_file
    assert "\n" not in refused_file


def test_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=r"absent.yaml: no such file$"):
        read_documents(tmp_path / "absent.yaml")
    with pytest.raises(FileError, match="is a folder"):
        read_documents(tmp_path)


def test_a_file_of_several_documents_holds_several_segments(tmp_path: Path) -> None:
    first = "segment_id: a\nrule: {trait: p, equals: 1}\n"
    path = written(tmp_path, f"{first}---\nsegment_id: b\nrule: {{trait: q, equals: 2}}\n")

    files = read_segment_files([path], "acme")

    assert [(f.segment_id, f.document.line) for f in files] == [("a", 1), ("b", 4)]
    with pytest.raises(FileError, match="holds 2 segments, not one"):
        segment_from_file(path, "acme")


def test_one_segment_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    text = "segment_id: a\nrule: {trait: p, equals: 1}\n"
    first, second = written(tmp_path, text, "one.yaml"), written(tmp_path, "\n" + text, "two.yaml")

    with pytest.raises(FileError) as refused_file:
        read_segment_files([first, second], "acme")

    assert str(refused_file.value) == f"{second}:2: segment_id: 'a' is also in {first}:1"
