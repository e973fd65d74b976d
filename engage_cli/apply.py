"""`engage apply`: create or update segments, journeys and campaigns from the YAML files
marketers keep in git.

A file holds one of them per YAML document. A segment has `segment_id`, optional
`display_name` and `description`, and `rule` in the YAML rule language
(engage_cli/rules_yaml.py); any other key is refused. Journeys (`journey_id`) and campaigns
(`campaign_id`) are read by engage_cli/definitions.py and applied after the segments they
name. A file that is already live changes nothing (the service saves no version); one that
differs is saved as a new version (a segment's members re-evaluated). With `dry_run`, the
service validates each file and answers what it would save, and nothing is touched.

Every mistake, found here or by the service, is named by file, line and the key as written.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from engage import resources
from engage.errors import InvalidArgument
from engage.v1 import segment_pb2, segment_pb2_grpc
from engage_cli.client import Client, field_violation
from engage_cli.definitions import READERS, Definition, is_campaign, is_journey
from engage_cli.documents import Document, FileError, KeyPath, check_keys, read_documents
from engage_cli.rule_paths import parse_fields, rule_keys
from engage_cli.rules_yaml import from_data

FILE_KEYS = ("segment_id", "display_name", "description", "rule")
_UPDATED_FIELDS = FieldMask(paths=["display_name", "description", "rule"])


@dataclass(frozen=True)
class SegmentFile:
    segment_id: str
    segment: segment_pb2.Segment
    # Ids of the segments its rule refers to (`in_segment`).
    references: frozenset[str]
    # Where it was written, to name file and line when the service refuses it.
    document: Document


@dataclass(frozen=True)
class Applied:
    """What applying one file did (or, in a dry run, would do)."""

    file: SegmentFile
    verb: str  # created, updated or unchanged
    before: segment_pb2.Segment | None
    after: segment_pb2.Segment
    # False when a dry run could not ask the service (it refers to a segment not created yet).
    validated: bool = True


def read_segment_files(paths: Sequence[Path], workspace: str) -> list[SegmentFile]:
    """Every segment the files describe; FileError names the first mistake."""
    segments, others = read_files(paths, workspace)
    if others:
        raise others[0].document.error((), "is not a segment")
    return segments


def read_files(paths: Sequence[Path], workspace: str) -> tuple[list[SegmentFile], list[Definition]]:
    """Every segment, journey and campaign the files describe (a document is a journey with a
    `journey_id`, a campaign with a `campaign_id`, else a segment); FileError names the first
    mistake."""
    segments: list[SegmentFile] = []
    definitions: list[Definition] = []
    seen: dict[tuple[str, str], Document] = {}
    for path in paths:
        documents = read_documents(path)
        if not documents:
            raise FileError(path, "holds no segment, journey or campaign")
        for document in documents:
            kind = _kind_of(document.data)
            if kind == "segment":
                segment = segment_from_document(document, workspace)
                key, identity = (kind, segment.segment_id), ("segment_id",)
                segments.append(segment)
            else:
                definition = READERS[kind](document, workspace)
                key, identity = (kind, definition.id), (f"{kind}_id",)
                definitions.append(definition)
            if key in seen:
                first = seen[key]
                where = f"{first.file}:{first.line_of(identity)}"
                raise document.error(identity, f"{key[1]!r} is also in {where}")
            seen[key] = document
    return segments, definitions


def _kind_of(data: object) -> str:
    if is_journey(data):
        return "journey"
    if is_campaign(data):
        return "campaign"
    return "segment"


def segment_from_file(path: Path, workspace: str) -> SegmentFile:
    """The segment of a one-segment file."""
    documents = read_documents(path)
    if len(documents) != 1:
        raise FileError(path, f"holds {len(documents)} segments, not one")
    return segment_from_document(documents[0], workspace)


def segment_from_document(document: Document, workspace: str) -> SegmentFile:
    data: Any = document.data
    if not isinstance(data, dict):
        raise document.error((), "must be a mapping with `segment_id` and `rule`")
    check_keys(document, data, (), FILE_KEYS)
    for key in ("segment_id", "rule"):
        if key not in data:
            raise document.error((), f"needs `{key}`")
    for key in ("segment_id", "display_name", "description"):
        if key in data and not isinstance(data[key], str):
            raise document.error((key,), "must be text")
    try:
        rule = from_data(data["rule"], "rule")
    except InvalidArgument as error:
        raise refused(document, error.field, error.description) from None
    segment = segment_pb2.Segment(
        name=resources.name_of("segments", data["segment_id"], workspace),
        display_name=data.get("display_name", ""),
        description=data.get("description", ""),
        rule=rule,
    )
    references = frozenset(referenced_segments(rule))
    return SegmentFile(data["segment_id"], segment, references, document)


def refused(document: Document, field: str, description: str) -> FileError:
    """A mistake named by its proto field path (`segment.rule.all.rules[1].trait.value`), as
    the key the file wrote (`rule.all[1].equals`) and its line."""
    fields = parse_fields(field.removeprefix("segment."))
    head = fields[0][0] if fields else ""
    key: KeyPath = ()
    if head == "rule":
        key = ("rule", *rule_keys(document.data.get("rule"), fields[1:]))
    elif head in ("segment_id", "name"):
        key = ("segment_id",)
    elif head in FILE_KEYS:
        key = (head,)
    return document.error(key, description)


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
    files: Sequence[SegmentFile],
    client: Client,
    dry_run: bool = False,
    done: Callable[[Applied], None] = lambda _: None,
) -> list[Applied]:
    """Create, update or leave each file's segment (referenced ones first), calling `done`
    after each. FileError when the service refuses a file's content."""
    results: list[Applied] = []
    created: set[str] = set()
    async with client.channel() as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        for file in in_reference_order(files):
            try:
                if dry_run and file.references & created:
                    result = await _unvalidated(segments, file, client)
                else:
                    result = await _apply(segments, file, client, dry_run)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                raise _refused_by_service(error, file.document) from None
            if result.verb == "created":
                created.add(file.segment_id)
            results.append(result)
            done(result)
    return results


