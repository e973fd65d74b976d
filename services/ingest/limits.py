"""What ingest accepts, the same whichever door an event comes in by: gRPC (IngestService) or
Segment's HTTP Tracking API. Segment's documented limits, with "KB" as 1,024 bytes:

- a request carries at most 500 KB (512,000 bytes) and a batch at most 2,500 events; over
  either, the whole request is refused (gRPC RESOURCE_EXHAUSTED, HTTP 400) and nothing is
  stored. The 500 KB are counted on the request as the caller sends it: the HTTP body after
  any `Content-Encoding` is undone, the gRPC request message as protobuf bytes;
- an event is at most 32 KB (32,768 bytes), measured on both doors the same way: the UTF-8
  size of the event's compact JSON form (protobuf's JSON mapping of the `Event`, as the caller
  sent it, before ingest adds a message id or times), so one event gets one verdict whatever
  door it took. An event over it is refused on its own; the other events of its batch are
  stored.
"""

from datetime import UTC, datetime, timedelta

from engage.errors import ResourceExhausted

MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
MAX_EVENT_BYTES = 32 * 1024

MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200
MAX_NESTING = 8
MAX_FUTURE = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def check_request_bytes(size: int, field: str) -> None:
    """Refuse a request over MAX_REQUEST_BYTES; `field` names it in the caller's words."""
    if size > MAX_REQUEST_BYTES:
        raise request_too_large(field)


def request_too_large(field: str) -> ResourceExhausted:
    return ResourceExhausted(f"{field}: at most {MAX_REQUEST_BYTES} bytes per request", field)


def check_batch_events(count: int, field: str) -> None:
    """Refuse a batch of more than MAX_BATCH_EVENTS events."""
    if count > MAX_BATCH_EVENTS:
        raise ResourceExhausted(f"{field}: at most {MAX_BATCH_EVENTS} events per batch", field)
