"""Reporting keeps one fact per delivery and journey event, whatever the redeliveries."""

import logging
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import subjects
from engage.bus import ConsumerSpec, receive
from engage.db import transaction
from engage.erasure import Erasure
from engage.v1 import bus_pb2
from services.reporting import store
from services.reporting.models import DeliveryFact, JourneyFact

log = logging.getLogger(__name__)

DELIVERIES = ConsumerSpec("reporting-deliveries", "DELIVERIES", [subjects.DELIVERIES])
JOURNEYS = ConsumerSpec("reporting-journeys", "JOURNEYS", [subjects.JOURNEYS])


class FactConsumer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def handle_delivery(self, message: Msg) -> None:
        workspace, event = receive(message, bus_pb2.DeliveryEvent)
        row = {
            "workspace": workspace,
            "event_id": event.id,
            "kind": int(event.kind),
            "channel": int(event.channel),
            "journey": event.journey,
            "journey_version": event.journey_version,
            "step_id": event.step_id,
            "campaign": event.campaign,
            "idempotency_key": event.idempotency_key,
            "occurred_at": _time(event.occurred_at),
        }
        await self._record(DeliveryFact, workspace, [row])

    async def handle_journey(self, message: Msg) -> None:
        """Every event of a `JourneyEvents`, in one transaction."""
        workspace, bundle = receive(message, bus_pb2.JourneyEvents)
        rows = [
            {
                "workspace": workspace,
                "event_id": event.id,
                "kind": int(event.kind),
                "journey": event.journey,
                "journey_version": event.journey_version,
                "enrollment_id": event.enrollment_id,
                "step_id": event.step_id,
                "occurred_at": _time(event.occurred_at),
            }
            for event in bundle.events
        ]
        await self._record(JourneyFact, workspace, rows)

    async def erase(self, erasure: Erasure) -> int:
        """GDPR erasure: nothing to change. Facts are counted by journey, campaign and kind and
        never copy a user id, address or profile name from the events (their ids and keys are
        built from journeys and one-way enrollment digests), so the counts stay and no row
        names the person. The durable exists so that a fact that does keep a person's id later
        (a per-customer timeline) is erased here, keyed by `erasure.user_id`."""
        return 0

    async def _record(
        self, model: type[SQLModel], workspace: str, rows: list[dict[str, Any]]
    ) -> None:
        async with transaction(self.sessions, workspace) as session:
            new = [await store.insert_fact(session, model, row) for row in rows]
        for row, inserted in zip(rows, new, strict=True):
            if not inserted:
                log.info(
                    "duplicate fact ignored",
                    extra={"workspace": workspace, "event_id": row["event_id"]},
                )


def _time(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)
