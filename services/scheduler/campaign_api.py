"""CampaignService: validate, call the domain and the store in one transaction, answer."""

import grpc
from google.protobuf import empty_pb2
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import paging, resources
from engage.clock import Clock, utc_now
from engage.db import reading, transaction
from engage.errors import FailedPrecondition, InvalidArgument, NotFound
from engage.v1 import campaign_pb2, campaign_pb2_grpc
from services.scheduler import campaign_store, campaigns
from services.scheduler.models import CampaignRow


class CampaignApi(campaign_pb2_grpc.CampaignServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    async def CreateCampaign(
        self, request: campaign_pb2.CreateCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_pb2.Campaign:
        workspace = resources.parse_parent("parent", request.parent)
        campaign_id = resources.check_id("campaign_id", request.campaign_id)
        if not request.HasField("campaign"):
            raise InvalidArgument("campaign", "a campaign is required")
        spec = campaigns.parse_campaign(request.campaign, workspace)
        async with transaction(self.sessions, workspace, request.validate_only) as session:
            row = await campaign_store.create(session, workspace, campaign_id, spec, self.clock())
            return campaign_store.to_proto(row)

    async def GetCampaign(
        self, request: campaign_pb2.GetCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_pb2.Campaign:
        campaign_id = resources.parse_name("name", request.name, "campaigns")
        async with reading(self.sessions, resources.workspace()) as session:
            return campaign_store.to_proto(await _existing(session, campaign_id))

    async def ListCampaigns(
        self, request: campaign_pb2.ListCampaignsRequest, context: grpc.aio.ServicerContext
    ) -> campaign_pb2.ListCampaignsResponse:
        workspace = resources.parse_parent("parent", request.parent)
        size = paging.page_size(request.page_size)
        async with reading(self.sessions, workspace) as session:
            rows, next_token = await campaign_store.page(session, size, request.page_token)
        return campaign_pb2.ListCampaignsResponse(
            campaigns=[campaign_store.to_proto(row) for row in rows], next_page_token=next_token
        )

    async def UpdateCampaign(
        self, request: campaign_pb2.UpdateCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_pb2.Campaign:
        campaign_id = resources.parse_name("campaign.name", request.campaign.name, "campaigns")
        workspace = resources.workspace()
        paths = campaigns.update_paths(request.update_mask.paths)
        async with transaction(self.sessions, workspace, request.validate_only) as session:
            row = await _existing(session, campaign_id, for_update=True)
            spec = campaigns.apply_update(
                campaign_store.spec_of(row), request.campaign, paths, workspace
            )
            row = await campaign_store.update(session, row, spec, self.clock())
            return campaign_store.to_proto(row)

    async def DeleteCampaign(
        self, request: campaign_pb2.DeleteCampaignRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        campaign_id = resources.parse_name("name", request.name, "campaigns")
        async with transaction(self.sessions, resources.workspace()) as session:
            row = await _existing(session, campaign_id, for_update=True)
            if row.state == campaigns.SENDING:
                raise FailedPrecondition("a campaign that is sending is cancelled, not deleted")
            await campaign_store.delete_campaign(session, campaign_id)
        return empty_pb2.Empty()

    async def CancelCampaign(
        self, request: campaign_pb2.CancelCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_pb2.Campaign:
        campaign_id = resources.parse_name("name", request.name, "campaigns")
        async with transaction(self.sessions, resources.workspace()) as session:
            row = await _existing(session, campaign_id, for_update=True)
            if row.state in (campaigns.COMPLETED, campaigns.CANCELLED):
                raise FailedPrecondition("the campaign has already ended")
            await campaign_store.set_state(session, row, campaigns.CANCELLED, self.clock())
        return campaign_store.to_proto(row)


async def _existing(
    session: AsyncSession, campaign_id: str, for_update: bool = False
) -> CampaignRow:
    row = await campaign_store.get(session, campaign_id, for_update)
    if row is None:
        raise NotFound(f"campaign {campaign_id!r} not found")
    return row
