"""Every consumer reads a bus message the one way `receive` does: a payload that decodes, one
valid workspace named by the header and agreed by the payload, and an id."""

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from engage.bus import PermanentError, receive
from engage.v1 import bus_pb2


def message(payload: bytes, headers: dict[str, str] | None) -> Msg:
    return Msg(Client(), subject="engage.deliveries.acme.email", data=payload, headers=headers)


def delivery(id: str = "", workspace: str = "") -> bytes:
    return bus_pb2.DeliveryEvent(id=id, workspace=workspace).SerializeToString()


def test_a_good_message_gives_its_workspace_and_payload() -> None:
    workspace, event = receive(
        message(delivery(id="d1", workspace="acme"), {"Engage-Workspace": "acme"}),
        bus_pb2.DeliveryEvent,
    )
    assert (workspace, event.id) == ("acme", "d1")


@pytest.mark.parametrize(
    ("payload", "headers"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", {"Engage-Workspace": "acme"}),  # not protobuf
        (delivery(id="d1"), None),  # no workspace header
        (delivery(id="d1"), {"Engage-Workspace": "*"}),  # would read every workspace
        (delivery(id="d1"), {"Engage-Workspace": "acme.eu"}),  # not a workspace name
        (delivery(id="d1", workspace="globex"), {"Engage-Workspace": "acme"}),  # disagree
        (delivery(workspace="acme"), {"Engage-Workspace": "acme"}),  # no id
    ],
)
def test_a_message_that_can_never_be_handled_is_permanent(
    payload: bytes, headers: dict[str, str] | None
) -> None:
    with pytest.raises(PermanentError):
        receive(message(payload, headers), bus_pb2.DeliveryEvent)
