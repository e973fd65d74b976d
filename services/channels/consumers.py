"""The sends consumer: every `SendRequested` on `engage.sends.>` goes through `SendProcessor`."""

import logging

from nats.aio.msg import Msg

from engage import bus, subjects
from engage.bus import Bus, ConsumerSpec
from engage.v1 import bus_pb2
from services.channels.sends import SendProcessor

log = logging.getLogger(__name__)


def sends_consumer(ack_wait_seconds: float) -> ConsumerSpec:
    """The durable `channels-sends`. The bus keeps a message in progress while its handler
    runs; an ack wait above the provider's timeout also covers a stalled heartbeat."""
    return ConsumerSpec(
        durable="channels-sends",
        stream="SENDS",
        filter_subjects=[subjects.SENDS],
        ack_wait_seconds=ack_wait_seconds,
        # Sends wait on the provider: overlap eight of them (each is independent of the others).
        fetch_batch=16,
        concurrency=8,
    )


class SendsConsumer:
    def __init__(self, bus: Bus, processor: SendProcessor, spec: ConsumerSpec) -> None:
        self.bus = bus
        self.processor = processor
        self.spec = spec

    async def run(self) -> None:
        await self.bus.consume(self.spec, self.handle)

    async def handle(self, message: Msg) -> None:
        workspace, send = bus.receive(message, bus_pb2.SendRequested)
        delivery = message.metadata.num_delivered
        log.info(
            "send received",
            extra={"workspace": workspace, "idempotency_key": send.id, "delivery": delivery},
        )
        final = delivery >= self.spec.max_deliver
        await self.processor.process(send, workspace, final_attempt=final)
