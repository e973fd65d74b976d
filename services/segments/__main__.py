"""`python -m services.segments`: profiles and segments of every workspace."""

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from engage import db, server
from engage.bus import Bus
from engage.outbox import OutboxRelay
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import profile_pb2_grpc, segment_pb2_grpc, workspace_pb2_grpc
from services.segments.consumers import EventsConsumer, owned_partitions
from services.segments.profiles_api import ProfileApi
from services.segments.segments_api import SegmentApi
from services.segments.timed import TimedSweeper
from services.segments.traits import SummedProperties, parse_summed_properties
from services.segments.workspace_api import WorkspaceApi


class SegmentsSettings(Settings):
    service_name: str = "segments"
    grpc_port: int = 50052
    # Numeric event properties totalled per profile, `event.property` comma-separated, e.g.
    # `order_completed.revenue`; off by default, since every total is a row per profile.
    summed_properties: str = ""
    # How often segments relative to now ("in the last 18 days") are re-evaluated in SQL.
    timed_sweep_seconds: float = 30.0
    # Replicas share the EVENTS partitions: replica `replica_index` (0-based; in Kubernetes a
    # StatefulSet ordinal) of `replica_count` reads every partition p with
    # p % replica_count == replica_index. Every replica must be told the same count.
    replica_index: int = Field(default=0, ge=0)
    replica_count: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _replica_owns_partitions(self) -> "SegmentsSettings":
        if self.replica_index >= self.replica_count:
            raise ValueError("ENGAGE_REPLICA_INDEX must be less than ENGAGE_REPLICA_COUNT")
        if self.replica_count > self.event_partitions:
            raise ValueError("ENGAGE_REPLICA_COUNT must not exceed ENGAGE_EVENT_PARTITIONS")
        return self

    def partitions(self) -> list[int]:
        return owned_partitions(self.event_partitions, self.replica_index, self.replica_count)

    @field_validator("summed_properties")
    @classmethod
    def _summed_properties_parse(cls, value: str) -> str:
        parse_summed_properties("ENGAGE_SUMMED_PROPERTIES", value)
        return value

    def summed(self) -> SummedProperties:
        return parse_summed_properties("ENGAGE_SUMMED_PROPERTIES", self.summed_properties)


async def serve(settings: SegmentsSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    relay = OutboxRelay(sessions, bus)
    clock = settings.clock()
    consumer = EventsConsumer(sessions, bus, relay.notify, settings.summed(), clock)
    sweeper = TimedSweeper(sessions, relay.notify, clock, settings.timed_sweep_seconds)
    await server.run(
        settings,
        [
            GrpcService(
                ProfileApi(sessions, relay.notify, clock),
                profile_pb2_grpc.add_ProfileServiceServicer_to_server,
                "engage.v1.ProfileService",
            ),
            GrpcService(
                SegmentApi(sessions, relay.notify, clock),
                segment_pb2_grpc.add_SegmentServiceServicer_to_server,
                "engage.v1.SegmentService",
            ),
            GrpcService(
                WorkspaceApi(sessions, relay.notify, clock),
                workspace_pb2_grpc.add_WorkspaceServiceServicer_to_server,
                "engage.v1.WorkspaceService",
            ),
        ],
        ServiceRuntime(
            background=[
                lambda: consumer.consume(settings.partitions()),
                relay.run,
                sweeper.run,
            ],
            cleanups=[bus.close, engine.dispose],
            dependencies={"database": lambda: db.ping(engine), "nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(SegmentsSettings(), serve)


if __name__ == "__main__":
    main()