async def _apply(
    segments: segment_pb2_grpc.SegmentServiceStub, file: SegmentFile, client: Client, dry: bool
) -> Applied:
    before = await _current(segments, file, client)
    if before is None:
        request = segment_pb2.CreateSegmentRequest(
            parent=f"workspaces/{client.workspace}",
            segment_id=file.segment_id,
            segment=file.segment,
            validate_only=dry,
        )
        return Applied(file, "created", None, await segments.CreateSegment(request, **client.call))
    update = segment_pb2.UpdateSegmentRequest(
        segment=file.segment, update_mask=_UPDATED_FIELDS, validate_only=dry
    )
    after = await segments.UpdateSegment(update, **client.call)
    return Applied(
        file, "unchanged" if after.version == before.version else "updated", before, after
    )


async def _unvalidated(
    segments: segment_pb2_grpc.SegmentServiceStub, file: SegmentFile, client: Client
) -> Applied:
    """A dry run of a file that reads a segment this run would create: the service cannot
    validate it before that segment exists, so the file's own content is shown."""
    before = await _current(segments, file, client)
    after = segment_pb2.Segment()
    after.CopyFrom(file.segment)
    after.version = before.version + 1 if before else 1
    verb = "created" if before is None else "updated"
    return Applied(file, verb, before, after, validated=False)


async def _current(
    segments: segment_pb2_grpc.SegmentServiceStub, file: SegmentFile, client: Client
) -> segment_pb2.Segment | None:
    try:
        request = segment_pb2.GetSegmentRequest(name=file.segment.name)
        found: segment_pb2.Segment = await segments.GetSegment(request, **client.call)
        return found
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None


def _refused_by_service(error: grpc.aio.AioRpcError, document: Document) -> FileError:
    """The service's INVALID_ARGUMENT, pointed at the key and line of the file."""
    violation = field_violation(error)
    if violation is None:
        return document.error((), error.details() or "refused")
    return refused(document, *violation)
