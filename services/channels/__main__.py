"""`python -m services.channels`: templates, message records, and the sends consumer."""

import logging
from datetime import timedelta
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
from engage.v1 import message_pb2, message_pb2_grpc, template_pb2, template_pb2_grpc
from services.channels.adapters.email import SmtpEmailAdapter
from services.channels.api import MessageApi, TemplateApi
from services.channels.consumers import SendsConsumer, sends_consumer
from services.channels.messages import MessageStore, erase_person
from services.channels.sends import EmailOptions, SendProcessor
from services.channels.templates import TemplateStore

log = logging.getLogger(__name__)
# How much longer than the SMTP timeout a claim is taken to be still under way (clock skew).
HANDOFF_MARGIN_SECONDS = 5.0


class ChannelsSettings(Settings):
    service_name: str = "channels"
    grpc_port: int = 50054
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # The whole handoff of one message to the SMTP server, connection to reply.
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # The sends consumer's ack wait: keep it above the SMTP timeout, so even a handler whose
    # in-progress heartbeats stall is not redelivered while its message is still going out.
    sends_ack_wait_seconds: float = Field(default=60.0, gt=0)
    email_from: str = "Engage <no-reply@engage.localhost>"
    # Where the links in messages (unsubscribe) point.
    public_url: str = "http://127.0.0.1:8080"


async def serve(settings: ChannelsSettings) -> None:
    engine, sessions = await db.open_database(
        settings.resolved_database_url(), Path(__file__).parent / "migrations"
    )
    bus = await Bus.open(settings.nats_url, settings.service_name)
    relay = OutboxRelay(sessions, bus)
    profiles_channel = grpc.aio.insecure_channel(settings.profile_service_address)
    template_store = TemplateStore(sessions)
    processor = SendProcessor(
        sessions,
        template_store,
        ProfileDirectory(profiles_channel, settings.service_api_key),
        SmtpEmailAdapter(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_seconds),
        EmailOptions(
            default_sender=settings.email_from,
            public_url=settings.public_url,
            handoff_limit=timedelta(seconds=settings.smtp_timeout_seconds + HANDOFF_MARGIN_SECONDS),
        ),
        relay.notify,
    )
    if settings.sends_ack_wait_seconds <= settings.smtp_timeout_seconds:
        log.warning(
            "sends ack wait is not above the SMTP timeout: only heartbeats keep a slow send",
            extra={
                "ack_wait_seconds": settings.sends_ack_wait_seconds,
                "smtp_timeout_seconds": settings.smtp_timeout_seconds,
            },
        )
    sends = SendsConsumer(bus, processor, sends_consumer(settings.sends_ack_wait_seconds))
    erasures = erasure_handler(lambda erasure: erase_person(sessions, erasure))

    async def close_profiles_channel() -> None:
        await profiles_channel.close()

    await server.run(
        settings,
        [
            GrpcService(
                TemplateApi(template_store),
                template_pb2_grpc.add_TemplateServiceServicer_to_server,
                template_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
            ),
            GrpcService(
                MessageApi(MessageStore(sessions)),
                message_pb2_grpc.add_MessageServiceServicer_to_server,
                message_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name,
            ),
        ],
        ServiceRuntime(
            background=[
                relay.run,
                sends.run,
                lambda: bus.consume(erasure_consumer("channels"), erasures),
            ],
            cleanups=[bus.close, close_profiles_channel, engine.dispose],
            dependencies={"database": lambda: db.ping(engine), "nats": bus.ping},
        ),
    )


def main() -> None:
    server.launch(ChannelsSettings(), serve)


if __name__ == "__main__":
    main()
