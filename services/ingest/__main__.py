"""`python -m services.ingest`: the stateless front door for events."""

from engage import server
from engage.bus import Bus
from engage.settings import Settings
from engage.v1 import ingest_pb2_grpc
from services.ingest.api import IngestServicer
from services.ingest.publisher import EventPublisher


class IngestSettings(Settings):
    service_name: str = "ingest"
    grpc_port: int = 50051


async def serve(settings: IngestSettings) -> None:
    bus = await Bus.open(settings.nats_url, settings.service_name)
    servicer = IngestServicer(EventPublisher(bus, settings.event_partitions))
    await server.run(
        settings,
        [
            server.GrpcService(
                servicer,
                ingest_pb2_grpc.add_IngestServiceServicer_to_server,
                "engage.v1.IngestService",
            )
        ],
        server.ServiceRuntime(cleanups=[bus.close]),
    )


def main() -> None:
    server.launch(IngestSettings(), serve)


if __name__ == "__main__":
    main()
