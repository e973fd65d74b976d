"""`engage apply` applies referenced segments first and refuses a cycle."""

from pathlib import Path

import pytest

from engage.v1 import segment_pb2
from engage_cli.apply import SegmentFile, in_reference_order
from engage_cli.documents import Document


def file(segment_id: str, *references: str) -> SegmentFile:
    written = Document(Path(f"{segment_id}.yaml"), {}, 1, {})
    return SegmentFile(segment_id, segment_pb2.Segment(), frozenset(references), written)


def test_referenced_segments_come_first_and_outside_references_do_not_block() -> None:
    files = [file("control", "unpaid"), file("unpaid", "prescribed"), file("prescribed", "live")]

    ordered = in_reference_order(files)

    assert [f.segment_id for f in ordered] == ["prescribed", "unpaid", "control"]


def test_a_reference_cycle_is_refused_naming_the_segments() -> None:
    with pytest.raises(ValueError, match="cycle: a, b"):
        in_reference_order([file("a", "b"), file("b", "a"), file("c")])
