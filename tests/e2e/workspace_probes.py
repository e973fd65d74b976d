"""The probes of the workspace isolation test: what workspace B holds, and for every RPC of every
served service the requests workspace A's key sends about it, with the statuses allowed.

DENIED: a name under B's workspace. HIDDEN: B's ids under A's own names, NOT_FOUND or an answer
holding none of B's data. REFUSED: a reference to B's resource inside A's request body.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct, Value

from engage.resources import name_of
from engage.v1 import (
    campaign_pb2,
    common_pb2,
    ingest_pb2,
    journey_pb2,
    message_pb2,
    profile_pb2,
    reporting_pb2,
    segment_pb2,
    template_pb2,
    workspace_pb2,
)
from tests.harness import OTHER_WORKSPACE_KEY, WORKSPACE

Code = grpc.StatusCode

A = WORKSPACE
B = "globex"
B_KEY = OTHER_WORKSPACE_KEY

# Defined in the contracts, hosted by no process yet (see the README's "What is served").
NOT_SERVED_SERVICES = {"engage.v1.SubscriptionService"}
NOT_SERVED_METHODS = {"engage.v1.MessageService/SendMessage"}

DENIED = frozenset({Code.PERMISSION_DENIED})
HIDDEN = frozenset({Code.NOT_FOUND, Code.OK})
# A reference to B's resource inside A's request body: refused, or harmless.
REFUSED = frozenset({Code.PERMISSION_DENIED, Code.INVALID_ARGUMENT, Code.OK})


@dataclass(frozen=True)
class Held:
    """What workspace B holds, and the strings that would betray it in an answer to A."""

    profile_id: str
    message_id: str
    user_id: str = "hedy-globex"
    anonymous_id: str = "anon-globex-7q"
    email: str = "hedy@globex.example"
    person: str = "Hedy Globex"
    segment_id: str = "globex-customers"
    segment_title: str = "Globex customers only"
    template_id: str = "globex-welcome"
    template_subject: str = "Globex welcome"
    journey_id: str = "globex-welcome"
    journey_title: str = "Globex welcome journey"
    campaign_id: str = "globex-sale"

    def secrets(self) -> list[str]:
        return [
            self.profile_id,
            self.message_id,
            self.user_id,
            self.anonymous_id,
            self.email,
            self.person,
            self.segment_title,
            self.template_subject,
            self.journey_title,
            f"workspaces/{B}",
        ]


class Phase(IntEnum):
    """Reads run before anything A creates could shadow B's ids; ingest (which gives A a
    profile of B's user id) runs last."""

    READ = 0
    CHANGE = 1
    CREATE = 2
    INGEST = 3


@dataclass(frozen=True)
class Probe:
    request: Message | list[Message]  # a list for a client-streaming RPC
    allowed: frozenset[grpc.StatusCode]
    # Extra checks on an OK answer, beyond "none of B's strings": counts must be zero, etc.
    check: Callable[[list[Message]], bool] = field(default=lambda answers: True)


def named(request: Callable[..., Message], theirs: str, ours: str) -> list[Probe]:
    """B's resource by its own name (denied), and by its id under A's name (hidden)."""
    return [Probe(request(name=theirs), DENIED), Probe(request(name=ours), HIDDEN)]


def listed(request: Callable[..., Message]) -> list[Probe]:
    """B's collection (denied), and A's own, which must hold nothing of B's (hidden)."""
    theirs, ours = f"workspaces/{B}", f"workspaces/{A}"
    return [Probe(request(parent=theirs), DENIED), Probe(request(parent=ours), HIDDEN)]


def traits(**values: str) -> Struct:
    struct = Struct()
    struct.update(values)
    return struct


def email_rule(email: str) -> segment_pb2.Rule:
    return segment_pb2.Rule(
        trait=segment_pb2.TraitCondition(
            trait="email", operator=segment_pb2.OPERATOR_EQUALS, value=Value(string_value=email)
        )
    )


def track_event(held: Held, message_id: str) -> common_pb2.Event:
    return common_pb2.Event(
        message_id=message_id,
        type=common_pb2.EVENT_TYPE_TRACK,
        event=message_id,
        user_id=held.user_id,
    )


def no_members(answers: list[Message]) -> bool:
    return all(not getattr(answer, "member_count", 0) for answer in answers)


def not_a_member(answers: list[Message]) -> bool:
    return all(not getattr(answer, "member", False) for answer in answers)


