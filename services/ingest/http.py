"""Ingest's Segment-compatible HTTP Tracking API (aiohttp), so web and mobile SDKs that speak
Segment's API send to Engage unchanged: point their API host at this listener.

Routes, all POST with a JSON body (any content type: analytics.js sends `text/plain`):
- `/v1/track`, `/v1/identify`, `/v1/alias`, `/v1/page`, `/v1/screen`, `/v1/group`: one call;
- `/v1/batch` (and `/v1/import`): `{"batch": [calls with "type"], "context", "sentAt"}`;
- `/v1/t`, `/v1/i`, `/v1/a`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/b`: the short paths analytics.js
  posts to.
A body may be sent with `Content-Encoding: gzip` or `deflate`. How the JSON becomes an `Event`
is in `tracking_api_json`; from there every event goes through the same `Intake` (validation,
dedupe, publishing) and the same `limits` as over gRPC.

Authentication: HTTP Basic with the write key as user name and an empty password, or
`writeKey` in the body. A write key is an Engage API key (`ENGAGE_API_KEYS`) with the `ingest`
role; a platform key names the workspace in `X-Engage-Workspace`.

Answers:
- 200 `{"success": true}` once JetStream has stored the events; a single call repeating a
  message id adds `"duplicate": true`; a batch with refused items adds `"errors": [{"index",
  "field", "description"}]` (its good items are stored);
- 400 `{"success": false, "error": {"code", "field", "message"}}` for a body that is not
  what its `Content-Encoding` says, not UTF-8 JSON, an invalid single call, a request over
  500 KB or a batch of more than 2,500 events (Segment answers 400 too, and its SDKs do not
  retry a 400); a batched event over 32 KB is refused on its own, in `errors`;
- 401 for a missing or unknown write key, 403 for a key without the `ingest` role;
- 503 when the bus does not store the event, or too many single events already wait for it
  (`max_waiting_events`): SDKs retry, and the message ids keep the retry harmless.
CORS is open (`*`), as browsers post from every site that embeds the SDK.
"""

import base64
import binascii
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace

from engage import telemetry
from engage.auth import API_KEY_HEADER, WORKSPACE_HEADER, ApiKeys, authorize
from engage.errors import EngageError, InvalidArgument, Unauthenticated
from engage.principal import Principal
from services.ingest import limits, tracking_api_json
from services.ingest.intake import BatchOutcome, Intake

log = logging.getLogger(__name__)

