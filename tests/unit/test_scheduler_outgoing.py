"""The scheduler's outbox rows: sends bundled per channel and workspace, journey events per
workspace, each bundle within its count and size."""

from datetime import UTC, datetime

from engage import subjects
from engage.v1 import bus_pb2, common_pb2
from services.scheduler.outgoing import (
    BYTES_PER_MESSAGE,
    EVENTS_PER_MESSAGE,
    SENDS_PER_MESSAGE,
    OutgoingMessage,
    outbox_rows,
)

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
EMAIL = subjects.sends(common_pb2.CHANNEL_EMAIL)
PUSH = subjects.sends(common_pb2.CHANNEL_PUSH)


def a_send(key: str, subject: str = EMAIL, workspace: str = "acme") -> OutgoingMessage:
    return OutgoingMessage(subject, bus_pb2.SendRequested(id=key, workspace=workspace))


def an_event(event_id: str, workspace: str = "acme") -> OutgoingMessage:
    event = bus_pb2.JourneyEvent(id=event_id, workspace=workspace)
    return OutgoingMessage(subjects.journeys(workspace), event)


def bundles(rows: list[dict[str, object]]) -> list[tuple[str, list[str]]]:
    """Each row's workspace and the ids it carries, in order."""
    found = []
    for row in rows:
        payload = row["payload"]
        assert isinstance(payload, bytes)
        if str(row["subject"]).startswith("engage.sends."):
            ids = [send.id for send in bus_pb2.SendRequests.FromString(payload).sends]
        else:
            ids = [event.id for event in bus_pb2.JourneyEvents.FromString(payload).events]
        found.append((str(row["workspace"]), ids))
    return found


def test_a_transactions_messages_share_a_bus_message_per_subject_and_workspace_in_order() -> None:
    messages = [
        a_send("a"),
        an_event("enrolled-1"),
        a_send("p", PUSH),
        a_send("b"),
        an_event("step-1"),
        a_send("g", workspace="globex"),
        an_event("enrolled-2", workspace="globex"),
    ]

    rows = outbox_rows(messages, NOW)

    assert bundles(rows) == [
        ("acme", ["a", "b"]),
        ("acme", ["p"]),
        ("globex", ["g"]),
        ("acme", ["enrolled-1", "step-1"]),
        ("globex", ["enrolled-2"]),
    ]
    assert [row["subject"] for row in rows][-2:] == [
        subjects.journeys("acme"),
        subjects.journeys("globex"),
    ]


def test_a_bundle_closes_at_its_count_and_its_size() -> None:
    many_sends = [a_send(f"k{n}") for n in range(SENDS_PER_MESSAGE + 1)]
    counts = [len(ids) for _, ids in bundles(outbox_rows(many_sends, NOW))]
    assert counts == [SENDS_PER_MESSAGE, 1]
    many_events = [an_event(f"e{n}") for n in range(EVENTS_PER_MESSAGE + 1)]
    counts = [len(ids) for _, ids in bundles(outbox_rows(many_events, NOW))]
    assert counts == [EVENTS_PER_MESSAGE, 1]

    large = []
    for n in range(3):
        message = a_send(f"large-{n}")
        assert isinstance(message.payload, bus_pb2.SendRequested)
        message.payload.data.update({"event": {"notes": "x" * (BYTES_PER_MESSAGE // 2)}})
        large.append(message)
    rows = outbox_rows(large, NOW)
    assert [len(ids) for _, ids in bundles(rows)] == [1, 1, 1]
    assert all(len(bytes(row["payload"])) < BYTES_PER_MESSAGE for row in rows)


def test_bundles_of_different_payloads_never_share_a_message_id() -> None:
    first = outbox_rows([a_send("a"), a_send("b")], NOW)
    second = outbox_rows([a_send("a"), a_send("c")], NOW)
    again = outbox_rows([a_send("a"), a_send("b")], NOW)

    assert first[0]["msg_id"] != second[0]["msg_id"]
    assert first[0]["msg_id"] == again[0]["msg_id"]
