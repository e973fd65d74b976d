"""Workspaces are sealed: every RPC of every served service, called with workspace A's key on
workspace B's resources, answers PERMISSION_DENIED (B's names) or NOT_FOUND / an answer holding
none of B's data (B's ids under A's own names), never B's data; and what A ingests stays in A.

The RPCs come from the generated descriptors, so a new RPC joins this test by itself; one with no
probe in `PROBES` fails it until someone writes the probe.
"""

from collections.abc import Sequence

import grpc
from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from engage import subjects
from engage.bus import Bus
from engage.resources import name_of
from engage.v1 import (
    bus_pb2,
    common_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    reporting_pb2,
    reporting_pb2_grpc,
    segment_pb2,
    segment_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
)
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.e2e.workspace_probes import (
    ACME_EVENTS,
    B_KEY,
    NOT_SERVED_METHODS,
    NOT_SERVED_SERVICES,
    PROBES,
    A,
    B,
    Code,
    Held,
    Phase,
    Probe,
    email_rule,
    traits,
)
from tests.harness import ADMIN_KEY, Suite, auth, contract_services, eventually, hosts


async def call(
    channel: grpc.aio.Channel, method: MethodDescriptor, probe: Probe
) -> tuple[grpc.StatusCode, list[Message]]:
    """Call any RPC from its descriptor; the status and every answer message."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    answer_type = message_factory.GetMessageClass(method.output_type)
    codec = {
        "request_serializer": lambda message: message.SerializeToString(),
        "response_deserializer": answer_type.FromString,
    }
    metadata = auth(ADMIN_KEY)
    try:
        if method.client_streaming:
            requests = probe.request if isinstance(probe.request, list) else [probe.request]
            streamed = channel.stream_stream(path, **codec)(iter(requests), metadata=metadata)
            return Code.OK, [answer async for answer in streamed]
        if method.server_streaming:
            answers = channel.unary_stream(path, **codec)(probe.request, metadata=metadata)
            return Code.OK, [answer async for answer in answers]
        return Code.OK, [await channel.unary_unary(path, **codec)(probe.request, metadata=metadata)]
    except grpc.aio.AioRpcError as error:
        return error.code(), []


def betrayed(held: Held, probe: Probe, answers: Sequence[Message]) -> list[str]:
    """B's strings an answer holds that A did not put in its own request."""
    requests = probe.request if isinstance(probe.request, list) else [probe.request]
    asked = b"".join(request.SerializeToString() for request in requests)
    told = b"".join(answer.SerializeToString() for answer in answers)
    return [
        secret
        for secret in held.secrets()
        if secret.encode() in told and secret.encode() not in asked
    ]


async def test_workspace_a_never_sees_or_touches_workspace_b(
    suite: Suite, smtp_sink: SmtpSink
) -> None:
    held = await fill_workspace_b(suite, smtp_sink)
    before = await b_as_b_sees_it(suite, held)

    planned = plan(held, await hosts(suite))
    failures = [await probe_failure(suite, held, *planned_probe) for planned_probe in planned]
    assert not any(failures), "\n".join(filter(None, failures))

    await acme_ingest_stayed_in_acme(suite, held)
    after = await b_as_b_sees_it(suite, held)
    changed = [(one_line(then), one_line(now)) for then, now in zip(before, after, strict=True)]
    assert not [pair for pair in changed if pair[0] != pair[1]], changed
    assert len([mail for mail in smtp_sink.received if held.email in mail.recipients]) == 1


def plan(held: Held, hosted: dict[str, str]) -> list[tuple[str, MethodDescriptor, Probe]]:
    """(process, method, probe) for every probe of every RPC of every served service, in phase
    order; fails naming each service or RPC the table does not cover."""
    gaps: list[str] = []
    planned: list[tuple[Phase, str, MethodDescriptor, Probe]] = []
    for service in contract_services():
        if service.full_name in NOT_SERVED_SERVICES:
            if service.full_name in hosted:
                gaps.append(f"{service.full_name} is served now: give it probes")
            continue
        if service.full_name not in hosted:
            gaps.append(f"{service.full_name} is hosted by no process, nor listed as not served")
            continue
        probes_of = PROBES.get(service.full_name)
        probes = probes_of(held) if probes_of else {}
        for method in service.methods:
            if method.name not in probes:
                gaps.append(f"{service.full_name}/{method.name} has no probe")
                continue
            phase, method_probes = probes[method.name]
            planned += [(phase, hosted[service.full_name], method, p) for p in method_probes]
    assert not gaps, gaps
    return [(process, method, probe) for _, process, method, probe in sorted(planned, key=first)]


def first(planned: tuple[Phase, str, MethodDescriptor, Probe]) -> Phase:
    return planned[0]


