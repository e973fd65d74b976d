"""What the scheduler publishes, as outbox rows: sends and journey events, bundled; and the
identifies of update-trait steps, on EVENTS as ingest publishes events.

A transaction's sends go out as `SendRequests`, one message per channel and workspace for up to
SENDS_PER_MESSAGE of them, and its journey events as `JourneyEvents`, one message per workspace
for up to EVENTS_PER_MESSAGE; a bundle also closes before BYTES_PER_MESSAGE, under the bus's
payload limit. A broadcast decides thousands of sends a second and 10,000 timers firing at once
make tens of thousands of journey events, which one message each would cap at JetStream's
per-message rate. Each send and each event keeps its own id: a send's is the idempotency key
channels records it under.
"""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from engage import events
from engage.outbox import outbox_row
from engage.v1 import bus_pb2, common_pb2

SENDS_PER_MESSAGE = 500
EVENTS_PER_MESSAGE = 1_000
# Well under NATS's default 1 MB max_payload; a send carries at most one event's properties
# (32 KiB at ingest), so a bundle that reaches this closes with room to spare.
BYTES_PER_MESSAGE = 256 * 1024

# An update-trait step's identifies: as many per EVENTS message as ingest's Batch call takes.
IDENTIFIES_PER_MESSAGE = 500

Payload = TypeVar("Payload", bus_pb2.SendRequested, bus_pb2.JourneyEvent, common_pb2.Event)


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    payload: bus_pb2.SendRequested | bus_pb2.JourneyEvent


def outbox_rows(messages: Sequence[OutgoingMessage], now: datetime) -> list[dict[str, Any]]:
    """The rows to write for `messages`, keeping their order within each subject."""
    sends: dict[tuple[str, str], list[bus_pb2.SendRequested]] = {}
    announced: dict[tuple[str, str], list[bus_pb2.JourneyEvent]] = {}
    for message in messages:
        payload = message.payload
        key = (message.subject, payload.workspace)
        if isinstance(payload, bus_pb2.SendRequested):
            sends.setdefault(key, []).append(payload)
        else:
            announced.setdefault(key, []).append(payload)
    occurred_at = Timestamp()
    occurred_at.FromDatetime(now)
    rows = []
    for (subject, workspace), requested in sends.items():
        for sends_bundle in _bundles(requested, SENDS_PER_MESSAGE):
            sent = bus_pb2.SendRequests(id=_bundle_id("sends", sends_bundle), sends=sends_bundle)
            rows.append(_row(subject, workspace, sent, occurred_at, now))
    for (subject, workspace), happened in announced.items():
        for events_bundle in _bundles(happened, EVENTS_PER_MESSAGE):
            bundle_id = _bundle_id("journeys", events_bundle)
            bundle = bus_pb2.JourneyEvents(id=bundle_id, events=events_bundle)
            rows.append(_row(subject, workspace, bundle, occurred_at, now))
    return rows


@dataclass(frozen=True)
class TraitUpdate:
    """An identify an update-trait step makes."""

    workspace: str
    identify: common_pb2.Event


def identify_rows(
    updates: Sequence[TraitUpdate], now: datetime, partitions: int
) -> list[dict[str, Any]]:
    """The rows that publish `updates` on EVENTS: one batch per workspace and partition, as
    ingest makes them, so segments applies them in order with the profile's other events."""
    grouped: dict[tuple[str, str], list[common_pb2.Event]] = {}
    for update in updates:
        subject = events.subject_of(update.workspace, update.identify, partitions)
        grouped.setdefault((subject, update.workspace), []).append(update.identify)
    rows = []
    for (subject, workspace), identifies in grouped.items():
        for bundle in _bundles(identifies, IDENTIFIES_PER_MESSAGE):
            made = events.batch(workspace, bundle, now)
            rows.append(outbox_row(subject, workspace, made, events.msg_id(made), now))
    return rows


def _bundles(payloads: list[Payload], most: int) -> Iterator[list[Payload]]:
    bundle: list[Payload] = []
    size = 0
    for payload in payloads:
        payload_size = payload.ByteSize()
        full = len(bundle) == most or size + payload_size > BYTES_PER_MESSAGE
        if bundle and full:
            yield bundle
            bundle, size = [], 0
        bundle.append(payload)
        size += payload_size
    if bundle:
        yield bundle


def _bundle_id(
    kind: str, bundle: Sequence[bus_pb2.SendRequested] | Sequence[bus_pb2.JourneyEvent]
) -> str:
    """Named by the ids it holds, so two bundles of different payloads never share the name
    (JetStream's dedupe would drop the second)."""
    digest = hashlib.sha256("\n".join(payload.id for payload in bundle).encode()).hexdigest()
    return f"{kind}:{digest[:32]}"


def _row(
    subject: str,
    workspace: str,
    bundle: bus_pb2.SendRequests | bus_pb2.JourneyEvents,
    occurred_at: Timestamp,
    now: datetime,
) -> dict[str, Any]:
    bundle.workspace = workspace
    bundle.occurred_at.CopyFrom(occurred_at)
    return outbox_row(subject, workspace, bundle, bundle.id, now)
