"""What the scheduler publishes, as outbox rows: journey events one a message, sends bundled.

Sends go out as `SendRequests`, one message per channel for up to SENDS_PER_MESSAGE sends (and
SEND_BYTES_PER_MESSAGE, under the bus's payload limit): a broadcast decides thousands of sends a
second, which one message each would cap at JetStream's per-message rate. Each send keeps its
own id, the idempotency key channels records it under.
"""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from engage.outbox import outbox_row
from engage.v1 import bus_pb2

SENDS_PER_MESSAGE = 500
# Well under NATS's default 1 MB max_payload; a send carries at most one event's properties
# (32 KiB at ingest), so a bundle that reaches this closes with room to spare.
SEND_BYTES_PER_MESSAGE = 256 * 1024


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    msg_id: str
    payload: bus_pb2.SendRequested | bus_pb2.JourneyEvent


def outbox_rows(messages: Sequence[OutgoingMessage], now: datetime) -> list[dict[str, Any]]:
    """The rows to write for `messages`, in their order within each subject."""
    rows = []
    sends: dict[tuple[str, str], list[bus_pb2.SendRequested]] = {}
    for message in messages:
        if isinstance(message.payload, bus_pb2.SendRequested):
            key = (message.subject, message.payload.workspace)
            sends.setdefault(key, []).append(message.payload)
        else:
            payload = message.payload
            rows.append(
                outbox_row(message.subject, payload.workspace, payload, message.msg_id, now)
            )
    for (subject, workspace), requested in sends.items():
        for bundle in _bundles(requested):
            rows.append(_bundle_row(subject, workspace, bundle, now))
    return rows


def _bundles(sends: list[bus_pb2.SendRequested]) -> Iterator[list[bus_pb2.SendRequested]]:
    bundle: list[bus_pb2.SendRequested] = []
    size = 0
    for send in sends:
        send_size = send.ByteSize()
        if bundle and (
            len(bundle) == SENDS_PER_MESSAGE or size + send_size > SEND_BYTES_PER_MESSAGE
        ):
            yield bundle
            bundle, size = [], 0
        bundle.append(send)
        size += send_size
    if bundle:
        yield bundle


def _bundle_row(
    subject: str, workspace: str, sends: list[bus_pb2.SendRequested], now: datetime
) -> dict[str, Any]:
    occurred_at = Timestamp()
    occurred_at.FromDatetime(now)
    # Named by the keys it holds, so two bundles of different sends never share the name
    # (JetStream's dedupe would drop the second).
    digest = hashlib.sha256("\n".join(send.id for send in sends).encode()).hexdigest()[:32]
    bundle_id = f"sends:{digest}"
    payload = bus_pb2.SendRequests(
        id=bundle_id, occurred_at=occurred_at, workspace=workspace, sends=sends
    )
    return outbox_row(subject, workspace, payload, bundle_id, now)
