"""ProfileChanged announcements: what applying events, merging and erasing did to a profile,
put in the outbox of the transaction that did it (published on `engage.profiles.<workspace>`).
"""

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from engage import outbox, subjects, telemetry
from engage.clock import Clock, utc_now
from engage.resources import name_of
from engage.v1 import bus_pb2


class Named(Protocol):
    """What an announcement says of a profile: an ORM object or a plain row."""

    @property
    def id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...


def profile_name(workspace: str, profile_id: str) -> str:
    return name_of("profiles", profile_id, workspace)


def announce(
    session: AsyncSession,
    workspace: str,
    kind: "bus_pb2.ProfileChanged.Kind",
    profile: Named,
    changed_traits: dict[str, Any] | None = None,
    merged_profile: str = "",
    anonymous_ids: Sequence[str] = (),
    clock: Clock = utc_now,
) -> None:
    """Put a ProfileChanged in the transaction's outbox."""
    change = _change(workspace, kind, profile, changed_traits, merged_profile, anonymous_ids)
    change.occurred_at.FromDatetime(clock())
    outbox.enqueue(session, subjects.profiles(workspace), change, change.id, workspace)


def outbox_row(
    workspace: str,
    kind: "bus_pb2.ProfileChanged.Kind",
    profile: Named,
    changed_traits: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """A ProfileChanged as an outbox row, for writers that insert many in one statement."""
    change = _change(workspace, kind, profile, changed_traits)
    change.occurred_at.FromDatetime(now)
    return {
        "subject": subjects.profiles(workspace),
        "workspace": workspace,
        "msg_id": change.id,
        "payload": change.SerializeToString(),
        "headers": json.dumps(telemetry.inject_headers()),
        "created_at": now,
    }


def _change(
    workspace: str,
    kind: "bus_pb2.ProfileChanged.Kind",
    profile: Named,
    changed_traits: dict[str, Any] | None = None,
    merged_profile: str = "",
    anonymous_ids: Sequence[str] = (),
) -> bus_pb2.ProfileChanged:
    change = bus_pb2.ProfileChanged(
        id=uuid.uuid4().hex,
        workspace=workspace,
        kind=kind,
        profile=profile_name(workspace, profile.id),
        user_id=profile.user_id or "",
        merged_profile=merged_profile,
        anonymous_ids=sorted(anonymous_ids),
    )
    if changed_traits:
        change.changed_traits.update(changed_traits)
    return change