async def probe_failure(
    suite: Suite, held: Held, process: str, method: MethodDescriptor, probe: Probe
) -> str | None:
    """What went wrong with one probe (a status not allowed, or B's data answered), if anything."""
    async with suite.channel(process) as channel:
        code, answers = await call(channel, method, probe)
    path = f"{method.containing_service.full_name}/{method.name}"
    allowed = probe.allowed | ({Code.UNIMPLEMENTED} if path in NOT_SERVED_METHODS else set())
    asked = one_line(probe.request[0] if isinstance(probe.request, list) else probe.request)
    if code not in allowed:
        return f"{path} {{{asked}}}: {code.name}, expected one of {sorted(c.name for c in allowed)}"
    if code == Code.OK and (betrayed(held, probe, answers) or not probe.check(answers)):
        return f"{path} {{{asked}}} answered B's data: {[one_line(a) for a in answers]}"
    return None


def one_line(message: Message) -> str:
    return text_format.MessageToString(message, as_one_line=True)


async def fill_workspace_b(suite: Suite, smtp_sink: SmtpSink) -> Held:
    """In B: a profile with email and user id, a segment it belongs to, a template, a journey
    that sent it one email (a message record), and a campaign with a delivery reported."""
    probe = Held(profile_id="", message_id="")
    async with suite.channel("ingest") as channel:
        await ingest_pb2_grpc.IngestServiceStub(channel).Identify(
            ingest_pb2.IdentifyRequest(
                user_id=probe.user_id,
                anonymous_id=probe.anonymous_id,
                traits=traits(email=probe.email, name=probe.person, first_name="Hedy"),
            ),
            metadata=auth(B_KEY),
        )
    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        profile = await eventually(
            lambda: profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=probe.user_id), metadata=auth(B_KEY)
            )
        )
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        segment = await segments.CreateSegment(
            segment_pb2.CreateSegmentRequest(
                parent=f"workspaces/{B}",
                segment_id=probe.segment_id,
                segment=segment_pb2.Segment(
                    display_name=probe.segment_title, rule=email_rule(probe.email)
                ),
            ),
            metadata=auth(B_KEY),
        )

        async def member() -> bool:
            answer = await segments.CheckMembership(
                segment_pb2.CheckMembershipRequest(segment=segment.name, profile=profile.name),
                metadata=auth(B_KEY),
            )
            return bool(answer.member)

        await eventually(member)
    await create_b_journey(suite, probe)
    async with suite.channel("ingest") as channel:
        await ingest_pb2_grpc.IngestServiceStub(channel).Track(
            ingest_pb2.TrackRequest(user_id=probe.user_id, event="signed_up"), metadata=auth(B_KEY)
        )
    await eventually(lambda: any(probe.email in m.recipients for m in smtp_sink.received))
    await report_a_b_campaign_delivery(suite, probe)
    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        async def counted_sign_up() -> bool:
            seen = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=probe.user_id), metadata=auth(B_KEY)
            )
            return "signed_up" in seen.event_stats

        # Segments follows the bus at its own pace: B's view is settled once it counted this.
        await eventually(counted_sign_up)
    async with suite.channel("channels") as channel:
        listed = await eventually(
            lambda: message_pb2_grpc.MessageServiceStub(channel).ListMessages(
                message_pb2.ListMessagesRequest(parent=f"workspaces/{B}"), metadata=auth(B_KEY)
            )
        )
    [message] = listed.messages
    return Held(
        profile_id=profile.name.rsplit("/", 1)[-1], message_id=message.name.rsplit("/", 1)[-1]
    )


async def create_b_journey(suite: Suite, held: Held) -> None:
    template = name_of("templates", held.template_id, B)
    async with suite.channel("channels") as channel:
        await template_pb2_grpc.TemplateServiceStub(channel).CreateTemplate(
            template_pb2.CreateTemplateRequest(
                parent=f"workspaces/{B}",
                template_id=held.template_id,
                template=template_pb2.Template(
                    channel=common_pb2.CHANNEL_EMAIL,
                    email=template_pb2.EmailContent(
                        subject=f"{held.template_subject}, {{{{ profile.traits.first_name }}}}",
                        text_body="Hello from Globex.",
                    ),
                ),
            ),
            metadata=auth(B_KEY),
        )
    send = journey_pb2.SendStep(channel=common_pb2.CHANNEL_EMAIL, template=template)
    async with suite.channel("scheduler") as channel:
        await journey_pb2_grpc.JourneyServiceStub(channel).CreateJourney(
            journey_pb2.CreateJourneyRequest(
                parent=f"workspaces/{B}",
                journey_id=held.journey_id,
                journey=journey_pb2.Journey(
                    display_name=held.journey_title,
                    state=journey_pb2.Journey.STATE_ACTIVE,
                    trigger=journey_pb2.JourneyTrigger(
                        event=journey_pb2.EventTrigger(event="signed_up")
                    ),
                    steps=[journey_pb2.JourneyStep(id="welcome-email", send=send)],
                ),
            ),
            metadata=auth(B_KEY),
        )


