"""The scheduler's outbox rows: sends bundled per channel and workspace, journey events alone."""

from datetime import UTC, datetime

from engage import subjects
from engage.v1 import bus_pb2, common_pb2
from services.scheduler.outgoing import (
    SEND_BYTES_PER_MESSAGE,
    SENDS_PER_MESSAGE,
    OutgoingMessage,
    outbox_rows,
)

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
EMAIL = subjects.sends(common_pb2.CHANNEL_EMAIL)
PUSH = subjects.sends(common_pb2.CHANNEL_PUSH)


def a_send(key: str, subject: str = EMAIL, workspace: str = "acme") -> OutgoingMessage:
    send = bus_pb2.SendRequested(id=key, workspace=workspace, user_id=key)
    return OutgoingMessage(subject, key, send)


def bundles(rows: list[dict[str, object]]) -> list[list[str]]:
    """The send keys of each SendRequests row, in order."""
    found = []
    for row in rows:
        if str(row["subject"]).startswith("engage.sends."):
            payload = row["payload"]
            assert isinstance(payload, bytes)
            found.append([send.id for send in bus_pb2.SendRequests.FromString(payload).sends])
    return found


def test_sends_share_a_message_per_channel_and_workspace_in_order() -> None:
    event = bus_pb2.JourneyEvent(id="enrolled-1", workspace="acme")
    messages = [
        a_send("a"),
        OutgoingMessage(subjects.journeys("acme"), event.id, event),
        a_send("p", PUSH),
        a_send("b"),
        a_send("g", workspace="globex"),
    ]

    rows = outbox_rows(messages, NOW)

    assert bundles(rows) == [["a", "b"], ["p"], ["g"]]
    [journey_row] = [row for row in rows if row["subject"] == subjects.journeys("acme")]
    assert journey_row["msg_id"] == "enrolled-1"
    assert [row["workspace"] for row in rows if row["subject"] == EMAIL] == ["acme", "globex"]


def test_a_bundle_closes_at_its_count_and_its_size() -> None:
    many = [a_send(f"k{n}") for n in range(SENDS_PER_MESSAGE + 1)]
    assert [len(keys) for keys in bundles(outbox_rows(many, NOW))] == [SENDS_PER_MESSAGE, 1]

    large = []
    for n in range(3):
        message = a_send(f"large-{n}")
        assert isinstance(message.payload, bus_pb2.SendRequested)
        message.payload.data.update({"event": {"notes": "x" * (SEND_BYTES_PER_MESSAGE // 2)}})
        large.append(message)
    rows = outbox_rows(large, NOW)
    assert [len(keys) for keys in bundles(rows)] == [1, 1, 1]
    assert all(len(bytes(row["payload"])) < SEND_BYTES_PER_MESSAGE for row in rows)


def test_bundles_of_different_sends_never_share_a_message_id() -> None:
    first = outbox_rows([a_send("a"), a_send("b")], NOW)
    second = outbox_rows([a_send("a"), a_send("c")], NOW)
    again = outbox_rows([a_send("a"), a_send("b")], NOW)

    assert first[0]["msg_id"] != second[0]["msg_id"]
    assert first[0]["msg_id"] == again[0]["msg_id"]
