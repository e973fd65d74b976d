"""`engage export segments`: the live segments as the YAML files `engage apply` reads.

What a marketer gets back is what they would have written: applying an exported file again
changes nothing. `engage export members` writes a segment's members as CSV.
"""

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from engage import resources
from engage.v1 import profile_pb2, profile_pb2_grpc, segment_pb2, segment_pb2_grpc
from engage_cli.client import Client
from engage_cli.rules_yaml import dump, to_data

# Profiles per ListProfiles page of a member export: the service's largest page.
MEMBERS_PAGE = 1000


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
    client: Client, segment_ids: Sequence[str] = ()
) -> list[segment_pb2.Segment]:
    """The named segments, or every segment of the workspace when none is named."""
    async with client.channel() as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        if segment_ids:
            return [
                await segments.GetSegment(
                    segment_pb2.GetSegmentRequest(
                        name=resources.name_of("segments", segment_id, client.workspace)
                    ),
                    **client.call,
                )
                for segment_id in segment_ids
            ]
        found: list[segment_pb2.Segment] = []
        token = ""
        while True:
            page = await segments.ListSegments(
                segment_pb2.ListSegmentsRequest(parent=client.parent, page_token=token),
                **client.call,
            )
            found += page.segments
            token = page.next_page_token
            if not token:
                return found


async def export_members(
    client: Client, segment_id: str, out: TextIO, progress: Callable[[int, int], None]
) -> int:
    """Write the segment's members to `out` as CSV (profile, user_id, email), calling
    `progress(written, expected)` after each page; the number written."""
    name = resources.name_of("segments", segment_id, client.workspace)
    rows = csv.writer(out, lineterminator="\n")
    rows.writerow(["profile", "user_id", "email"])
    written = 0
    async with client.channel() as channel:
        segment = await segment_pb2_grpc.SegmentServiceStub(channel).GetSegment(
            segment_pb2.GetSegmentRequest(name=name), **client.call
        )
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        request = profile_pb2.ListProfilesRequest(
            parent=client.parent, page_size=MEMBERS_PAGE, filter=f'segment = "{name}"'
        )
        while True:
            page = await profiles.ListProfiles(request, **client.call)
            for profile in page.profiles:
                email = profile.traits.fields.get("email")
                profile_id = profile.name.rsplit("/", 1)[-1]
                rows.writerow([profile_id, profile.user_id, email.string_value if email else ""])
            written += len(page.profiles)
            progress(written, max(segment.member_count, written))
            if not page.next_page_token:
                return written
            request.page_token = page.next_page_token


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