async def report_a_b_campaign_delivery(suite: Suite, held: Held) -> None:
    """No process serves campaigns yet: a delivery of B's campaign, as channels publishes it,
    gives reporting something of B's to keep."""
    campaign = name_of("campaigns", held.campaign_id, B)
    event = bus_pb2.DeliveryEvent(
        id="globex-delivery-1",
        workspace=B,
        kind=bus_pb2.DeliveryEvent.KIND_SENT,
        channel=common_pb2.CHANNEL_EMAIL,
        campaign=campaign,
    )
    event.occurred_at.GetCurrentTime()
    bus = await Bus.connect(suite.nats.url, "test-globex")
    try:
        await bus.publish(
            subjects.deliveries(B, common_pb2.CHANNEL_EMAIL), event, event.id, workspace=B
        )
    finally:
        await bus.close()
    async with suite.channel("reporting") as channel:
        reports = reporting_pb2_grpc.ReportingServiceStub(channel)

        async def reported() -> bool:
            campaign_report = await reports.GetCampaignReport(
                reporting_pb2.GetCampaignReportRequest(name=f"{campaign}/report"),
                metadata=auth(B_KEY),
            )
            journey_report = await reports.GetJourneyReport(
                reporting_pb2.GetJourneyReportRequest(
                    name=f"{name_of('journeys', held.journey_id, B)}/report"
                ),
                metadata=auth(B_KEY),
            )
            return bool(campaign_report.deliveries.sent == journey_report.deliveries.sent == 1)

        await eventually(reported)


async def b_as_b_sees_it(suite: Suite, held: Held) -> list[Message]:
    """B's own view of everything it holds: must be the same after A's probes."""
    key = auth(B_KEY)
    async with suite.channel("segments") as channel:
        profile = await profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            profile_pb2.GetProfileRequest(name=name_of("profiles", held.profile_id, B)),
            metadata=key,
        )
        segment = await segment_pb2_grpc.SegmentServiceStub(channel).GetSegment(
            segment_pb2.GetSegmentRequest(name=name_of("segments", held.segment_id, B)),
            metadata=key,
        )
    async with suite.channel("channels") as channel:
        template = await template_pb2_grpc.TemplateServiceStub(channel).GetTemplate(
            template_pb2.GetTemplateRequest(name=name_of("templates", held.template_id, B)),
            metadata=key,
        )
        message = await message_pb2_grpc.MessageServiceStub(channel).GetMessage(
            message_pb2.GetMessageRequest(name=name_of("messages", held.message_id, B)),
            metadata=key,
        )
    async with suite.channel("scheduler") as channel:
        journey = await journey_pb2_grpc.JourneyServiceStub(channel).GetJourney(
            journey_pb2.GetJourneyRequest(name=name_of("journeys", held.journey_id, B)),
            metadata=key,
        )
    return [profile, segment, template, message, journey]


async def acme_ingest_stayed_in_acme(suite: Suite, held: Held) -> None:
    """A's events about B's user id made a profile in A; B's profile never saw them."""
    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        async def acme_profile_has_every_event() -> profile_pb2.Profile | None:
            found = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=held.user_id), metadata=auth(ADMIN_KEY)
            )
            return found if set(ACME_EVENTS) <= set(found.event_stats) else None

        acme_profile = await eventually(acme_profile_has_every_event)
        assert acme_profile.name.startswith(f"workspaces/{A}/profiles/")
        assert acme_profile.name.rsplit("/", 1)[-1] != held.profile_id
        theirs = await profiles.GetProfile(
            profile_pb2.GetProfileRequest(user_id=held.user_id), metadata=auth(B_KEY)
        )
    assert not set(ACME_EVENTS) & set(theirs.event_stats)
    assert theirs.traits["name"] == held.person
    events = await events_by_workspace(suite)
    assert set(ACME_EVENTS) <= events.get(A, set())
    assert not set(ACME_EVENTS) & events.get(B, set())


async def events_by_workspace(suite: Suite) -> dict[str, set[str]]:
    """Message ids on the EVENTS stream, by the workspace of the subject they were stored on."""
    bus = await Bus.connect(suite.nats.url, "test-reader")
    found: dict[str, set[str]] = {}
    try:
        state = (await bus.js.stream_info("EVENTS")).state
        for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            stored = await bus.js.get_msg("EVENTS", sequence)
            workspace = (stored.subject or "").split(".")[2]
            batch = bus_pb2.EventBatch.FromString(stored.data or b"")
            assert batch.workspace == workspace, stored.subject
            found.setdefault(workspace, set()).update(e.message_id for e in batch.events)
    finally:
        await bus.close()
    return found
