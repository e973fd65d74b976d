"""`engage apply`: create or update segments from the YAML files marketers keep in git.

A file holds `segment_id`, optional `display_name` and `description`, and `rule` in the YAML
rule language (engage_cli/rules_yaml.py). An existing segment is updated, which saves a new
version and re-evaluates its members.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engage import resources
from engage.auth import API_KEY_HEADER
from engage.errors import EngageError
from engage.v1 import segment_pb2, segment_pb2_grpc
from engage_cli.rules_yaml import from_data, load


@dataclass(frozen=True)
class SegmentFile:
    segment_id: str
    segment: segment_pb2.Segment
    # Ids of the segments its rule refers to (`in_segment`).
    references: frozenset[str]


def segment_from_file(path: Path, workspace: str) -> SegmentFile:
    """The segment a YAML file describes; ValueError names what is wrong."""
    try:
        data: Any = load(path.read_text())
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(f"{path}: is not valid YAML: {error}") from None
    if not isinstance(data, dict) or "segment_id" not in data or "rule" not in data:
        raise ValueError(f"{path}: needs `segment_id` and `rule`")
    try:
        rule = from_data(data["rule"], "rule")
    except EngageError as error:
        raise ValueError(f"{path}: {error.message}") from error
    segment_id = str(data["segment_id"])
    segment = segment_pb2.Segment(
        name=resources.name_of("segments", segment_id, workspace),
        display_name=str(data.get("display_name", "")),
        description=str(data.get("description", "")),
        rule=rule,
    )
    return SegmentFile(segment_id, segment, frozenset(referenced_segments(rule)))


def referenced_segments(rule: segment_pb2.Rule) -> Iterator[str]:
    """The ids of the segments `rule` reads (`in_segment`, an id or a resource name)."""
    kind = rule.WhichOneof("kind")
    if kind in ("all", "any"):
        for child in (rule.all if kind == "all" else rule.any).rules:
            yield from referenced_segments(child)
    elif kind == "not":
        yield from referenced_segments(getattr(rule, "not"))
    elif kind == "in_segment":
        reference = rule.in_segment.segment
        name = resources.read_name(reference, "segments")
        yield name.id if name else reference


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
    """Create or update each file's segment (referenced ones first); one line per file.

    ValueError when a file is refused, by its shape here or by the service's validation.
    """
    metadata = ((API_KEY_HEADER, api_key),)
    sources = {path: segment_from_file(path, workspace) for path in paths}
    source_of = {file.segment_id: path for path, file in sources.items()}
    files = in_reference_order(list(sources.values()))
    done = []
    async with grpc.aio.insecure_channel(address) as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        for file in files:
            try:
                saved, verb = await _create_or_update(segments, file, workspace, metadata)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                raise _refused(error, source_of[file.segment_id]) from None
            done.append(f"{verb} {saved.name} v{saved.version}: {saved.member_count} members")
    return done


async def _create_or_update(
    segments: segment_pb2_grpc.SegmentServiceStub,
    file: SegmentFile,
    workspace: str,
    metadata: tuple[tuple[str, str], ...],
) -> tuple[segment_pb2.Segment, str]:
    request = segment_pb2.CreateSegmentRequest(
        parent=f"workspaces/{workspace}", segment_id=file.segment_id, segment=file.segment
    )
    try:
        return await segments.CreateSegment(request, metadata=metadata), "created"
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    mask = FieldMask(paths=["display_name", "description", "rule"])
    update = segment_pb2.UpdateSegmentRequest(segment=file.segment, update_mask=mask)
    return await segments.UpdateSegment(update, metadata=metadata), "updated"


def _refused(error: grpc.aio.AioRpcError, source: Path) -> ValueError:
    """The service's INVALID_ARGUMENT in the file's words: the file is the segment, so the
    field `segment.rule.…` is the file's `rule.…`, as in the errors of `segment_from_file`."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request) and bad_request.field_violations:
            violation = bad_request.field_violations[0]
            field = violation.field.removeprefix("segment.")
            description = violation.description.removeprefix(f"{violation.field}: ")
            return ValueError(f"{source}: {field}: {description}")
    return ValueError(f"{source}: {error.details()}")
