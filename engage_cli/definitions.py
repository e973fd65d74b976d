"""Journeys and campaigns as marketers write them in YAML, for `engage apply`.

The keys are the contract's fields (protos/engage/v1/journey.proto, campaign.proto), with the
shorthands a person would write:
- durations as `30s`, `15m`, `1h`, `7d` (`wait.duration`, `wait.event.timeout`,
  `reentry.cooldown`, `winner_rule.after`, `goal.within`);
- times of day as `"09:00"` (`wait.time_of_day`, `wait.trait_date.at`, `local_send_time`);
- lower-case enum words: `channel: email`, `state: active`, `reentry.mode: one_at_a_time`,
  `trigger.segment.change: exited`, `winner_rule.metric: click_rate`;
- templates and segments by id (`template: welcome`, `segment: buyers`), or by full name;
- `goal: payment_completed` for `goal: {event: payment_completed}` (a journey's or a
  campaign's); `trigger: {event: name}`
  and `trigger: {segment: id, change: exited}` (`change` defaults to entered);
- `trigger: {event: name, where: [{property: route, equals: NRT-HNL}]}`, and a branch path's
  `rule:`, as segment rules write them (engage_cli/rules_yaml.py).
A mistake is named by file, line and key; so is one the service finds (it answers with the
field's path, which mirrors the keys).
"""

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from engage import resources
from engage.errors import InvalidArgument
from engage.v1 import campaign_pb2, campaign_pb2_grpc, journey_pb2, journey_pb2_grpc
from engage_cli.client import Client, field_violation
from engage_cli.documents import Document, FileError, KeyPath, check_keys
from engage_cli.rule_paths import parse_fields, rule_keys
from engage_cli.rules_yaml import from_data, property_condition

# What the service answers but a file does not decide.
OUTPUT_ONLY = (
    "name",
    "version",
    "create_time",
    "update_time",
    "progress",
    "runs",
    "winner",
    "counts",
)


def _written_fields(message: type[Message]) -> tuple[str, ...]:
    return tuple(f.name for f in message.DESCRIPTOR.fields if f.name not in OUTPUT_ONLY)


JOURNEY_FIELDS = _written_fields(journey_pb2.Journey)
CAMPAIGN_FIELDS = _written_fields(campaign_pb2.Campaign)
JOURNEY_KEYS = ("journey_id", *JOURNEY_FIELDS)
CAMPAIGN_KEYS = ("campaign_id", *CAMPAIGN_FIELDS)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DURATION_KEYS = frozenset({"duration", "timeout", "cooldown", "after", "within"})
_TIME_KEYS = frozenset({"time_of_day", "at", "local_send_time"})
_ENUM_PREFIXES = {
    "channel": "CHANNEL_",
    "state": "STATE_",
    "mode": "MODE_",
    "change": "CHANGE_",
    "metric": "METRIC_",
}
_REFERENCES = {"template": "templates", "segment": "segments"}


@dataclass(frozen=True)
class Definition:
    """One journey or campaign from a file."""

    kind: str  # "journey" or "campaign"
    id: str
    message: Message
    document: Document


def is_journey(data: object) -> bool:
    return isinstance(data, dict) and "journey_id" in data


def is_campaign(data: object) -> bool:
    return isinstance(data, dict) and "campaign_id" in data


def journey_from_document(document: Document, workspace: str) -> Definition:
    data = _mapping(document, JOURNEY_KEYS, "journey_id")
    body = {k: v for k, v in data.items() if k != "journey_id"}
    if isinstance(body.get("goal"), str):
        body["goal"] = {"event": body["goal"]}
    body["trigger"] = _trigger(document, body.get("trigger"))
    journey = journey_pb2.Journey()
    _parse_into(document, body, journey, workspace)
    journey.name = resources.name_of("journeys", data["journey_id"], workspace)
    return Definition("journey", data["journey_id"], journey, document)


def campaign_from_document(document: Document, workspace: str) -> Definition:
    data = _mapping(document, CAMPAIGN_KEYS, "campaign_id")
    body = {k: v for k, v in data.items() if k != "campaign_id"}
    if isinstance(body.get("goal"), str):
        body["goal"] = {"event": body["goal"]}
    campaign = campaign_pb2.Campaign()
    _parse_into(document, body, campaign, workspace)
    campaign.name = resources.name_of("campaigns", data["campaign_id"], workspace)
    return Definition("campaign", data["campaign_id"], campaign, document)


