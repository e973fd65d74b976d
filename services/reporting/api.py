"""ReportingService: journey and campaign reports from the facts reporting has stored."""

import grpc
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import resources
from engage.db import reading
from engage.v1 import reporting_pb2, reporting_pb2_grpc
from services.reporting import reports, store
from services.reporting.reports import DeliveryTotals, ReportName


class ReportingApi(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def GetJourneyReport(
        self, request: reporting_pb2.GetJourneyReportRequest, context: grpc.aio.ServicerContext
    ) -> reporting_pb2.JourneyReport:
        name = _own_report_name(request.name, "journeys")
        # Reporting does not own journeys: one it has never heard of reports zeros.
        async with reading(self.sessions, name.workspace) as session:
            kinds = await store.journey_kind_counts(session, name.resource)
            rows = await store.delivery_counts(session, journey=name.resource)
        return reports.journey_report(name, kinds, DeliveryTotals.from_rows(rows))

    async def GetCampaignReport(
        self, request: reporting_pb2.GetCampaignReportRequest, context: grpc.aio.ServicerContext
    ) -> reporting_pb2.CampaignReport:
        name = _own_report_name(request.name, "campaigns")
        async with reading(self.sessions, name.workspace) as session:
            rows = await store.delivery_counts(session, campaign=name.resource)
        return reports.campaign_report(name, DeliveryTotals.from_rows(rows))


def _own_report_name(value: str, collection: str) -> ReportName:
    resource_id = resources.parse_name("name", value, collection, suffix="report")
    return ReportName(resources.workspace(), collection, resource_id)
