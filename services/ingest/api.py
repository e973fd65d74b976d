"""IngestService: validate, stamp, publish; answer once JetStream has stored the events."""

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import grpc

from engage.errors import InvalidArgument, ResourceExhausted
from engage.resources import workspace
from engage.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc
from services.ingest.events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, EventType, normalize
from services.ingest.publisher import EventPublisher

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, publisher: EventPublisher, clock: Clock = utc_now) -> None:
        self.publisher = publisher
        self.clock = clock

    async def Track(
        self, request: ingest_pb2.TrackRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.TrackResponse:
        event = common_pb2.Event(
            message_id=request.message_id,
            type=EventType.EVENT_TYPE_TRACK,
            event=request.event,
            user_id=request.user_id,
            anonymous_id=request.anonymous_id,
            properties=request.properties,
            context=request.context,
            timestamp=request.timestamp if request.HasField("timestamp") else None,
        )
        accepted, duplicate = await self._accept_one(event)
        return ingest_pb2.TrackResponse(
            message_id=accepted.message_id, duplicate=duplicate, received_at=accepted.received_at
        )

    async def Identify(
        self, request: ingest_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.IdentifyResponse:
        event = common_pb2.Event(
            message_id=request.message_id,
            type=EventType.EVENT_TYPE_IDENTIFY,
            user_id=request.user_id,
            anonymous_id=request.anonymous_id,
            traits=request.traits,
            context=request.context,
            timestamp=request.timestamp if request.HasField("timestamp") else None,
        )
        accepted, duplicate = await self._accept_one(event)
        return ingest_pb2.IdentifyResponse(
            message_id=accepted.message_id, duplicate=duplicate, received_at=accepted.received_at
        )

    async def Alias(
        self, request: ingest_pb2.AliasRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.AliasResponse:
        event = common_pb2.Event(
            message_id=request.message_id,
            type=EventType.EVENT_TYPE_ALIAS,
            user_id=request.user_id,
            previous_id=request.previous_id,
            context=request.context,
            timestamp=request.timestamp if request.HasField("timestamp") else None,
        )
        accepted, duplicate = await self._accept_one(event)
        return ingest_pb2.AliasResponse(
            message_id=accepted.message_id, duplicate=duplicate, received_at=accepted.received_at
        )

    async def Batch(
        self, request: ingest_pb2.BatchRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.BatchResponse:
        accepted, duplicates, errors = await self._accept_many(request.events, request.ByteSize())
        return ingest_pb2.BatchResponse(
            accepted_count=accepted, duplicate_count=duplicates, errors=errors
        )

    async def StreamEvents(
        self,
        requests: AsyncIterator[ingest_pb2.StreamEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingest_pb2.StreamEventsResponse]:
        async for request in requests:
            accepted, duplicates, errors = await self._accept_many(
                request.events, request.ByteSize()
            )
            yield ingest_pb2.StreamEventsResponse(
                batch_id=request.batch_id,
                accepted_count=accepted,
                duplicate_count=duplicates,
                errors=errors,
            )

    async def _accept_one(self, event: common_pb2.Event) -> tuple[common_pb2.Event, bool]:
        now = self.clock()
        accepted = normalize(event, now)
        duplicate = await self.publisher.publish_one(workspace(), accepted, now)
        return accepted, duplicate

    async def _accept_many(
        self, events: Sequence[common_pb2.Event], request_bytes: int
    ) -> tuple[int, int, list[common_pb2.EventError]]:
        """Publish the valid events of a batch; report each invalid one by index and field.

        Repeats of a message id within the batch count as duplicates; repeats across calls are
        dropped downstream, where each event id counts once.
        """
        if len(events) > MAX_BATCH_EVENTS:
            raise ResourceExhausted(f"events: at most {MAX_BATCH_EVENTS} per batch", "events")
        if request_bytes > MAX_BATCH_BYTES:
            raise ResourceExhausted(f"events: at most {MAX_BATCH_BYTES} bytes per batch", "events")
        now = self.clock()
        accepted: list[common_pb2.Event] = []
        errors: list[common_pb2.EventError] = []
        seen: set[str] = set()
        duplicates = 0
        for index, event in enumerate(events):
            try:
                checked = normalize(event, now, f"events[{index}].")
            except InvalidArgument as error:
                errors.append(
                    common_pb2.EventError(
                        index=index, field=error.field, description=error.description
                    )
                )
                continue
            if checked.message_id in seen:
                duplicates += 1
                continue
            seen.add(checked.message_id)
            accepted.append(checked)
        if accepted:
            await self.publisher.publish_many(workspace(), accepted, now)
        return len(accepted), duplicates, errors
