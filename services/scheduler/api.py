"""JourneyService: validate, call the domain and the store in one transaction, answer."""

from typing import cast

import grpc
from google.protobuf import empty_pb2
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import paging, resources
from engage.clock import Clock, timestamp, utc_now
from engage.db import reading, transaction
from engage.errors import InvalidArgument, NotFound
from engage.v1 import journey_pb2, journey_pb2_grpc
from services.scheduler import enrollments, graph, journeys, store
from services.scheduler.models import JourneyRow
from services.scheduler.simulator import JourneySimulator


class JourneyApi(journey_pb2_grpc.JourneyServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        simulator: JourneySimulator,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.simulator = simulator
        self.clock = clock

    async def CreateJourney(
        self, request: journey_pb2.CreateJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        workspace = resources.parse_parent("parent", request.parent)
        journey_id = resources.check_id("journey_id", request.journey_id)
        if not request.HasField("journey"):
            raise InvalidArgument("journey", "a journey is required")
        spec = journeys.parse_journey(request.journey, workspace)
        async with transaction(self.sessions, workspace, request.validate_only) as session:
            row = await store.create_journey(session, workspace, journey_id, spec, self.clock())
            return journey_to_proto(row)

    async def GetJourney(
        self, request: journey_pb2.GetJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        journey_id = resources.parse_name("name", request.name, "journeys")
        async with reading(self.sessions, resources.workspace()) as session:
            row = await _existing(session, journey_id)
            journey = journey_to_proto(row)
            journey.counts.CopyFrom(await store.counts(session, journey_id))
        return journey

    async def ListJourneys(
        self, request: journey_pb2.ListJourneysRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.ListJourneysResponse:
        workspace = resources.parse_parent("parent", request.parent)
        size = paging.page_size(request.page_size)
        async with reading(self.sessions, workspace) as session:
            rows, next_token = await store.page_of_journeys(session, size, request.page_token)
        return journey_pb2.ListJourneysResponse(
            journeys=[journey_to_proto(row) for row in rows], next_page_token=next_token
        )

    async def UpdateJourney(
        self, request: journey_pb2.UpdateJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        journey_id = resources.parse_name("journey.name", request.journey.name, "journeys")
        workspace = resources.workspace()
        paths = journeys.update_paths(request.update_mask.paths)
        async with transaction(self.sessions, workspace, request.validate_only) as session:
            row = await _existing(session, journey_id, for_update=True)
            before = store.spec_of(row)
            after = journeys.apply_update(before, request.journey, paths, workspace)
            version = journeys.next_version(row.version, before, after)
            row = await store.update_journey(session, row, after, version, self.clock())
            return journey_to_proto(row)

    async def DeleteJourney(
        self, request: journey_pb2.DeleteJourneyRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        journey_id = resources.parse_name("name", request.name, "journeys")
        async with transaction(self.sessions, resources.workspace()) as session:
            if not await store.delete_journey(session, journey_id):
                raise NotFound(f"journey {journey_id!r} not found")
        return empty_pb2.Empty()

    async def SimulateJourney(
        self, request: journey_pb2.SimulateJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.SimulateJourneyResponse:
        return await self.simulator.simulate(request)


async def _existing(session: AsyncSession, journey_id: str, for_update: bool = False) -> JourneyRow:
    row = await store.get_journey(session, journey_id, for_update)
    if row is None:
        raise NotFound(f"journey {journey_id!r} not found")
    return row


def journey_to_proto(row: JourneyRow) -> journey_pb2.Journey:
    journey = graph.to_proto(store.definition_of(row.definition, row.workspace))
    journey.name = enrollments.journey_name(row.workspace, row.journey_id)
    journey.display_name = row.display_name
    journey.state = cast(journey_pb2.Journey.State, row.state)
    journey.version = row.version
    journey.create_time.CopyFrom(timestamp(row.create_time))
    journey.update_time.CopyFrom(timestamp(row.update_time))
    return journey
