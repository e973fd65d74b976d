"""The NATS JetStream bus: streams and durable consumers declared in code, protobuf payloads
published with `Nats-Msg-Id`, and a consumer loop that acks, retries with backoff, or parks a
poison message on a dead-letter subject.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import nats
import nats.errors
from google.protobuf.message import Message as ProtoMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context
from opentelemetry import trace

from engage import privacy, resources, subjects, telemetry

log = logging.getLogger(__name__)

WORKSPACE_HEADER = "Engage-Workspace"
MSG_ID_HEADER = "Nats-Msg-Id"

PayloadT = TypeVar("PayloadT", bound=ProtoMessage)

DAY = timedelta(days=1).total_seconds()
_RECONNECT_PAUSE_SECONDS = 0.5


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    retention: api.RetentionPolicy = api.RetentionPolicy.LIMITS
    max_age_seconds: float = 7 * DAY
    duplicate_window_seconds: float = 3600


EVENTS_STREAM = "EVENTS"

STREAMS = (
    # A day unless ingest, which publishes events, configures longer (`dedupe_window_hours`).
    StreamSpec(EVENTS_STREAM, [subjects.EVENTS], duplicate_window_seconds=DAY),
    StreamSpec("PROFILES", [subjects.PROFILES, subjects.MEMBERSHIPS]),
    StreamSpec("SENDS", [subjects.SENDS], retention=api.RetentionPolicy.WORK_QUEUE),
    StreamSpec("DELIVERIES", [subjects.DELIVERIES]),
    StreamSpec("JOURNEYS", [subjects.JOURNEYS]),
    StreamSpec("DEADLETTER", [subjects.DEAD_LETTERS], max_age_seconds=30 * DAY),
)


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer, named `<service>-<purpose>`."""

    durable: str
    stream: str
    filter_subjects: list[str]
    # Delays before retrying a failed message (nak); the last one repeats until max_deliver.
    backoff_seconds: list[float] = field(default_factory=lambda: [0.2, 1.0, 5.0, 15.0, 30.0])
    max_deliver: int = 8
    ack_wait_seconds: float = 30.0
    fetch_batch: int = 64
    # Messages of one fetch handled at once. Keep 1 where order matters (per-profile events);
    # independent work (one send each) gains throughput from overlapping I/O waits.
    concurrency: int = 1
    # At most this many messages delivered and not yet acked (None: 10,000). A consumer whose
    # order matters sets its fetch batch, so a second process bound to the same durable (a
    # replica starting while another stops) waits for the first one's acks instead of taking
    # later messages of the same partition out of order.
    max_ack_pending: int | None = None
    # Where its dead letters are parked, when several durables share one (partitions).
    dead_letter_name: str = ""

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_name or self.durable


class PermanentError(Exception):
    """A message that can never succeed (undecodable, invalid): dead-lettered at once."""


