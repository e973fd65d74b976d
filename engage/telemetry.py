"""Structured JSON logs and OpenTelemetry tracing, set up once per process.

Trace context travels as W3C `traceparent` in gRPC metadata and in NATS message headers, so one
trace runs from the ingested event to the provider call.
"""

import functools
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from engage.privacy import redact
from engage.settings import Settings

# Attributes of a LogRecord that are not extra fields.
_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, message, trace id and any extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup(settings: Settings) -> None:
    """Configure logging and tracing for this process; call once from `main()`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(settings.service_name))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.trace_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)


def shutdown() -> None:
    """Flush spans still buffered."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


@functools.cache
def tracer() -> trace.Tracer:
    """Engage's tracer, looked up once (the lookup cost about half as much as the span itself,
    on every call). One taken before `setup` is a proxy that follows the provider set later."""
    return trace.get_tracer("engage")


def inject_headers() -> dict[str, str]:
    """Trace context of the current span, as headers or metadata to send along."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(
    headers: Mapping[str, str] | Iterable[tuple[str, Any]] | None,
) -> otel_context.Context:
    """The trace context a message or call carried, to parent the spans that handle it."""
    if headers is None:
        carrier: dict[str, str] = {}
    elif isinstance(headers, Mapping):
        carrier = dict(headers)
    else:
        carrier = {key: value for key, value in headers if isinstance(value, str)}
    return propagate.extract(carrier)
