"""`python -m services.reporting`: facts of what happened, and the reports built from them."""

import asyncio
from pathlib import Path

from engage import db, server, telemetry
from engage.bus import Bus
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import reporting_pb2_grpc
from services.reporting.api import ReportingApi
from services.reporting.consumers import DELIVERIES, JOURNEYS, FactConsumer


class ReportingSettings(Settings):
    service_name: str = "reporting"
    grpc_port: int = 50055


async def serve(settings: ReportingSettings) -> None:
    engine = db.create_engine(settings.resolved_database_url())
    await db.migrate(engine, Path(__file__).parent / "migrations")
    sessions = db.session_factory(engine)
    bus = await Bus.connect(settings.nats_url, settings.service_name)
    await bus.declare_streams()
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
            ],
            cleanups=[bus.close, engine.dispose],
        ),
    )


def main() -> None:
    settings = ReportingSettings()
    telemetry.setup(settings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
