"""The sends consumer: every send of each `SendRequests` on `engage.sends.>` goes through
`SendProcessor`."""

import asyncio
import logging

from nats.aio.msg import Msg

from engage import bus, privacy, subjects
from engage.bus import Bus, ConsumerSpec, PermanentError
from engage.v1 import bus_pb2
from services.channels.sends import SendProcessor

log = logging.getLogger(__name__)

# Sends handed to the provider at once, whichever messages they came in (each waits on it).
SENDS_AT_ONCE = 8


def sends_consumer(ack_wait_seconds: float) -> ConsumerSpec:
    """The durable `channels-sends`. The bus keeps a message in progress while its handler
    runs; an ack wait above the provider's timeout also covers a stalled heartbeat."""
    return ConsumerSpec(
        durable="channels-sends",
        stream="SENDS",
        filter_subjects=[subjects.SENDS],
        ack_wait_seconds=ack_wait_seconds,
        # Messages are independent of each other: overlap several; SENDS_AT_ONCE bounds the
        # sends they make together, first come first served (a journey's send that arrives
        # behind a broadcast's bundle waits for it: no priority between them yet).
        fetch_batch=16,
        concurrency=8,
    )


class SendsConsumer:
    def __init__(self, bus: Bus, processor: SendProcessor, spec: ConsumerSpec) -> None:
        self.bus = bus
        self.processor = processor
        self.spec = spec
        self.slots = asyncio.Semaphore(SENDS_AT_ONCE)

    async def run(self) -> None:
        await self.bus.consume(self.spec, self.handle)

    async def handle(self, message: Msg) -> None:
        """Every send of the message; should one need another try, the whole message comes
        again (a send already recorded is not made twice: see `SendProcessor`)."""
        workspace, requests = bus.receive(message, bus_pb2.SendRequests)

        async def handle_in_slot(send: bus_pb2.SendRequested) -> None:
            async with self.slots:
                await self._handle_send(message, workspace, send)

        outcomes = await asyncio.gather(
            *(handle_in_slot(send) for send in requests.sends), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _handle_send(self, message: Msg, workspace: str, send: bus_pb2.SendRequested) -> None:
        """One send; one that can never succeed, or fails on the last delivery, is
        dead-lettered alone."""
        delivery = message.metadata.num_delivered
        context = {"workspace": workspace, "idempotency_key": send.id, "delivery": delivery}
        log.info("send received", extra=context)
        final = delivery >= self.spec.max_deliver
        try:
            _check(send, workspace)
            await self.processor.process(send, workspace, final_attempt=final)
        except Exception as error:
            if not (final or isinstance(error, PermanentError)):
                raise
            reason = privacy.redact(f"{type(error).__name__}: {error}")
            log.error("send dead-lettered: %s", reason, extra=context)
            await self.bus.dead_letter(
                self.spec.dead_letters, message, send.SerializeToString(), reason, send.id
            )


def _check(send: bus_pb2.SendRequested, workspace: str) -> None:
    """A send without its key, or naming another workspace than its message, never succeeds."""
    if not send.id:
        raise PermanentError("a send has no id")
    if send.workspace and send.workspace != workspace:
        raise PermanentError(f"send of workspace {send.workspace!r} under {workspace!r}")
