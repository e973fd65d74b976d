"""`engage apply`: create or update segments from the YAML files marketers keep in git.

A file holds `segment_id`, optional `display_name` and `description`, and `rule` in the YAML
rule language (services/segments/rules_yaml.py). An existing segment is updated, which saves
a new version and re-evaluates its members.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.field_mask_pb2 import FieldMask

from engage.auth import API_KEY_HEADER
from engage.errors import EngageError
from engage.v1 import segment_pb2, segment_pb2_grpc
from services.segments.rules import dependencies
from services.segments.rules_proto import to_proto
from services.segments.rules_yaml import from_data


@dataclass(frozen=True)
class SegmentFile:
    segment_id: str
    segment: segment_pb2.Segment
    # Ids of the segments its rule refers to (`in_segment`).
    references: frozenset[str]


def segment_from_file(path: Path, workspace: str) -> SegmentFile:
    """The segment a YAML file describes; ValueError names what is wrong."""
    data: Any = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "segment_id" not in data or "rule" not in data:
        raise ValueError(f"{path}: needs `segment_id` and `rule`")
    try:
        rule = from_data(data["rule"], "rule")
    except EngageError as error:
        raise ValueError(f"{path}: {error.message}") from error
    segment_id = str(data["segment_id"])
    segment = segment_pb2.Segment(
        name=f"workspaces/{workspace}/segments/{segment_id}",
        display_name=str(data.get("display_name", "")),
        description=str(data.get("description", "")),
        rule=to_proto(rule),
    )
    return SegmentFile(segment_id, segment, dependencies(rule).segments)


def in_reference_order(files: Sequence[SegmentFile]) -> list[SegmentFile]:
    """Referenced segments first, so that every reference exists when it is applied."""
    applying = {file.segment_id for file in files}
    ordered: list[SegmentFile] = []
    placed: set[str] = set()
    pending = list(files)
    while pending:
        ready = [file for file in pending if file.references & applying <= placed]
        if not ready:
            cycle = ", ".join(sorted(file.segment_id for file in pending))
            raise ValueError(f"segments refer to each other in a cycle: {cycle}")
        ordered += ready
        placed |= {file.segment_id for file in ready}
        pending = [file for file in pending if file not in ready]
    return ordered


async def apply_segments(
    paths: Sequence[Path], address: str, api_key: str, workspace: str
) -> list[str]:
    """Create or update each file's segment (referenced ones first); one line per file."""
    metadata = ((API_KEY_HEADER, api_key),)
    done = []
    async with grpc.aio.insecure_channel(address) as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        files = in_reference_order([segment_from_file(path, workspace) for path in paths])
        for file in files:
            segment = file.segment
            request = segment_pb2.CreateSegmentRequest(
                parent=f"workspaces/{workspace}", segment_id=file.segment_id, segment=segment
            )
            try:
                saved = await segments.CreateSegment(request, metadata=metadata)
                verb = "created"
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                mask = FieldMask(paths=["display_name", "description", "rule"])
                update = segment_pb2.UpdateSegmentRequest(segment=segment, update_mask=mask)
                saved = await segments.UpdateSegment(update, metadata=metadata)
                verb = "updated"
            done.append(f"{verb} {saved.name} v{saved.version}: {saved.member_count} members")
    return done
