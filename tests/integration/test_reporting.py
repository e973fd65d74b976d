"""Reporting on real parts: facts from the bus, counted once, reported over gRPC."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from engage import subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, reporting_pb2, reporting_pb2_grpc
from tests.grpc_errors import violated_fields
from tests.harness import OTHER_WORKSPACE_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth, eventually

JOURNEY = f"workspaces/{WORKSPACE}/journeys/welcome"
CAMPAIGN = f"workspaces/{WORKSPACE}/campaigns/spring-sale"
Kind = bus_pb2.DeliveryEvent


@pytest.fixture
async def bus(bare_suite: Suite) -> AsyncIterator[Bus]:
    await asyncio.to_thread(bare_suite.start, "reporting")
    connection = await Bus.connect(bare_suite.nats.url, "test")
    await connection.declare_streams()
    yield connection
    await connection.close()


@pytest.fixture
async def stub(
    bare_suite: Suite, bus: Bus
) -> AsyncIterator[reporting_pb2_grpc.ReportingServiceStub]:
    async with bare_suite.channel("reporting") as channel:
        yield reporting_pb2_grpc.ReportingServiceStub(channel)


async def deliver(
    bus: Bus,
    kind: "bus_pb2.DeliveryEvent.Kind",
    channel: "common_pb2.Channel" = common_pb2.CHANNEL_EMAIL,
    event_id: str = "",
    journey: str = JOURNEY,
    campaign: str = "",
) -> None:
    """Publish a DeliveryEvent as channels would; every publish has its own Nats-Msg-Id."""
    event = bus_pb2.DeliveryEvent(
        id=event_id or uuid.uuid4().hex,
        workspace=WORKSPACE,
        kind=kind,
        channel=channel,
        journey=journey,
        journey_version=1 if journey else 0,
        campaign=campaign,
    )
    event.occurred_at.GetCurrentTime()
    await bus.publish(
        subjects.deliveries(WORKSPACE, channel), event, uuid.uuid4().hex, workspace=WORKSPACE
    )


async def journey_event(bus: Bus, kind: "bus_pb2.JourneyEvent.Kind", event_id: str = "") -> None:
    event = bus_pb2.JourneyEvent(
        id=event_id or uuid.uuid4().hex,
        workspace=WORKSPACE,
        kind=kind,
        journey=JOURNEY,
        journey_version=1,
        enrollment_id="e1",
    )
    # In a bundle of its own, past JetStream's dedupe: a repeat is the same event again.
    bundle = bus_pb2.JourneyEvents(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
    await bus.publish(subjects.journeys(WORKSPACE), bundle, bundle.id, WORKSPACE)


async def journey_report(
    stub: reporting_pb2_grpc.ReportingServiceStub, name: str = f"{JOURNEY}/report"
) -> reporting_pb2.JourneyReport:
    report: reporting_pb2.JourneyReport = await stub.GetJourneyReport(
        reporting_pb2.GetJourneyReportRequest(name=name), metadata=auth(SUPPORT_KEY)
    )
    return report


async def test_a_redelivered_event_counts_once(
    bus: Bus, stub: reporting_pb2_grpc.ReportingServiceStub
) -> None:
    await deliver(bus, Kind.KIND_SENT, event_id="d1")
    await deliver(bus, Kind.KIND_SENT, event_id="d1")
    await journey_event(bus, bus_pb2.JourneyEvent.KIND_ENROLLED, event_id="j1")
    await journey_event(bus, bus_pb2.JourneyEvent.KIND_ENROLLED, event_id="j1")
    # Markers after the repeats: once they count, the repeats have been handled.
    await deliver(bus, Kind.KIND_DELIVERED, event_id="d2")
    await journey_event(bus, bus_pb2.JourneyEvent.KIND_EXITED, event_id="j2")

    async def settled() -> reporting_pb2.JourneyReport | None:
        report = await journey_report(stub)
        return report if report.deliveries.delivered and report.exited_count else None

    report = await eventually(settled)
    assert report.name == f"{JOURNEY}/report"
    assert (report.enrolled_count, report.exited_count, report.converted_count) == (1, 1, 0)
    assert (report.deliveries.sent, report.deliveries.delivered) == (1, 1)


async def test_deliveries_are_split_by_channel(
    bus: Bus, stub: reporting_pb2_grpc.ReportingServiceStub
) -> None:
    for kind, channel in [
        (Kind.KIND_SENT, common_pb2.CHANNEL_EMAIL),
        (Kind.KIND_OPENED, common_pb2.CHANNEL_EMAIL),
        (Kind.KIND_SENT, common_pb2.CHANNEL_PUSH),
        (Kind.KIND_BOUNCED, common_pb2.CHANNEL_EMAIL),
        (Kind.KIND_SKIPPED, common_pb2.CHANNEL_SMS),
    ]:
        await deliver(bus, kind, channel)
    await deliver(bus, Kind.KIND_SENT, journey="", campaign=CAMPAIGN)
    await deliver(bus, Kind.KIND_CLICKED, common_pb2.CHANNEL_SMS, journey="", campaign=CAMPAIGN)

    async def settled() -> reporting_pb2.JourneyReport | None:
        report = await journey_report(stub)
        counts = report.deliveries
        return report if (counts.sent, counts.skipped) == (2, 1) else None

    report = await eventually(settled)
    assert report.deliveries == reporting_pb2.DeliveryCounts(sent=2, opened=1, bounced=1, skipped=1)
    by_channel = {c.channel: c.counts for c in report.channel_deliveries}
    assert by_channel == {
        common_pb2.CHANNEL_EMAIL: reporting_pb2.DeliveryCounts(sent=1, opened=1, bounced=1),
        common_pb2.CHANNEL_PUSH: reporting_pb2.DeliveryCounts(sent=1),
        common_pb2.CHANNEL_SMS: reporting_pb2.DeliveryCounts(skipped=1),
    }

    async def campaign_settled() -> reporting_pb2.CampaignReport | None:
        campaign: reporting_pb2.CampaignReport = await stub.GetCampaignReport(
            reporting_pb2.GetCampaignReportRequest(name=f"{CAMPAIGN}/report"), metadata=auth()
        )
        return campaign if campaign.deliveries.clicked else None

    campaign = await eventually(campaign_settled)
    assert campaign.deliveries == reporting_pb2.DeliveryCounts(sent=1, clicked=1)
    assert [c.channel for c in campaign.channel_deliveries] == [
        common_pb2.CHANNEL_EMAIL,
        common_pb2.CHANNEL_SMS,
    ]


async def test_an_unknown_journey_reports_zeros(
    stub: reporting_pb2_grpc.ReportingServiceStub,
) -> None:
    report = await journey_report(stub, f"workspaces/{WORKSPACE}/journeys/nobody-knows/report")
    assert report.enrolled_count == 0
    assert report.deliveries == reporting_pb2.DeliveryCounts()
    assert not report.channel_deliveries


async def test_bad_report_names_are_refused(
    stub: reporting_pb2_grpc.ReportingServiceStub,
) -> None:
    for name in ["", JOURNEY, f"{JOURNEY}/reports", f"workspaces/{WORKSPACE}/segments/x/report"]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await journey_report(stub, name)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(raised.value) == ["name"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetJourneyReport(
            reporting_pb2.GetJourneyReportRequest(name=f"{JOURNEY}/report"),
            metadata=auth(OTHER_WORKSPACE_KEY),
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetJourneyReport(reporting_pb2.GetJourneyReportRequest(name=f"{JOURNEY}/report"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
