"""Profile announcements travel several to a bus message, in order, each keeping its id."""

from dataclasses import dataclass
from datetime import UTC, datetime

from engage.v1 import bus_pb2
from services.segments.profile_changes import outbox_rows, profile_change
from services.segments.segment_store import CHANGES_PER_MESSAGE

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
UPDATED = bus_pb2.ProfileChanged.KIND_UPDATED


@dataclass
class Row:
    id: str
    user_id: str | None


def test_changes_fill_messages_of_at_most_the_limit_in_order() -> None:
    count = 2 * CHANGES_PER_MESSAGE + 5
    changes = [
        profile_change("shop", UPDATED, Row(f"p{n}", f"u{n}"), {"plan": "pro"})
        for n in range(count)
    ]

    rows = outbox_rows("shop", changes, NOW)

    messages = [bus_pb2.ProfileChanges.FromString(row["payload"]) for row in rows]
    assert [len(message.changes) for message in messages] == [1000, 1000, 5]
    assert {row["subject"] for row in rows} == {"engage.profiles.shop"}
    assert [row["msg_id"] for row in rows] == [message.id for message in messages]
    sent = [change for message in messages for change in message.changes]
    assert [change.id for change in sent] == [change.id for change in changes]
    assert sent[-1].profile == f"workspaces/shop/profiles/p{count - 1}"
    assert sent[-1].changed_traits["plan"] == "pro"
    assert sent[0].occurred_at.ToDatetime(tzinfo=UTC) == NOW