# Every route writes events: the same permission as the gRPC Batch call.
_PERMISSION = "/engage.v1.IngestService/Batch"
_SINGLE_CALLS = {call: call[0] for call in tracking_api_json.CALLS}
# zlib's `wbits` for each content coding accepted (RFC 9110: gzip, and deflate as zlib data).
_DECODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_STATUS = {
    "INVALID_ARGUMENT": 400,
    "RESOURCE_EXHAUSTED": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "UNAVAILABLE": 503,
}
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, traceparent, tracestate",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TrackingApi:
    """The request handlers; `app()` wires them to Segment's paths."""

    def __init__(self, intake: Intake, keys: ApiKeys) -> None:
        self.intake = intake
        self.keys = keys

    def app(self) -> web.Application:
        # One byte over the limit lets `_read_json` tell "too large" itself, as a 400.
        app = web.Application(client_max_size=limits.MAX_REQUEST_BYTES + 1, middlewares=[_cors])
        for call, short in _SINGLE_CALLS.items():
            handler = self._traced(self._single(call))
            app.router.add_post(f"/v1/{call}", handler)
            app.router.add_post(f"/v1/{short}", handler)
        for path in ("/v1/batch", "/v1/import", "/v1/b"):
            app.router.add_post(path, self._traced(self._batch))
        app.router.add_route("OPTIONS", "/v1/{call}", _preflight)
        return app

    def _single(self, call: str) -> Callable[[web.Request], Awaitable[dict[str, Any]]]:
        event_type = tracking_api_json.CALLS[call]

        async def accept(request: web.Request) -> dict[str, Any]:
            body, principal = await self._read(request)
            try:
                event = tracking_api_json.to_event(call, body, self.intake.clock())
                _, duplicate = await self.intake.accept_one(principal.workspace, event)
            except InvalidArgument as error:
                # A fault of the whole event (its size) is the body's.
                field = tracking_api_json.json_field(error.field, event_type) or "body"
                raise InvalidArgument(field, error.description) from None
            return {"success": True, "duplicate": True} if duplicate else {"success": True}

        return accept

    async def _batch(self, request: web.Request) -> dict[str, Any]:
        body, principal = await self._read(request)
        items = tracking_api_json.batch_events(body, self.intake.clock())
        outcome = await self.intake.accept_many(principal.workspace, items)
        if not outcome.refused:
            return {"success": True}
        return {"success": True, "errors": _batch_errors(outcome, items)}

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], Principal]:
        """The JSON body and the caller (a key in the header is checked before the body)."""
        header_key = _basic_user(request.headers.get("Authorization", ""))
        principal = self._principal(request, header_key) if header_key is not None else None
        body = await _read_json(request)
        return body, principal or self._principal(request, body.get("writeKey"))

    def _principal(self, request: web.Request, key: object) -> Principal:
        if not isinstance(key, str) or not key:
            raise Unauthenticated(
                "missing write key: send it as the Basic auth user name or as `writeKey`"
            )
        if not key.isascii():
            # Keys are ASCII; other text (even a lone surrogate from JSON) is simply not one.
            raise Unauthenticated("invalid API key")
        metadata = {API_KEY_HEADER: key}
        if workspace := request.headers.get(WORKSPACE_HEADER):
            metadata[WORKSPACE_HEADER] = workspace
        principal = self.keys.authenticate(metadata)
        authorize(principal, _PERMISSION)
        return principal

    def _traced(self, accept: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        """Continue the caller's trace (`traceparent`), and map errors to status codes."""

        async def handle(request: web.Request) -> web.StreamResponse:
            headers = {key.lower(): value for key, value in request.headers.items()}
            token = otel_context.attach(telemetry.extract_context(headers))
            try:
                with telemetry.tracer().start_as_current_span(
                    f"POST {request.path}", kind=trace.SpanKind.SERVER
                ):
                    return web.json_response(await accept(request))
            except EngageError as error:
                # The caller's mistake (or the bus being down), not ours: no traceback.
                log.info(
                    "request refused",
                    extra={"path": request.path, "code": error.reason, "field": error.field},
                )
                return _error_response(error)
            except Exception:
                log.exception("unhandled error", extra={"path": request.path})
                return web.json_response(
                    {"success": False, "error": {"code": "INTERNAL", "message": "internal error"}},
                    status=500,
                )
            finally:
                otel_context.detach(token)

        return handle


class TrackingHttpServer:
    """The listener: started before the service announces itself, stopped at shutdown."""

    def __init__(self, api: TrackingApi, shutdown_grace: float) -> None:
        # Bodies are decompressed by `_read_json`, which bounds the result and answers 400
        # for bytes that are not what `Content-Encoding` says (aiohttp would log a crash).
        self.runner = web.AppRunner(
            api.app(), access_log=None, shutdown_timeout=shutdown_grace, auto_decompress=False
        )

    async def start(self, host: str, port: int) -> str:
        """Listen on `host:port` (0: any free port); the address bound."""
        await self.runner.setup()
        # SO_REUSEPORT, as gRPC sets it: processes on one host may share the port.
        await web.TCPSite(self.runner, host, port, reuse_port=True).start()
        return f"{host}:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def _basic_user(authorization: str) -> str | None:
    """The user name of `Authorization: Basic …` (Segment's write key), None without one."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("Authorization: malformed Basic credentials") from None
    return decoded.partition(":")[0]


async def _read_json(request: web.Request) -> dict[str, Any]:
    """The body, decompressed as its `Content-Encoding` says, as a JSON object."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise limits.request_too_large("body") from None
    limits.check_request_bytes(len(raw), "body")
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding != "identity":
        raw = _decompressed(raw, coding)
    try:
        # JSON between systems is UTF-8 (RFC 8259); a byte order mark is tolerated.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidArgument("body", f"not UTF-8 text (byte {error.start})") from None
    try:
        body = json.loads(text)
    except ValueError as error:
        # The decoder's message names a position, never the text there.
        raise InvalidArgument("body", f"not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidArgument("body", "nested too deep") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return body


def _decompressed(data: bytes, coding: str) -> bytes:
    """`data` decoded from `coding`, refused past MAX_REQUEST_BYTES (no decompression bomb)."""
    wbits = _DECODINGS.get(coding)
    if wbits is None:
        raise InvalidArgument("Content-Encoding", f"{coding!r} unsupported: use gzip or deflate")
    decoded = bytearray()
    # A gzip body may hold several members, one after the other (RFC 1952).
    while data:
        decoder = zlib.decompressobj(wbits)
        room = limits.MAX_REQUEST_BYTES + 1 - len(decoded)
        try:
            decoded += decoder.decompress(data, room)
        except zlib.error:
            raise InvalidArgument("body", f"not valid {coding} data") from None
        if len(decoded) > limits.MAX_REQUEST_BYTES:
            raise limits.request_too_large("body")
        if not decoder.eof:
            raise InvalidArgument("body", f"{coding} data ends early (truncated)")
        data = decoder.unused_data
    return bytes(decoded)


def _batch_errors(outcome: BatchOutcome, items: list[Any]) -> list[dict[str, Any]]:
    errors = []
    for refused in outcome.refused:
        item = items[refused.index]
        # Fields of a decoded item are proto names; an undecodable item's are JSON already.
        name = (
            refused.field
            if isinstance(item, InvalidArgument)
            else tracking_api_json.json_field(refused.field, item.type)
        )
        path = f"batch[{refused.index}]" + (f".{name}" if name else "")
        errors.append({"index": refused.index, "field": path, "description": refused.description})
    return errors


def _error_response(error: EngageError) -> web.Response:
    detail: Mapping[str, str] = {
        "code": error.reason,
        "field": error.field,
        "message": error.message,
    }
    return web.json_response(
        {"success": False, "error": detail}, status=_STATUS.get(error.reason, 500)
    )


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(_CORS)
    return response


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)
