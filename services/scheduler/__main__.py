"""`python -m services.scheduler`: journeys and campaigns, their timers and the sends they
make."""

from pathlib import Path

import grpc
from pydantic import Field

from engage import db, server
from engage.bus import Bus
from engage.erasure import erasure_consumer, erasure_handler
from engage.outbox import OutboxRelay
from engage.profiles import ProfileDirectory
from engage.server import GrpcService, ServiceRuntime
from engage.settings import Settings
from engage.v1 import campaign_pb2_grpc, journey_pb2_grpc
from services.scheduler.api import JourneyApi
from services.scheduler.broadcasts import Audience, BroadcastWorker
from services.scheduler.campaign_api import CampaignApi
from services.scheduler.consumers import (
    DELIVERIES,
    EVENTS,
    MEMBERSHIPS,
    DeliveryConsumer,
    ErasureConsumer,
    EventConsumer,
    JourneyBatches,
    MembershipConsumer,
)
from services.scheduler.policies import WorkspacePolicies
from services.scheduler.simulator import JourneySimulator
from services.scheduler.timers import TimerWorker


class SchedulerSettings(Settings):
    service_name: str = "scheduler"
    grpc_port: int = 50053
    # Seconds between looks for due timers when none was due.
    timer_poll_seconds: float = Field(default=0.5, gt=0)


async def serve(settings: SchedulerSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    relay = OutboxRelay(sessions, bus)
    clock = settings.clock()
    profiles_channel = grpc.aio.insecure_channel(settings.profile_service_address)
    profiles = ProfileDirectory(profiles_channel, settings.service_api_key)
    # The workspace's settings are served by the segments process, beside its profiles.
    policies = WorkspacePolicies(profiles_channel, settings.service_api_key)
    timers = TimerWorker(
        sessions,
        relay.notify,
        profiles,
        policies,
        clock,
        settings.event_partitions,
        settings.timer_poll_seconds,
    )
    batches = JourneyBatches(
        sessions, relay, timers.wake, policies, settings.event_partitions, clock
    )
    audience = Audience(profiles_channel, settings.service_api_key)
    broadcasts = BroadcastWorker(
        sessions, relay.notify, audience, policies, clock, settings.timer_poll_seconds
    )
    deliveries = DeliveryConsumer(sessions, batches, clock)
    events = EventConsumer(batches)
    memberships = MembershipConsumer(batches)
    erasures = erasure_handler(ErasureConsumer(sessions).erase)
    await server.run(
        settings,
        [
            GrpcService(
                CampaignApi(sessions, clock),
                campaign_pb2_grpc.add_CampaignServiceServicer_to_server,
                "engage.v1.CampaignService",
            ),
            GrpcService(
                JourneyApi(
                    sessions, JourneySimulator(sessions, audience, profiles, policies, clock), clock
                ),
                journey_pb2_grpc.add_JourneyServiceServicer_to_server,
                "engage.v1.JourneyService",
            ),
        ],
        ServiceRuntime(
            background=[
                lambda: bus.consume(EVENTS, events.handle, events.handle_together),
                lambda: bus.consume(MEMBERSHIPS, memberships.handle),
                lambda: bus.consume(DELIVERIES, deliveries.handle),
                lambda: bus.consume(erasure_consumer("scheduler"), erasures),
                relay.run,
                timers.run,
                broadcasts.run,
            ],
            cleanups=[bus.close, profiles_channel.close, engine.dispose],
            dependencies={"database": lambda: db.ping(engine), "nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(SchedulerSettings(), serve)


if __name__ == "__main__":
    main()
