"""GDPR erasure across services: segments' DeleteProfile publishes a `ProfileChanged` of
KIND_ERASED (within a ProfileChanges) on `engage.profiles.<workspace>`; every service that
keeps a copy of a person's data consumes it with a durable of its own and erases that copy in
its own database.

Erasures are idempotent (a redelivery finds nothing left to erase) and keyed by workspace plus
the person's ids: the user id, the anonymous ids the profile had, and the profile's resource
name. Other kinds of profile change are acknowledged and ignored.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from engage import subjects
from engage.bus import ConsumerSpec, PermanentError, receive
from engage.v1 import bus_pb2

log = logging.getLogger(__name__)

PROFILES_STREAM = "PROFILES"


def erasure_consumer(service: str) -> ConsumerSpec:
    """The durable `<service>-profiles` on the profile changes."""
    return ConsumerSpec(f"{service}-profiles", PROFILES_STREAM, [subjects.PROFILES])


@dataclass(frozen=True)
class Erasure:
    """Whom to erase, in one workspace. `user_id` is empty for a profile that only had
    anonymous ids; `profile` (`workspaces/{w}/profiles/{id}`) is always set."""

    workspace: str
    profile: str
    user_id: str
    anonymous_ids: tuple[str, ...]


def erasure_handler(
    erase: Callable[[Erasure], Awaitable[int]],
) -> Callable[[Msg], Awaitable[None]]:
    """A bus handler calling `erase` (which returns how many rows it changed) per erasure."""

    async def handle(message: Msg) -> None:
        workspace, changes = receive(message, bus_pb2.ProfileChanges)
        for change in changes.changes:
            if change.kind != bus_pb2.ProfileChanged.KIND_ERASED:
                continue
            if not change.profile:
                raise PermanentError(f"erasure on {message.subject} names no profile")
            ids = tuple(change.anonymous_ids)
            changed = await erase(Erasure(workspace, change.profile, change.user_id, ids))
            # No user id or address in the log: only the (random) profile id and the count.
            log.info(
                "profile erased",
                extra={"workspace": workspace, "profile": change.profile, "rows": changed},
            )

    return handle