class Bus:
    """A NATS connection and its JetStream context, for one service process."""

    def __init__(
        self, client: NatsClient, replicas: int = 1, dedupe_window_hours: float | None = None
    ) -> None:
        self.client = client
        self.js: JetStreamContext = client.jetstream()
        self.replicas = replicas
        self.dedupe_window_hours = dedupe_window_hours

    @classmethod
    async def connect(
        cls, url: str, name: str, replicas: int = 1, dedupe_window_hours: float | None = None
    ) -> "Bus":
        """Connect, retrying until NATS answers; reconnects forever afterwards.

        `dedupe_window_hours` is the EVENTS stream's duplicate window, set by the service that
        publishes events (ingest). Left None, `declare_streams` keeps the window the stream has
        (24 h when it creates it), so a consumer starting later never undoes ingest's setting.
        """
        client = await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            drain_timeout=5,
        )
        return cls(client, replicas, dedupe_window_hours)

    @classmethod
    async def open(
        cls, url: str, name: str, replicas: int = 1, dedupe_window_hours: float | None = None
    ) -> "Bus":
        """Connect and make sure every stream exists as declared."""
        bus = await cls.connect(url, name, replicas, dedupe_window_hours)
        await bus.declare_streams()
        return bus

    async def declare_streams(self) -> None:
        """Create or update every stream of the bus (idempotent)."""
        for spec in STREAMS:
            try:
                existing: api.StreamInfo | None = await self.js.stream_info(spec.name)
            except NotFoundError:
                existing = None
            config = api.StreamConfig(
                name=spec.name,
                subjects=spec.subjects,
                retention=spec.retention,
                storage=api.StorageType.FILE,
                num_replicas=self.replicas,
                max_age=spec.max_age_seconds,
                duplicate_window=self._duplicate_window(spec, existing),
            )
            if existing is None:
                await self.js.add_stream(config)
            else:
                await self.js.update_stream(config)

    def _duplicate_window(self, spec: StreamSpec, existing: api.StreamInfo | None) -> float:
        if spec.name != EVENTS_STREAM:
            return spec.duplicate_window_seconds
        if self.dedupe_window_hours is not None:
            return self.dedupe_window_hours * 3600
        if existing is not None and existing.config.duplicate_window:
            return existing.config.duplicate_window
        return spec.duplicate_window_seconds

    async def declare_consumer(self, spec: ConsumerSpec) -> None:
        """Create the durable consumer, or bring an existing one to this configuration."""
        config = api.ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_seconds,
            max_deliver=spec.max_deliver,
            # No server-side backoff: NATS would use its first step as the ack wait of every
            # first delivery and redeliver any message still being worked on after 0.2 s.
            # Failures are retried by an explicit nak with the backoff delay instead.
            filter_subjects=spec.filter_subjects,
            max_ack_pending=spec.max_ack_pending or 10_000,
        )
        await self.js.add_consumer(spec.stream, config)

    async def publish(
        self, subject: str, payload: ProtoMessage, msg_id: str, workspace: str
    ) -> api.PubAck:
        """Publish a protobuf payload; JetStream drops a repeat of `msg_id` within its window."""
        headers = {MSG_ID_HEADER: msg_id, WORKSPACE_HEADER: workspace, **telemetry.inject_headers()}
        return await self.js.publish(subject, payload.SerializeToString(), headers=headers)

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> api.PubAck:
        return await self.js.publish(subject, data, headers=headers)

    async def consume(
        self,
        spec: ConsumerSpec,
        handle: Callable[[Msg], Awaitable[None]],
        together: Callable[[list[Msg]], Awaitable[None]] | None = None,
    ) -> None:
        """Run `handle` on every message of the consumer until cancelled.

        Success acks. A failure naks with the consumer's backoff, so it is retried; a
        `PermanentError`, or a failure on the last allowed delivery, parks the message on
        `engage.deadletter.<durable>` with the error and terminates it.

        With `together`, the messages of a fetch that brings several go to it at once first (one
        transaction for many messages) and are all acked when it returns; should it fail, each
        message is delivered alone through `handle`, with all of the above. A lone message goes
        to `handle`, whose span continues the caller's trace.
        """
        await self.declare_consumer(spec)
        subscription = await self.js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        try:
            while True:
                try:
                    messages = await subscription.fetch(spec.fetch_batch, timeout=1.0)
                except TimeoutError:  # nats-py raises its own or asyncio's on an empty fetch
                    continue
                except nats.errors.Error as error:
                    # NATS is away (restarting, failing over): the client reconnects by itself.
                    log.warning("fetch failed, will retry: %s", type(error).__name__)
                    await asyncio.sleep(_RECONNECT_PAUSE_SECONDS)
                    continue
                if together is not None and len(messages) > 1:
                    await self._deliver_together(spec, messages, handle, together)
                elif spec.concurrency == 1:
                    for message in messages:
                        await self._deliver(spec, message, handle)
                else:
                    await self._deliver_concurrently(spec, messages, handle)
        finally:
            # An open pull request would hold up the connection's drain at shutdown.
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    async def _deliver_together(
        self,
        spec: ConsumerSpec,
        messages: list[Msg],
        handle: Callable[[Msg], Awaitable[None]],
        together: Callable[[list[Msg]], Awaitable[None]],
    ) -> None:
        # One span for the lot, linked to the trace each message carried.
        links = [
            trace.Link(
                trace.get_current_span(telemetry.extract_context(m.headers)).get_span_context()
            )
            for m in messages
        ]
        try:
            with telemetry.tracer().start_as_current_span(
                f"{spec.durable} {len(messages)} messages",
                kind=trace.SpanKind.CONSUMER,
                links=links,
            ):
                async with _kept_in_progress(messages, spec.ack_wait_seconds):
                    await together(messages)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.info(
                "messages failed together; delivering them one at a time: %s",
                privacy.redact(type(error).__name__),
                extra={"consumer": spec.durable, "messages": len(messages)},
            )
            for message in messages:
                await self._deliver(spec, message, handle)
            return
        for message in messages:
            try:
                await message.ack()
            except nats.errors.Error as error:
                # Redelivered after the ack wait; the handler is idempotent on it.
                log.warning(
                    "ack not reported to NATS: %s",
                    type(error).__name__,
                    extra={"consumer": spec.durable, "subject": message.subject},
                )

    async def _deliver_concurrently(
        self, spec: ConsumerSpec, messages: list[Msg], handle: Callable[[Msg], Awaitable[None]]
    ) -> None:
        slots = asyncio.Semaphore(spec.concurrency)

        async def deliver_in_slot(message: Msg) -> None:
            async with slots:
                await self._deliver(spec, message, handle)

        await asyncio.gather(*(deliver_in_slot(message) for message in messages))

    async def _deliver(
        self, spec: ConsumerSpec, message: Msg, handle: Callable[[Msg], Awaitable[None]]
    ) -> None:
        token = otel_context.attach(telemetry.extract_context(message.headers))
        try:
            with telemetry.tracer().start_as_current_span(
                f"{spec.durable} {message.subject}", kind=trace.SpanKind.CONSUMER
            ):
                await self._handle_one(spec, message, handle)
        except nats.errors.Error as error:
            # The ack (or nak) did not reach NATS: the message comes again after the ack wait,
            # and every handler is idempotent on it.
            log.warning(
                "message outcome not reported to NATS: %s",
                type(error).__name__,
                extra={"consumer": spec.durable, "subject": message.subject},
            )
        finally:
            otel_context.detach(token)

    async def _handle_one(
        self, spec: ConsumerSpec, message: Msg, handle: Callable[[Msg], Awaitable[None]]
    ) -> None:
        delivered = message.metadata.num_delivered
        try:
            async with _kept_in_progress([message], spec.ack_wait_seconds):
                await handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            final = isinstance(error, PermanentError) or delivered >= spec.max_deliver
            context = {"consumer": spec.durable, "subject": message.subject, "delivered": delivered}
            reason = privacy.redact(f"{type(error).__name__}: {error}")
            if final:
                log.error("message dead-lettered: %s", reason, extra=context)
                await self.dead_letter(spec.dead_letters, message, message.data, reason)
                await message.term()
            else:
                log.warning("message failed, will retry: %s", reason, extra=context)
                delay = spec.backoff_seconds[min(delivered, len(spec.backoff_seconds)) - 1]
                await message.nak(delay=delay)
            return
        await message.ack()

    async def dead_letter(
        self, durable: str, message: Msg, data: bytes, reason: str, part: str = ""
    ) -> None:
        """Park `data` (the message's payload, or the `part` of it that failed) on
        `engage.deadletter.<durable>` with the reason, free of personal data. Parking the same
        message (or part) again, after a retry, is dropped as a duplicate."""
        headers = dict(message.headers or {})
        original = headers.get(MSG_ID_HEADER) or str(message.metadata.sequence.stream)
        headers.update(
            {
                MSG_ID_HEADER: f"deadletter:{durable}:{original}:{part}",
                "Engage-Original-Subject": message.subject,
                "Engage-Consumer": durable,
                "Engage-Error": privacy.redact(reason)[:1000],
                "Engage-Deliveries": str(message.metadata.num_delivered),
            }
        )
        await self.publish_raw(subjects.dead_letter(durable), data, headers)

    async def ping(self) -> None:
        """Raise unless the NATS server answers a PING now (a health dependency)."""
        if not self.client.is_connected:
            raise ConnectionError("not connected to NATS")
        await self.client.flush(timeout=1)

    async def close(self) -> None:
        """Finish in-flight work and close the connection."""
        if self.client.is_closed:
            return
        try:
            await self.client.drain()
        except Exception:
            log.warning("drain did not finish; closing", exc_info=True)
            await self.client.close()