def _trigger(document: Document, trigger: Any) -> Any:
    """`{event: name, where: [...]}` and `{segment: id, change: exited}` as the contract writes
    them."""
    if not isinstance(trigger, dict):
        return trigger
    if isinstance(trigger.get("event"), str):
        event = {"event": trigger["event"]}
        if "where" in trigger:
            event["where"] = _where(document, trigger["where"])
        rest = {key: value for key, value in trigger.items() if key != "where"}
        return {**rest, "event": event}
    if isinstance(trigger.get("segment"), str):
        segment = {"segment": trigger["segment"]}
        if "change" in trigger:
            segment["change"] = trigger["change"]
        return {"segment": segment}
    return trigger


def _where(document: Document, conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise document.error(("trigger", "where"), "must be a list")
    try:
        return [
            json_format.MessageToDict(
                property_condition(condition, f"trigger.where[{index}]"),
                preserving_proto_field_name=True,
            )
            for index, condition in enumerate(conditions)
        ]
    except InvalidArgument as error:
        raise _file_error(document, error.field, error.description) from None


def _rule(document: Document, path: KeyPath, data: dict[str, Any]) -> dict[str, Any]:
    """A branch path's rule, written as segment rules are (engage_cli/rules_yaml.py)."""
    try:
        rule = from_data(data, "rule")
    except InvalidArgument as error:
        fields = parse_fields(error.field)[1:]
        raise document.error((*path, *rule_keys(data, fields)), error.description) from None
    return json_format.MessageToDict(rule, preserving_proto_field_name=True)


def _mapping(document: Document, keys: tuple[str, ...], id_key: str) -> dict[str, Any]:
    data: Any = document.data
    check_keys(document, data, (), keys)
    if not isinstance(data[id_key], str) or not resources.is_valid_id(data[id_key]):
        raise document.error((id_key,), "must be 1-63 lower-case letters, digits or '-'")
    return dict(data)


def _parse_into(document: Document, body: dict[str, Any], into: Message, workspace: str) -> None:
    expanded = _expand(document, body, (), workspace)
    try:
        json_format.ParseDict(expanded, into)
    except json_format.ParseError as error:
        raise document.error((), f"not a valid {type(into).__name__}: {error}") from None


def _expand(document: Document, value: Any, path: KeyPath, workspace: str) -> Any:
    """The contract's JSON form of what the file wrote (the shorthands above expanded)."""
    if isinstance(value, dict) and path and path[-1] == "rule":
        return _rule(document, path, value)
    if isinstance(value, dict):
        return {
            key: _expand(document, item, (*path, key), workspace) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand(document, item, (*path, i), workspace) for i, item in enumerate(value)]
    key = path[-1] if path and isinstance(path[-1], str) else ""
    if key in _DURATION_KEYS and isinstance(value, str):
        return _duration(document, path, value)
    if key in _TIME_KEYS and isinstance(value, str):
        return _time_of_day(document, path, value)
    if key in _ENUM_PREFIXES and isinstance(value, str) and value.islower():
        return _ENUM_PREFIXES[key] + value.upper()
    if key in _REFERENCES and isinstance(value, str) and "/" not in value:
        return resources.name_of(_REFERENCES[key], value, workspace)
    return value


def _duration(document: Document, path: KeyPath, text: str) -> str:
    found = _DURATION.match(text.strip())
    if found is None:
        raise document.error(path, "must be a duration like 30s, 15m, 1h or 7d")
    seconds = float(found.group(1)) * _SECONDS[found.group(2)]
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _time_of_day(document: Document, path: KeyPath, text: str) -> dict[str, int]:
    found = _TIME.match(text.strip())
    if found is None:
        raise document.error(path, 'must be a time of day like "09:00"')
    return {"hours": int(found.group(1)), "minutes": int(found.group(2))}


def refused(definition: Definition, field: str, description: str) -> FileError:
    """The service's field path (`journey.steps[1].wait.duration`) as the file's key."""
    return _file_error(definition.document, field.removeprefix(f"{definition.kind}."), description)


def _file_error(document: Document, field: str, description: str) -> FileError:
    """A field path (`steps[1].wait.duration`) as the file's key, or as much of it as the
    file writes."""
    keys: list[str | int] = []
    for name, index in parse_fields(field):
        keys.append(name)
        if index is not None:
            keys.append(index)
    return document.error(_existing_prefix(document.data, tuple(keys)), description)


def _existing_prefix(data: Any, path: KeyPath) -> KeyPath:
    """The longest start of `path` the file has (a shorthand writes fewer keys)."""
    found: list[str | int] = []
    for key in path:
        present = key in data if isinstance(data, dict) else _indexes(data, key)
        if not present:
            break
        data = data[key]
        found.append(key)
    return tuple(found)


def _indexes(data: Any, key: str | int) -> bool:
    return isinstance(data, list) and isinstance(key, int) and key < len(data)


READERS: dict[str, Callable[[Document, str], Definition]] = {
    "journey": journey_from_document,
    "campaign": campaign_from_document,
}


@dataclass(frozen=True)
class AppliedDefinition:
    """What applying one journey or campaign did (or, in a dry run, would do)."""

    definition: Definition
    verb: str  # created, updated or unchanged
    before: Message | None
    after: Message


_JOURNEY_PATHS = FieldMask(paths=list(JOURNEY_FIELDS))
_CAMPAIGN_PATHS = FieldMask(paths=list(CAMPAIGN_FIELDS))


async def apply_definitions(
    definitions: Sequence[Definition],
    client: Client,
    dry_run: bool = False,
    done: Callable[[AppliedDefinition], None] = lambda _: None,
) -> list[AppliedDefinition]:
    """Create, update or leave each journey and campaign, calling `done` after each;
    FileError when the service refuses a file's content."""
    results = []
    async with client.channel("scheduler") as channel:
        journeys = journey_pb2_grpc.JourneyServiceStub(channel)
        campaigns = campaign_pb2_grpc.CampaignServiceStub(channel)
        for definition in definitions:
            try:
                if definition.kind == "journey":
                    result = await _apply_journey(journeys, definition, client, dry_run)
                else:
                    result = await _apply_campaign(campaigns, definition, client, dry_run)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                raise _refused_by_service(error, definition) from None
            results.append(result)
            done(result)
    return results


async def _apply_journey(
    stub: journey_pb2_grpc.JourneyServiceStub, definition: Definition, client: Client, dry: bool
) -> AppliedDefinition:
    journey = definition.message
    assert isinstance(journey, journey_pb2.Journey)
    before = await _current(
        stub.GetJourney(journey_pb2.GetJourneyRequest(name=journey.name), **client.call)
    )
    if before is None:
        request = journey_pb2.CreateJourneyRequest(
            parent=client.parent, journey_id=definition.id, journey=journey, validate_only=dry
        )
        return AppliedDefinition(
            definition, "created", None, await stub.CreateJourney(request, **client.call)
        )
    update = journey_pb2.UpdateJourneyRequest(
        journey=journey, update_mask=_JOURNEY_PATHS, validate_only=dry
    )
    after = await stub.UpdateJourney(update, **client.call)
    return AppliedDefinition(definition, _verb(before, after), before, after)


async def _apply_campaign(
    stub: campaign_pb2_grpc.CampaignServiceStub, definition: Definition, client: Client, dry: bool
) -> AppliedDefinition:
    campaign = definition.message
    assert isinstance(campaign, campaign_pb2.Campaign)
    before = await _current(
        stub.GetCampaign(campaign_pb2.GetCampaignRequest(name=campaign.name), **client.call)
    )
    if before is None:
        request = campaign_pb2.CreateCampaignRequest(
            parent=client.parent, campaign_id=definition.id, campaign=campaign, validate_only=dry
        )
        return AppliedDefinition(
            definition, "created", None, await stub.CreateCampaign(request, **client.call)
        )
    if _written(before) == _written(campaign):
        return AppliedDefinition(definition, "unchanged", before, before)
    update = campaign_pb2.UpdateCampaignRequest(
        campaign=campaign, update_mask=_CAMPAIGN_PATHS, validate_only=dry
    )
    after = await stub.UpdateCampaign(update, **client.call)
    return AppliedDefinition(definition, "updated", before, after)


async def _current(call: Awaitable[Message]) -> Message | None:
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None


def _verb(before: Message, after: Message) -> str:
    return "unchanged" if _written(before) == _written(after) else "updated"


def written_form(message: Message) -> dict[str, Any]:
    """What a file decides of a journey or campaign: output-only fields left out."""
    return _written(message)


def _written(message: Message) -> dict[str, Any]:
    kept = type(message)()
    kept.CopyFrom(message)
    for field in OUTPUT_ONLY[1:]:
        if field in kept.DESCRIPTOR.fields_by_name:
            kept.ClearField(field)
    return json_format.MessageToDict(kept)


def _refused_by_service(error: grpc.aio.AioRpcError, definition: Definition) -> FileError:
    violation = field_violation(error)
    if violation is None:
        return definition.document.error((), error.details() or "refused")
    return refused(definition, *violation)
