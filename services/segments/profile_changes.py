"""Profile announcements: what applying events, merging and erasing did to profiles, put in
the outbox of the transaction that did it as ProfileChanges (published on
`engage.profiles.<workspace>`, several changes to a message).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from engage import outbox, subjects
from engage.clock import Clock, utc_now
from engage.resources import name_of
from engage.v1 import bus_pb2
from services.segments.segment_store import CHANGES_PER_MESSAGE


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
    """Put a ProfileChanges of this one change in the transaction's outbox."""
    change = profile_change(workspace, kind, profile, changed_traits, merged_profile, anonymous_ids)
    message = _message(workspace, [change], clock())
    outbox.enqueue(session, subjects.profiles(workspace), message, message.id, workspace)


def outbox_rows(
    workspace: str, changes: Sequence[bus_pb2.ProfileChanged], now: datetime
) -> list[dict[str, Any]]:
    """The changes as ProfileChanges of up to CHANGES_PER_MESSAGE each, as outbox rows, for
    writers that insert many in one statement."""
    subject = subjects.profiles(workspace)
    rows = []
    for start in range(0, len(changes), CHANGES_PER_MESSAGE):
        message = _message(workspace, changes[start : start + CHANGES_PER_MESSAGE], now)
        rows.append(outbox.outbox_row(subject, workspace, message, message.id, now))
    return rows


def profile_change(
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


def _message(
    workspace: str, changes: Sequence[bus_pb2.ProfileChanged], now: datetime
) -> bus_pb2.ProfileChanges:
    message = bus_pb2.ProfileChanges(id=uuid.uuid4().hex, workspace=workspace)
    message.occurred_at.FromDatetime(now)
    for change in changes:
        message.changes.append(change)
        message.changes[-1].occurred_at.CopyFrom(message.occurred_at)
    return message
