"""Run a service: grpc.aio server with health, reflection and the call interceptor; background
tasks (bus consumers, outbox relays); graceful shutdown on SIGTERM.

Shutdown order: health NOT_SERVING → `server.stop(grace)` → background tasks stopped → the
cleanups given (drain NATS, dispose the database engine), in that order.
"""

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import trace

from engage import health, telemetry
from engage.auth import ApiKeys, authorize
from engage.errors import INTERNAL_STATUS, EngageError, InvalidArgument
from engage.principal import current_principal
from engage.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Methods anyone may call: Kubernetes probes and tooling.
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass
class GrpcService:
    """A servicer, the generated function that registers it, and its full proto name."""

    servicer: object
    register: Callable[[Any, grpc.aio.Server], None]
    name: str


@dataclass
class ServiceRuntime:
    """Everything a service process runs besides its servicers."""

    background: Sequence[Callable[[], Awaitable[None]]] = ()
    cleanups: Sequence[Callable[[], Awaitable[None]]] = ()
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Listeners besides gRPC, already bound, e.g. `{"http_address": "127.0.0.1:8088"}`: written
    # into the ready file beside `address`, so launchers and tests find them.
    listeners: Mapping[str, str] = field(default_factory=dict)
    # What the process needs to do its work, by name (`database`, `nats`): health is SERVING
    # only while every ping answers.
    dependencies: Mapping[str, health.Ping] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def call_scope(
    context: grpc.aio.ServicerContext, method: str, keys: ApiKeys
) -> AsyncIterator[None]:
    """Around every call: continue the caller's trace, authenticate, map errors to status."""
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    token = otel_context.attach(telemetry.extract_context(metadata))
    try:
        with telemetry.tracer().start_as_current_span(method, kind=trace.SpanKind.SERVER):
            try:
                principal = keys.authenticate(metadata)
                authorize(principal, method)
                current_principal.set(principal)
                yield
            except EngageError as error:
                # The caller's mistake (or a dependency away), not a crash: one line, no trace.
                log.info(
                    "call refused",
                    extra={"method": method, "code": error.code.name, "field": error.field},
                )
                await context.abort_with_status(rpc_status.to_status(error.to_status()))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                log.exception("unhandled error", extra={"method": method})
                await context.abort_with_status(rpc_status.to_status(INTERNAL_STATUS))
    finally:
        otel_context.detach(token)


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request message whose bytes are not valid protobuf."""

    error: str


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands bad bytes on as `_Undecodable` instead of raising: grpcio would
    answer INTERNAL, where the caller's mistake deserves INVALID_ARGUMENT."""
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:
            return _Undecodable(type(error).__name__)

    return decode


def _checked(request: Any) -> Any:
    if isinstance(request, _Undecodable):
        raise InvalidArgument("request", f"is not a valid protobuf message ({request.error})")
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)


def _wrap(handler: grpc.RpcMethodHandler, method: str, keys: ApiKeys) -> grpc.RpcMethodHandler:
    codec = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    streamed_requests = handler.request_streaming
    if handler.unary_unary or handler.stream_unary:
        behavior = handler.unary_unary or handler.stream_unary

        async def single(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with call_scope(context, method, keys):
                requests = _checked_stream(request) if streamed_requests else _checked(request)
                return await behavior(requests, context)

        make = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler
        )
        return make(single, **codec)
    streaming = handler.unary_stream or handler.stream_stream

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with call_scope(context, method, keys):
            requests = _checked_stream(request) if streamed_requests else _checked(request)
            async for response in streaming(requests, context):
                yield response

    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return make(stream, **codec)


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Puts every Engage call inside `call_scope`; health and reflection stay open."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_OPEN_SERVICES):
            return handler
        return _wrap(handler, details.method, self.keys)


SettingsT = TypeVar("SettingsT", bound=Settings)


def launch(settings: SettingsT, serve: Callable[[SettingsT], Coroutine[Any, Any, None]]) -> None:
    """A service's `main()`: set up logs and tracing, then serve until told to stop."""
    telemetry.setup(settings)
    asyncio.run(serve(settings))


async def run(settings: Settings, services: Sequence[GrpcService], runtime: ServiceRuntime) -> None:
    """Serve until SIGTERM or SIGINT (or a background task fails), then shut down in order."""
    server = grpc.aio.server(
        interceptors=[CallInterceptor(ApiKeys.parse(settings.api_keys))],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.register(service.servicer, server)
    names = [s.name for s in services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    watch = health.HealthWatch(health_servicer, names, runtime.dependencies, settings.health_period)
    await watch.check()
    address = f"{settings.grpc_host}:{port}"
    _announce(settings, {"address": address, **runtime.listeners})

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.stopping.set)
    jobs = [watch.run(), *(job() for job in runtime.background)]
    tasks = [asyncio.create_task(_watched(job, runtime.stopping)) for job in jobs]
    await runtime.stopping.wait()

    log.info("stopping", extra={"address": address})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for cleanup in runtime.cleanups:
        await cleanup()
    telemetry.shutdown()
    log.info("stopped")


async def _watched(job: Awaitable[None], stopping: asyncio.Event) -> None:
    """A background task that ends on its own stops the whole service: Kubernetes restarts it."""
    try:
        await job
        log.error("background task ended")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task failed")
    stopping.set()


def _announce(settings: Settings, addresses: Mapping[str, str]) -> None:
    log.info("serving", extra=dict(addresses))
    if settings.ready_file:
        tmp = settings.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"service": settings.service_name, **addresses}))
        tmp.replace(settings.ready_file)