def decode(message: Msg, payload_type: type[PayloadT]) -> PayloadT:
    """Parse a message's protobuf payload; an undecodable one can never succeed."""
    payload = payload_type()
    try:
        payload.ParseFromString(message.data)
    except Exception as error:
        raise PermanentError(f"undecodable {payload_type.__name__}: {error}") from error
    return payload


def workspace_of(message: Msg) -> str:
    """The workspace a message belongs to, from its `Engage-Workspace` header."""
    workspace = (message.headers or {}).get(WORKSPACE_HEADER, "")
    if not workspace:
        raise PermanentError(f"message on {message.subject} has no {WORKSPACE_HEADER} header")
    if not resources.is_valid_id(workspace):
        raise PermanentError(f"message on {message.subject} names no valid workspace")
    return workspace


def receive(message: Msg, payload_type: type[PayloadT]) -> tuple[str, PayloadT]:
    """The workspace and the payload of a bus message, checked the one way every consumer needs:
    decodable, with a workspace header that the payload's own `workspace` (when set) agrees
    with, and an `id` where the payload has one. Anything else can never succeed."""
    payload = decode(message, payload_type)
    workspace = workspace_of(message)
    fields = payload.DESCRIPTOR.fields_by_name
    named = getattr(payload, "workspace", "") if "workspace" in fields else ""
    if named and named != workspace:
        raise PermanentError(f"payload of workspace {named!r} under {workspace!r}")
    if "id" in fields and not getattr(payload, "id"):  # noqa: B009 - a proto field
        raise PermanentError(f"{payload_type.__name__} on {message.subject} has no id")
    return workspace, payload


@contextlib.asynccontextmanager
async def _kept_in_progress(messages: list[Msg], ack_wait_seconds: float) -> AsyncIterator[None]:
    """Tell JetStream the messages are still being worked on (every third of the ack wait), so
    a handler slower than the ack wait never sees its messages handed to a second worker."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ack_wait_seconds / 3)
            for message in messages:
                with contextlib.suppress(Exception):
                    await message.in_progress()

    heartbeat = asyncio.create_task(beat())
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
