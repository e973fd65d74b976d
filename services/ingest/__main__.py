"""`python -m services.ingest`: the stateless front door for events, over gRPC and over
Segment's HTTP Tracking API.
"""

from pydantic import Field

from engage import server
from engage.auth import ApiKeys
from engage.bus import Bus
from engage.settings import Settings
from engage.v1 import ingest_pb2_grpc
from services.ingest.api import IngestServicer
from services.ingest.group_commit import DEFAULT_LINGER_SECONDS, DEFAULT_MAX_WAITING
from services.ingest.http import TrackingApi, TrackingHttpServer
from services.ingest.intake import Intake
from services.ingest.publisher import EventPublisher


class IngestSettings(Settings):
    service_name: str = "ingest"
    grpc_port: int = 50051
    # The Segment-compatible HTTP listener; port 0 takes any free port.
    http_host: str = "127.0.0.1"
    http_port: int = 8088
    # Single events waiting for JetStream at once, at most; one more is answered UNAVAILABLE
    # (HTTP 503) so the caller retries, and memory stays bounded while the bus is slow.
    max_waiting_events: int = Field(default=DEFAULT_MAX_WAITING, ge=1)
    # How long a partition gathers single events before publishing them as one message: the
    # most a lone event waits for company. 0 publishes at once (grouping only under load).
    group_linger_seconds: float = Field(default=DEFAULT_LINGER_SECONDS, ge=0, le=0.1)


async def serve(settings: IngestSettings) -> None:
    bus = await Bus.open(
        settings.nats_url, settings.service_name, dedupe_window_hours=settings.dedupe_window_hours
    )
    intake = Intake(
        EventPublisher(bus, settings.event_partitions),
        max_waiting_singles=settings.max_waiting_events,
        linger=settings.group_linger_seconds,
    )
    http = TrackingHttpServer(
        TrackingApi(intake, ApiKeys.parse(settings.api_keys)), settings.shutdown_grace
    )
    http_address = await http.start(settings.http_host, settings.http_port)
    await server.run(
        settings,
        [
            server.GrpcService(
                IngestServicer(intake),
                ingest_pb2_grpc.add_IngestServiceServicer_to_server,
                "engage.v1.IngestService",
            )
        ],
        # The HTTP listener stops after gRPC and before the bus, so its last events get out.
        server.ServiceRuntime(
            cleanups=[http.stop, bus.close],
            listeners={"http_address": http_address},
            dependencies={"nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(IngestSettings(), serve)


if __name__ == "__main__":
    main()
