"""`python -m services.segments`: profiles (and, later, segments) of every workspace."""

from pathlib import Path

from engage import db, server
from engage.bus import Bus
from engage.outbox import OutboxRelay
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import profile_pb2_grpc
from services.segments.api import ProfileApi
from services.segments.consumers import EVENTS_CONSUMER, EventsConsumer


class SegmentsSettings(Settings):
    service_name: str = "segments"
    grpc_port: int = 50052


async def serve(settings: SegmentsSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    relay = OutboxRelay(sessions, bus)
    consumer = EventsConsumer(sessions, relay.notify)
    await server.run(
        settings,
        [
            GrpcService(
                ProfileApi(sessions, relay.notify),
                profile_pb2_grpc.add_ProfileServiceServicer_to_server,
                "engage.v1.ProfileService",
            )
        ],
        ServiceRuntime(
            background=[lambda: bus.consume(EVENTS_CONSUMER, consumer.handle), relay.run],
            cleanups=[bus.close, engine.dispose],
        ),
    )


def main() -> None:
    server.launch(SegmentsSettings(), serve)


if __name__ == "__main__":
    main()
