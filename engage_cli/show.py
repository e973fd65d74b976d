"""Reading back what is live: `engage get segments|journeys|campaigns`, `engage describe
segment|journey|campaign ID` and `engage get profile USER_ID`. Each fetches plain records
(dicts of JSON values) that `-o json` and `-o yaml` print as they are, and that the table view
lays out for people.
"""

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from engage import resources
from engage.v1 import (
    campaign_pb2,
    campaign_pb2_grpc,
    common_pb2,
    journey_pb2,
    journey_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
)
from engage_cli.client import Client
from engage_cli.definitions import written_form
from engage_cli.export import fetch_segments
from engage_cli.rules_yaml import to_data

SAMPLE_SIZE = 10
PROFILE_KEYS = {
    "user_id": "user_id",
    "anonymous_id": "anonymous_id",
    "email": "email",
    "profile": "name",
}


async def segment_records(client: Client) -> list[dict[str, Any]]:
    """Every segment of the workspace: id, names, version, member count, last update."""
    return [_segment_record(segment) for segment in await fetch_segments(client)]


async def describe_segment(client: Client, segment_id: str) -> dict[str, Any]:
    """A segment's definition (its rule as YAML data), version, member count and a sample of
    its members (profile, user_id, email)."""
    name = resources.name_of("segments", segment_id, client.workspace)
    async with client.channel() as channel:
        segment = await segment_pb2_grpc.SegmentServiceStub(channel).GetSegment(
            segment_pb2.GetSegmentRequest(name=name), **client.call
        )
        sample = await profile_pb2_grpc.ProfileServiceStub(channel).ListProfiles(
            profile_pb2.ListProfilesRequest(
                parent=client.parent, page_size=SAMPLE_SIZE, filter=f'segment = "{name}"'
            ),
            **client.call,
        )
    record = _segment_record(segment)
    record["rule"] = to_data(segment.rule)
    record["sample"] = [
        {
            "profile": _id(profile.name),
            "user_id": profile.user_id,
            "email": _struct_data(profile.traits).get("email", ""),
        }
        for profile in sample.profiles
    ]
    return record


async def profile_record(client: Client, key: str, value: str) -> dict[str, Any]:
    """A profile found by `key` (user_id, anonymous_id, email or profile): identities, traits,
    the segments it is in, and its latest events."""
    field = PROFILE_KEYS[key]
    if field == "name":
        value = resources.name_of("profiles", value, client.workspace)
    request = profile_pb2.GetProfileRequest(view=profile_pb2.PROFILE_VIEW_FULL, **{field: value})
    async with client.channel() as channel:
        profile = await profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            request, **client.call
        )
    return {
        "profile": _id(profile.name),
        "user_id": profile.user_id,
        "anonymous_ids": list(profile.anonymous_ids),
        "time_zone": profile.time_zone,
        "locale": profile.locale,
        "first_seen": _time(profile.first_seen_time),
        "last_seen": _time(profile.last_seen_time),
        "traits": _struct_data(profile.traits),
        "memberships": [
            {"segment": _id(m.segment), "entered": _time(m.entered_time)}
            for m in profile.memberships
        ],
        "recent_events": [_event_record(event) for event in profile.recent_events],
    }


def _segment_record(segment: segment_pb2.Segment) -> dict[str, Any]:
    return {
        "segment_id": _id(segment.name),
        "display_name": segment.display_name,
        "description": segment.description,
        "version": segment.version,
        "member_count": segment.member_count,
        "update_time": _time(segment.update_time),
    }


def _event_record(event: common_pb2.Event) -> dict[str, Any]:
    kind = common_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
    return {
        "time": _time(event.timestamp),
        "type": kind,
        "event": event.event,
        "properties": _struct_data(event.properties),
    }


def _struct_data(struct: struct_pb2.Struct) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(struct)
    return data


def _time(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(UTC).isoformat().replace("+00:00", "Z")


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def compact(values: Sequence[Any] | dict[str, Any]) -> str:
    """A value as one short line of JSON, for a table cell."""
    return json.dumps(values, ensure_ascii=False, separators=(", ", ": "))


async def journey_records(client: Client) -> list[dict[str, Any]]:
    """Every journey of the workspace: id, name, state, version, last update."""
    async with client.channel("scheduler") as channel:
        stub = journey_pb2_grpc.JourneyServiceStub(channel)
        listed = await _all_pages(
            lambda token: stub.ListJourneys(
                journey_pb2.ListJourneysRequest(parent=client.parent, page_token=token),
                **client.call,
            ),
            "journeys",
        )
    return [_definition_record(journey) for journey in listed]


async def describe_journey(client: Client, journey_id: str) -> dict[str, Any]:
    """A journey as its file would write it, with its enrollments by status and step."""
    name = resources.name_of("journeys", journey_id, client.workspace)
    async with client.channel("scheduler") as channel:
        journey = await journey_pb2_grpc.JourneyServiceStub(channel).GetJourney(
            journey_pb2.GetJourneyRequest(name=name), **client.call
        )
    record = _definition_record(journey)
    record["definition"] = written_form(journey)
    record["counts"] = json_format.MessageToDict(journey.counts)
    return record


async def campaign_records(client: Client) -> list[dict[str, Any]]:
    """Every campaign of the workspace: id, name, state, last update."""
    async with client.channel("scheduler") as channel:
        stub = campaign_pb2_grpc.CampaignServiceStub(channel)
        listed = await _all_pages(
            lambda token: stub.ListCampaigns(
                campaign_pb2.ListCampaignsRequest(parent=client.parent, page_token=token),
                **client.call,
            ),
            "campaigns",
        )
    return [_definition_record(campaign) for campaign in listed]


async def describe_campaign(client: Client, campaign_id: str) -> dict[str, Any]:
    """A campaign as its file would write it, with its progress."""
    name = resources.name_of("campaigns", campaign_id, client.workspace)
    async with client.channel("scheduler") as channel:
        campaign = await campaign_pb2_grpc.CampaignServiceStub(channel).GetCampaign(
            campaign_pb2.GetCampaignRequest(name=name), **client.call
        )
    record = _definition_record(campaign)
    record["definition"] = written_form(campaign)
    record["progress"] = json_format.MessageToDict(campaign.progress)
    return record


async def _all_pages(page: Callable[[str], Awaitable[Any]], field: str) -> list[Any]:
    found: list[Any] = []
    token = ""
    while True:
        answer = await page(token)
        found += list(getattr(answer, field))
        token = answer.next_page_token
        if not token:
            return found


def _definition_record(message: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": _id(message.name),
        "display_name": message.display_name,
        "state": type(message).State.Name(message.state).removeprefix("STATE_").lower(),
        "update_time": _time(message.update_time),
    }
    if "version" in message.DESCRIPTOR.fields_by_name:
        record["version"] = message.version
    return record