def zero_counts(answers: list[Message]) -> bool:
    def counted(answer: Message) -> bool:
        return any(
            value
            for descriptor, value in answer.ListFields()
            if descriptor.name not in ("name", "channel_deliveries")
            and (not isinstance(value, Message) or counted(value))
        )

    return not any(counted(answer) for answer in answers)


def profile_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("profiles", h.profile_id, A), name_of("profiles", h.profile_id, B)
    get = profile_pb2.GetProfileRequest
    listing = profile_pb2.ListProfilesRequest
    return {
        "GetProfile": (
            Phase.READ,
            [
                *named(get, theirs, ours),
                Probe(get(user_id=h.user_id), HIDDEN),
                Probe(get(anonymous_id=h.anonymous_id), HIDDEN),
                Probe(get(email=h.email), HIDDEN),
            ],
        ),
        "ListProfiles": (
            Phase.READ,
            [
                *listed(listing),
                Probe(listing(parent=f"workspaces/{A}", filter=f'user_id = "{h.user_id}"'), HIDDEN),
                Probe(listing(parent=f"workspaces/{A}", filter=f'email = "{h.email}"'), HIDDEN),
                Probe(
                    listing(parent=f"workspaces/{A}", filter=f'traits.name = "{h.person}"'), HIDDEN
                ),
                Probe(
                    listing(
                        parent=f"workspaces/{A}",
                        filter=f'segment = "{name_of("segments", h.segment_id, A)}"',
                    ),
                    HIDDEN,
                ),
                Probe(
                    listing(
                        parent=f"workspaces/{A}",
                        filter=f'segment = "{name_of("segments", h.segment_id, B)}"',
                    ),
                    REFUSED,
                ),
            ],
        ),
        "ExportProfile": (
            Phase.READ,
            named(profile_pb2.ExportProfileRequest, theirs, ours),
        ),
        "DeleteProfile": (
            Phase.CHANGE,
            named(profile_pb2.DeleteProfileRequest, theirs, ours),
        ),
    }


def segment_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("segments", h.segment_id, A), name_of("segments", h.segment_id, B)
    our_profile = name_of("profiles", h.profile_id, A)
    hijack = segment_pb2.Segment(display_name="hijacked by acme")
    mask = field_mask_pb2.FieldMask(paths=["display_name"])

    def update(segment_name: str) -> segment_pb2.UpdateSegmentRequest:
        segment = segment_pb2.Segment()
        segment.CopyFrom(hijack)
        segment.name = segment_name
        return segment_pb2.UpdateSegmentRequest(segment=segment, update_mask=mask)

    def preview(parent: str, rule: segment_pb2.Rule) -> segment_pb2.PreviewSegmentRequest:
        return segment_pb2.PreviewSegmentRequest(parent=parent, rule=rule, sample_size=10)

    def in_segment(reference: str) -> segment_pb2.Rule:
        return segment_pb2.Rule(in_segment=segment_pb2.SegmentReference(segment=reference))

    create = segment_pb2.CreateSegmentRequest
    return {
        "GetSegment": (
            Phase.READ,
            named(segment_pb2.GetSegmentRequest, theirs, ours),
        ),
        "ListSegments": (
            Phase.READ,
            listed(segment_pb2.ListSegmentsRequest),
        ),
        "PreviewSegment": (
            Phase.READ,
            [
                Probe(preview(f"workspaces/{B}", email_rule(h.email)), DENIED),
                Probe(preview(f"workspaces/{A}", email_rule(h.email)), HIDDEN, no_members),
                # A rule naming a segment A does not have is a bad rule, whoever has that id.
                Probe(preview(f"workspaces/{A}", in_segment(h.segment_id)), REFUSED, no_members),
                Probe(preview(f"workspaces/{A}", in_segment(ours)), REFUSED, no_members),
                Probe(preview(f"workspaces/{A}", in_segment(theirs)), REFUSED, no_members),
            ],
        ),
        "ListSegmentMembers": (
            Phase.READ,
            [
                Probe(segment_pb2.ListSegmentMembersRequest(segment=theirs), DENIED),
                Probe(segment_pb2.ListSegmentMembersRequest(segment=ours), HIDDEN),
            ],
        ),
        "CheckMembership": (
            Phase.READ,
            [
                Probe(
                    segment_pb2.CheckMembershipRequest(
                        segment=theirs, profile=name_of("profiles", h.profile_id, B)
                    ),
                    DENIED,
                ),
                Probe(
                    segment_pb2.CheckMembershipRequest(segment=ours, profile=our_profile),
                    HIDDEN,
                    not_a_member,
                ),
            ],
        ),
        "UpdateSegment": (
            Phase.CHANGE,
            [Probe(update(theirs), DENIED), Probe(update(ours), HIDDEN)],
        ),
        "DeleteSegment": (
            Phase.CHANGE,
            named(segment_pb2.DeleteSegmentRequest, theirs, ours),
        ),
        "CreateSegment": (
            Phase.CREATE,
            [
                Probe(
                    create(
                        parent=f"workspaces/{B}",
                        segment_id="acme-made",
                        segment=segment_pb2.Segment(rule=email_rule(h.email)),
                    ),
                    DENIED,
                ),
                # B's id is free in A: A gets a segment of its own, which B's profile is not in.
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        segment_id=h.segment_id,
                        segment=segment_pb2.Segment(rule=email_rule(h.email)),
                    ),
                    frozenset({Code.OK}),
                    no_members,
                ),
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        segment_id="acme-in-theirs",
                        segment=segment_pb2.Segment(rule=in_segment(theirs)),
                    ),
                    REFUSED,
                    no_members,
                ),
            ],
        ),
    }


