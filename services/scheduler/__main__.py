"""`python -m services.scheduler`: journeys and the sends they trigger."""

from pathlib import Path

from engage import db, server
from engage.bus import Bus
from engage.erasure import erasure_consumer, erasure_handler
from engage.outbox import OutboxRelay
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import journey_pb2_grpc
from services.scheduler.api import JourneyApi
from services.scheduler.consumers import EVENTS, ErasureConsumer, EventConsumer


class SchedulerSettings(Settings):
    service_name: str = "scheduler"
    grpc_port: int = 50053


async def serve(settings: SchedulerSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    relay = OutboxRelay(sessions, bus)
    events = EventConsumer(sessions, relay)
    erasures = erasure_handler(ErasureConsumer(sessions).erase)
    await server.run(
        settings,
        [
            GrpcService(
                JourneyApi(sessions),
                journey_pb2_grpc.add_JourneyServiceServicer_to_server,
                "engage.v1.JourneyService",
            )
        ],
        ServiceRuntime(
            background=[
                lambda: bus.consume(EVENTS, events.handle, events.handle_together),
                lambda: bus.consume(erasure_consumer("scheduler"), erasures),
                relay.run,
            ],
            cleanups=[bus.close, engine.dispose],
            dependencies={"database": lambda: db.ping(engine), "nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(SchedulerSettings(), serve)


if __name__ == "__main__":
    main()
