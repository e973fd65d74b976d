"""IngestService: requests in, events through `Intake`, answers out once JetStream has stored
the events.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import grpc

from engage.errors import InvalidArgument
from engage.resources import workspace
from engage.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc
from services.ingest import limits
from services.ingest.intake import BatchOutcome, Intake

# Batches of one stream published at once.
STREAM_WINDOW = 8

EventType = common_pb2.EventType

_SingleRequest = ingest_pb2.TrackRequest | ingest_pb2.IdentifyRequest | ingest_pb2.AliasRequest
_SingleResponse = TypeVar(
    "_SingleResponse",
    ingest_pb2.TrackResponse,
    ingest_pb2.IdentifyResponse,
    ingest_pb2.AliasResponse,
)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def Track(
        self, request: ingest_pb2.TrackRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.TrackResponse:
        return await self._accept_single(
            request,
            ingest_pb2.TrackResponse,
            type=EventType.EVENT_TYPE_TRACK,
            event=request.event,
            anonymous_id=request.anonymous_id,
            properties=request.properties,
        )

    async def Identify(
        self, request: ingest_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.IdentifyResponse:
        return await self._accept_single(
            request,
            ingest_pb2.IdentifyResponse,
            type=EventType.EVENT_TYPE_IDENTIFY,
            anonymous_id=request.anonymous_id,
            traits=request.traits,
        )

    async def Alias(
        self, request: ingest_pb2.AliasRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.AliasResponse:
        return await self._accept_single(
            request,
            ingest_pb2.AliasResponse,
            type=EventType.EVENT_TYPE_ALIAS,
            previous_id=request.previous_id,
        )

    async def Batch(
        self, request: ingest_pb2.BatchRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.BatchResponse:
        outcome = await self._accept_batch(request.events, request.ByteSize())
        return ingest_pb2.BatchResponse(
            accepted_count=outcome.accepted,
            duplicate_count=outcome.duplicates,
            errors=_event_errors(outcome),
        )

    async def StreamEvents(
        self,
        requests: AsyncIterator[ingest_pb2.StreamEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingest_pb2.StreamEventsResponse]:
        """Up to STREAM_WINDOW batches of a stream are published at once, as waiting for
        JetStream's acknowledgements is the slow part; answers keep the order of the batches.
        """
        in_flight: asyncio.Queue[asyncio.Task[ingest_pb2.StreamEventsResponse] | None] = (
            asyncio.Queue(maxsize=STREAM_WINDOW)
        )

        async def read() -> None:
            try:
                async for request in requests:
                    await in_flight.put(asyncio.create_task(self._answer(request)))
            finally:
                await in_flight.put(None)

        reader = asyncio.create_task(read())
        try:
            while (answer := await in_flight.get()) is not None:
                yield await answer
            await reader
        finally:
            reader.cancel()
            while not in_flight.empty():
                if leftover := in_flight.get_nowait():
                    leftover.cancel()

    async def _answer(
        self, request: ingest_pb2.StreamEventsRequest
    ) -> ingest_pb2.StreamEventsResponse:
        outcome = await self._accept_batch(request.events, request.ByteSize())
        return ingest_pb2.StreamEventsResponse(
            batch_id=request.batch_id,
            accepted_count=outcome.accepted,
            duplicate_count=outcome.duplicates,
            errors=_event_errors(outcome),
        )

    async def _accept_single(
        self, request: _SingleRequest, answer: type[_SingleResponse], **fields: Any
    ) -> _SingleResponse:
        """Publish the event of one Track, Identify or Alias call (the fields every call has,
        plus `fields`); the answer, of type `answer`.
        """
        event = common_pb2.Event(
            message_id=request.message_id,
            user_id=request.user_id,
            context=request.context,
            timestamp=request.timestamp if request.HasField("timestamp") else None,
            **fields,
        )
        try:
            accepted, duplicate = await self.intake.accept_one(workspace(), event)
        except InvalidArgument as error:
            # The call's fields are the event's; a fault of the whole event is the request's.
            if error.field:
                raise
            raise InvalidArgument("request", error.description) from None
        return answer(
            message_id=accepted.message_id, duplicate=duplicate, received_at=accepted.received_at
        )

    async def _accept_batch(
        self, events: Sequence[common_pb2.Event], request_bytes: int
    ) -> BatchOutcome:
        # Bounded as a whole first: one batch must fit one bus message per partition.
        limits.check_batch_events(len(events), "events")
        limits.check_request_bytes(request_bytes, "events")
        return await self.intake.accept_many(workspace(), events)


def _event_errors(outcome: BatchOutcome) -> list[common_pb2.EventError]:
    return [
        common_pb2.EventError(
            index=refused.index,
            field=f"events[{refused.index}]" + (f".{refused.field}" if refused.field else ""),
            description=refused.description,
        )
        for refused in outcome.refused
    ]