def template_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("templates", h.template_id, A), name_of("templates", h.template_id, B)
    content = template_pb2.Template(
        channel=common_pb2.CHANNEL_EMAIL,
        email=template_pb2.EmailContent(subject="Acme hello", text_body="Hello"),
    )

    def update(template_name: str) -> template_pb2.UpdateTemplateRequest:
        template = template_pb2.Template(name=template_name, display_name="hijacked by acme")
        return template_pb2.UpdateTemplateRequest(
            template=template, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        )

    def create(parent: str, template_id: str) -> template_pb2.CreateTemplateRequest:
        return template_pb2.CreateTemplateRequest(
            parent=parent, template_id=template_id, template=content
        )

    render = template_pb2.RenderTemplateRequest
    return {
        "GetTemplate": (
            Phase.READ,
            named(template_pb2.GetTemplateRequest, theirs, ours),
        ),
        "ListTemplates": (
            Phase.READ,
            listed(template_pb2.ListTemplatesRequest),
        ),
        "RenderTemplate": (
            Phase.READ,
            [
                Probe(render(name=theirs, traits=traits(first_name="X")), DENIED),
                Probe(render(name=ours, traits=traits(first_name="X")), HIDDEN),
            ],
        ),
        "UpdateTemplate": (
            Phase.CHANGE,
            [Probe(update(theirs), DENIED), Probe(update(ours), HIDDEN)],
        ),
        "DeleteTemplate": (
            Phase.CHANGE,
            named(template_pb2.DeleteTemplateRequest, theirs, ours),
        ),
        "CreateTemplate": (
            Phase.CREATE,
            [
                Probe(create(f"workspaces/{B}", "acme-made"), DENIED),
                Probe(create(f"workspaces/{A}", h.template_id), frozenset({Code.OK})),
            ],
        ),
    }


