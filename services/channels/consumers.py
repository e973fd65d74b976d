"""The sends consumer: every `SendRequested` on `engage.sends.>` goes through `SendProcessor`."""

from nats.aio.msg import Msg

from engage.bus import WORKSPACE_HEADER, Bus, ConsumerSpec, PermanentError, decode
from engage.v1 import bus_pb2
from services.channels.sends import SendProcessor

SENDS_CONSUMER = ConsumerSpec(
    durable="channels-sends",
    stream="SENDS",
    filter_subjects=["engage.sends.>"],
    # Sends wait on the provider: overlap eight of them (each is independent of the others).
    fetch_batch=16,
    concurrency=8,
)


class SendsConsumer:
    def __init__(self, bus: Bus, processor: SendProcessor) -> None:
        self.bus = bus
        self.processor = processor

    async def run(self) -> None:
        await self.bus.consume(SENDS_CONSUMER, self.handle)

    async def handle(self, message: Msg) -> None:
        send = decode(message, bus_pb2.SendRequested)
        header = (message.headers or {}).get(WORKSPACE_HEADER, "")
        workspace = send.workspace or header
        if not workspace or (header and header != workspace):
            raise PermanentError(f"send on {message.subject} has no single workspace")
        if not send.id:
            raise PermanentError(f"send on {message.subject} has no id")
        final = message.metadata.num_delivered >= SENDS_CONSUMER.max_deliver
        await self.processor.process(send, workspace, final_attempt=final)
