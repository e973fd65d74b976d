"""`engage export segments`: the live segments as the YAML files `engage apply` reads.

What a marketer gets back is what they would have written: applying an exported file again
changes nothing but the version.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from engage import resources
from engage.auth import API_KEY_HEADER
from engage.v1 import segment_pb2, segment_pb2_grpc
from engage_cli.rules_yaml import dump, to_data


def segment_yaml(segment: segment_pb2.Segment) -> str:
    """The segment file of `segment`: `segment_id`, its names, and `rule` in YAML."""
    document: dict[str, Any] = {"segment_id": _segment_id(segment)}
    if segment.display_name:
        document["display_name"] = segment.display_name
    if segment.description:
        document["description"] = segment.description
    document["rule"] = to_data(segment.rule)
    return dump(document)


async def fetch_segments(
    address: str, api_key: str, workspace: str, segment_ids: Sequence[str] = ()
) -> list[segment_pb2.Segment]:
    """The named segments, or every segment of the workspace when none is named."""
    metadata = ((API_KEY_HEADER, api_key),)
    parent = f"workspaces/{workspace}"
    async with grpc.aio.insecure_channel(address) as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        if segment_ids:
            return [
                await segments.GetSegment(
                    segment_pb2.GetSegmentRequest(
                        name=resources.name_of("segments", segment_id, workspace)
                    ),
                    metadata=metadata,
                )
                for segment_id in segment_ids
            ]
        found: list[segment_pb2.Segment] = []
        token = ""
        while True:
            page = await segments.ListSegments(
                segment_pb2.ListSegmentsRequest(parent=parent, page_token=token),
                metadata=metadata,
            )
            found += page.segments
            token = page.next_page_token
            if not token:
                return found


def write_segment_files(segments: Sequence[segment_pb2.Segment], folder: Path) -> list[Path]:
    """One `<segment_id>.yaml` per segment in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for segment in segments:
        path = folder / f"{_segment_id(segment)}.yaml"
        path.write_text(segment_yaml(segment))
        written.append(path)
    return written


def _segment_id(segment: segment_pb2.Segment) -> str:
    name = resources.read_name(segment.name, "segments")
    if name is None:
        raise ValueError(f"the service named a segment {segment.name!r}")
    return name.id