def journey_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("journeys", h.journey_id, A), name_of("journeys", h.journey_id, B)

    def draft(template: str) -> journey_pb2.Journey:
        send = journey_pb2.SendStep(channel=common_pb2.CHANNEL_EMAIL, template=template)
        return journey_pb2.Journey(
            state=journey_pb2.Journey.STATE_DRAFT,
            trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event="x")),
            steps=[journey_pb2.JourneyStep(id="only", send=send)],
        )

    def update(journey_name: str) -> journey_pb2.UpdateJourneyRequest:
        journey = journey_pb2.Journey(name=journey_name, display_name="hijacked by acme")
        return journey_pb2.UpdateJourneyRequest(
            journey=journey, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        )

    def simulate(parent: str, **subject: Any) -> journey_pb2.SimulateJourneyRequest:
        request = journey_pb2.SimulateJourneyRequest(parent=parent, **subject)
        if not request.segment:
            request.users.user_ids.append("acme-probe-user")
        return request

    create = journey_pb2.CreateJourneyRequest
    our_template = name_of("templates", h.template_id, A)
    return {
        "GetJourney": (
            Phase.READ,
            named(journey_pb2.GetJourneyRequest, theirs, ours),
        ),
        "ListJourneys": (
            Phase.READ,
            listed(journey_pb2.ListJourneysRequest),
        ),
        "UpdateJourney": (
            Phase.CHANGE,
            [Probe(update(theirs), DENIED), Probe(update(ours), HIDDEN)],
        ),
        "DeleteJourney": (
            Phase.CHANGE,
            named(journey_pb2.DeleteJourneyRequest, theirs, ours),
        ),
        "SimulateJourney": (
            Phase.READ,
            [
                Probe(simulate(f"workspaces/{B}", journey_name=theirs), DENIED),
                Probe(simulate(f"workspaces/{A}", journey_name=theirs), DENIED),
                Probe(simulate(f"workspaces/{A}", journey_name=ours), HIDDEN),
                Probe(
                    simulate(
                        f"workspaces/{A}",
                        journey=draft(our_template),
                        segment=name_of("segments", h.segment_id, B),
                    ),
                    REFUSED,
                ),
            ],
        ),
        "CreateJourney": (
            Phase.CREATE,
            [
                Probe(
                    create(parent=f"workspaces/{B}", journey_id="acme-made", journey=draft("t")),
                    DENIED,
                ),
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        journey_id=h.journey_id,
                        journey=draft(our_template),
                    ),
                    frozenset({Code.OK}),
                ),
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        journey_id="acme-theirs",
                        journey=draft(name_of("templates", h.template_id, B)),
                    ),
                    REFUSED,
                ),
            ],
        ),
    }


def campaign_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("campaigns", h.campaign_id, A), name_of("campaigns", h.campaign_id, B)

    def draft(segment: str) -> campaign_pb2.Campaign:
        return campaign_pb2.Campaign(
            state=campaign_pb2.Campaign.STATE_DRAFT,
            segment=segment,
            channel=common_pb2.CHANNEL_EMAIL,
            template=name_of("templates", h.template_id, A),
        )

    def update(campaign_name: str) -> campaign_pb2.UpdateCampaignRequest:
        campaign = campaign_pb2.Campaign(name=campaign_name, display_name="hijacked by acme")
        return campaign_pb2.UpdateCampaignRequest(
            campaign=campaign, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])
        )

    create = campaign_pb2.CreateCampaignRequest
    our_segment = name_of("segments", h.segment_id, A)
    return {
        "GetCampaign": (Phase.READ, named(campaign_pb2.GetCampaignRequest, theirs, ours)),
        "ListCampaigns": (Phase.READ, listed(campaign_pb2.ListCampaignsRequest)),
        "UpdateCampaign": (
            Phase.CHANGE,
            [Probe(update(theirs), DENIED), Probe(update(ours), HIDDEN)],
        ),
        "CancelCampaign": (
            Phase.CHANGE,
            named(campaign_pb2.CancelCampaignRequest, theirs, ours),
        ),
        "DeleteCampaign": (
            Phase.CHANGE,
            named(campaign_pb2.DeleteCampaignRequest, theirs, ours),
        ),
        "CreateCampaign": (
            Phase.CREATE,
            [
                Probe(
                    create(parent=f"workspaces/{B}", campaign_id="acme-made", campaign=draft("s")),
                    DENIED,
                ),
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        campaign_id=h.campaign_id,
                        campaign=draft(our_segment),
                    ),
                    frozenset({Code.OK}),
                ),
                Probe(
                    create(
                        parent=f"workspaces/{A}",
                        campaign_id="acme-theirs",
                        campaign=draft(name_of("segments", h.segment_id, B)),
                    ),
                    REFUSED,
                ),
            ],
        ),
    }


def message_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = name_of("messages", h.message_id, A), name_of("messages", h.message_id, B)
    listing = message_pb2.ListMessagesRequest
    unserved = frozenset({Code.UNIMPLEMENTED})

    def send(parent: str, template: str) -> message_pb2.SendMessageRequest:
        return message_pb2.SendMessageRequest(
            parent=parent,
            request_id="acme-probe",
            channel=common_pb2.CHANNEL_EMAIL,
            template=template,
            user_id=h.user_id,
        )

    return {
        "GetMessage": (
            Phase.READ,
            named(message_pb2.GetMessageRequest, theirs, ours),
        ),
        "ListMessages": (
            Phase.READ,
            [
                *listed(listing),
                Probe(
                    listing(parent=f"workspaces/{A}", profile=name_of("profiles", h.profile_id, A)),
                    HIDDEN,
                ),
                Probe(
                    listing(parent=f"workspaces/{A}", profile=name_of("profiles", h.profile_id, B)),
                    REFUSED,
                ),
            ],
        ),
        "SendMessage": (
            Phase.CHANGE,
            [
                Probe(
                    send(f"workspaces/{B}", name_of("templates", h.template_id, B)),
                    DENIED | unserved,
                ),
                Probe(
                    send(f"workspaces/{A}", name_of("templates", h.template_id, A)),
                    HIDDEN | unserved,
                ),
            ],
        ),
    }


