"""`python -m services.reporting`: facts of what happened, and the reports built from them."""

from pathlib import Path

from engage import db, server
from engage.bus import Bus
from engage.erasure import erasure_consumer, erasure_handler
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import reporting_pb2_grpc
from services.reporting.api import ReportingApi
from services.reporting.consumers import DELIVERIES, JOURNEYS, FactConsumer


class ReportingSettings(Settings):
    service_name: str = "reporting"
    grpc_port: int = 50055


async def serve(settings: ReportingSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    facts = FactConsumer(sessions)
    await server.run(
        settings,
        [
            GrpcService(
                ReportingApi(sessions),
                reporting_pb2_grpc.add_ReportingServiceServicer_to_server,
                "engage.v1.ReportingService",
            )
        ],
        ServiceRuntime(
            background=[
                lambda: bus.consume(DELIVERIES, facts.handle_delivery),
                lambda: bus.consume(JOURNEYS, facts.handle_journey),
                lambda: bus.consume(erasure_consumer("reporting"), erasure_handler(facts.erase)),
            ],
            cleanups=[bus.close, engine.dispose],
            dependencies={"database": lambda: db.ping(engine), "nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(ReportingSettings(), serve)


if __name__ == "__main__":
    main()
