"""JourneyService: validate, call the domain and the store in one transaction, answer."""

import base64
import binascii
from typing import cast

import grpc
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import resources
from engage.db import transaction
from engage.errors import InvalidArgument, NotFound
from engage.v1 import journey_pb2, journey_pb2_grpc
from services.scheduler import journeys, store
from services.scheduler.journeys import Clock
from services.scheduler.models import JourneyRow

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class JourneyApi(journey_pb2_grpc.JourneyServiceServicer):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock = journeys.utc_now
    ) -> None:
        self.sessions = sessions
        self.clock = clock

    async def CreateJourney(
        self, request: journey_pb2.CreateJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        workspace = resources.parse_parent("parent", request.parent)
        journey_id = resources.check_id("journey_id", request.journey_id)
        if not request.HasField("journey"):
            raise InvalidArgument("journey", "a journey is required")
        spec = journeys.parse_journey(request.journey, workspace)
        async with transaction(self.sessions) as session:
            row = await store.create_journey(session, workspace, journey_id, spec, self.clock())
        return journey_to_proto(row)

    async def GetJourney(
        self, request: journey_pb2.GetJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        journey_id = resources.parse_name("name", request.name, "journeys")
        async with self.sessions() as session:
            row = await _existing(session, resources.workspace(), journey_id)
        return journey_to_proto(row)

    async def ListJourneys(
        self, request: journey_pb2.ListJourneysRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.ListJourneysResponse:
        workspace = resources.parse_parent("parent", request.parent)
        if request.page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_page_token(request.page_token)
        async with self.sessions() as session:
            rows = await store.list_journeys(session, workspace, after, page_size + 1)
        response = journey_pb2.ListJourneysResponse(
            journeys=[journey_to_proto(row) for row in rows[:page_size]]
        )
        if len(rows) > page_size:
            response.next_page_token = _encode_page_token(rows[page_size - 1].journey_id)
        return response

    async def UpdateJourney(
        self, request: journey_pb2.UpdateJourneyRequest, context: grpc.aio.ServicerContext
    ) -> journey_pb2.Journey:
        journey_id = resources.parse_name("journey.name", request.journey.name, "journeys")
        workspace = resources.workspace()
        paths = journeys.update_paths(request.update_mask.paths)
        async with transaction(self.sessions) as session:
            row = await _existing(session, workspace, journey_id, for_update=True)
            before = store.spec_of(row)
            after = journeys.apply_update(before, request.journey, paths, workspace)
            version = journeys.next_version(row.version, before, after)
            row = await store.update_journey(session, row, after, version, self.clock())
        return journey_to_proto(row)

    async def DeleteJourney(
        self, request: journey_pb2.DeleteJourneyRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        journey_id = resources.parse_name("name", request.name, "journeys")
        async with transaction(self.sessions) as session:
            if not await store.delete_journey(session, resources.workspace(), journey_id):
                raise NotFound(f"journey {journey_id!r} not found")
        return empty_pb2.Empty()


async def _existing(
    session: AsyncSession, workspace: str, journey_id: str, for_update: bool = False
) -> JourneyRow:
    row = await store.get_journey(session, workspace, journey_id, for_update)
    if row is None:
        raise NotFound(f"journey {journey_id!r} not found")
    return row


def journey_to_proto(row: JourneyRow) -> journey_pb2.Journey:
    create_time, update_time = Timestamp(), Timestamp()
    create_time.FromDatetime(row.create_time)
    update_time.FromDatetime(row.update_time)
    return journey_pb2.Journey(
        name=journeys.journey_name(row.workspace, row.journey_id),
        display_name=row.display_name,
        state=cast(journey_pb2.Journey.State, row.state),
        version=row.version,
        trigger=journey_pb2.JourneyTrigger(event=journey_pb2.EventTrigger(event=row.trigger_event)),
        steps=journeys.steps_to_proto(journeys.steps_from_json(row.steps)),
        create_time=create_time,
        update_time=update_time,
    )


def _encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def _decode_page_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidArgument("page_token", "not a token this service issued") from error