def report_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    def journey(workspace: str) -> reporting_pb2.GetJourneyReportRequest:
        return reporting_pb2.GetJourneyReportRequest(
            name=f"{name_of('journeys', h.journey_id, workspace)}/report"
        )

    def campaign(workspace: str) -> reporting_pb2.GetCampaignReportRequest:
        return reporting_pb2.GetCampaignReportRequest(
            name=f"{name_of('campaigns', h.campaign_id, workspace)}/report"
        )

    return {
        "GetJourneyReport": (
            Phase.READ,
            [Probe(journey(B), DENIED), Probe(journey(A), HIDDEN, zero_counts)],
        ),
        "GetCampaignReport": (
            Phase.READ,
            [Probe(campaign(B), DENIED), Probe(campaign(A), HIDDEN, zero_counts)],
        ),
    }


def ingest_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    """Ingest names no workspace: it writes into the caller's. Sent about B's user id, these
    must land in A (checked after the probes by `acme_ingest_stayed_in_acme`)."""
    wrote = frozenset({Code.OK})
    return {
        "Track": (
            Phase.INGEST,
            [
                Probe(
                    ingest_pb2.TrackRequest(
                        message_id="acme-probe-track", user_id=h.user_id, event="acme-probe-track"
                    ),
                    wrote,
                )
            ],
        ),
        "Identify": (
            Phase.INGEST,
            [
                Probe(
                    ingest_pb2.IdentifyRequest(
                        message_id="acme-probe-identify",
                        user_id=h.user_id,
                        traits=traits(name="Overwritten By Acme"),
                    ),
                    wrote,
                )
            ],
        ),
        "Alias": (
            Phase.INGEST,
            [
                Probe(
                    ingest_pb2.AliasRequest(
                        message_id="acme-probe-alias",
                        user_id=h.user_id,
                        previous_id=h.anonymous_id,
                    ),
                    wrote,
                )
            ],
        ),
        "Batch": (
            Phase.INGEST,
            [Probe(ingest_pb2.BatchRequest(events=[track_event(h, "acme-probe-batch")]), wrote)],
        ),
        "StreamEvents": (
            Phase.INGEST,
            [
                Probe(
                    [
                        ingest_pb2.StreamEventsRequest(
                            batch_id="acme-probe-stream",
                            events=[track_event(h, "acme-probe-stream")],
                        )
                    ],
                    wrote,
                )
            ],
        ),
    }


def workspace_probes(h: Held) -> dict[str, tuple[Phase, list[Probe]]]:
    ours, theirs = f"workspaces/{A}/settings", f"workspaces/{B}/settings"

    def update(settings_name: str) -> workspace_pb2.UpdateWorkspaceSettingsRequest:
        return workspace_pb2.UpdateWorkspaceSettingsRequest(
            settings=workspace_pb2.WorkspaceSettings(name=settings_name, time_zone="Asia/Tokyo"),
            update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
        )

    return {
        "GetWorkspaceSettings": (
            Phase.READ,
            named(workspace_pb2.GetWorkspaceSettingsRequest, theirs, ours),
        ),
        "UpdateWorkspaceSettings": (
            Phase.CHANGE,
            [Probe(update(theirs), DENIED), Probe(update(ours), HIDDEN)],
        ),
    }


PROBES: dict[str, Callable[[Held], dict[str, tuple[Phase, list[Probe]]]]] = {
    "engage.v1.ProfileService": profile_probes,
    "engage.v1.SegmentService": segment_probes,
    "engage.v1.WorkspaceService": workspace_probes,
    "engage.v1.TemplateService": template_probes,
    "engage.v1.MessageService": message_probes,
    "engage.v1.JourneyService": journey_probes,
    "engage.v1.CampaignService": campaign_probes,
    "engage.v1.ReportingService": report_probes,
    "engage.v1.IngestService": ingest_probes,
}
ACME_EVENTS = ["acme-probe-track", "acme-probe-batch", "acme-probe-stream"]
