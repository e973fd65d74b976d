"""The profile store: finding, listing, exporting and erasing profiles of one workspace, and
turning them into their `engage.v1.Profile` form. The caller owns the transaction.
"""

import json
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import paging
from engage.clock import as_utc, timestamp
from engage.dates import zone_name
from engage.errors import NotFound
from engage.resources import name_of
from engage.v1 import bus_pb2, common_pb2, profile_pb2
from services.segments.calendar import workspace_time_zone
from services.segments.identity import ANONYMOUS_ID
from services.segments.models import (
    MEMBERSHIPS,
    EventCounter,
    Identity,
    Profile,
    ProfileEvent,
    ProfileMerge,
    PropertySum,
)
from services.segments.profile_changes import announce


class ProfileStore:
    """Profiles of one workspace, on one session."""

    def __init__(self, session: AsyncSession, workspace: str) -> None:
        self.session = session
        self.workspace = workspace

    async def by_id(self, profile_id: str) -> Profile:
        found = (await self.session.exec(select(Profile).where(Profile.id == profile_id))).first()
        if found is None:
            raise NotFound(f"profile {profile_id!r} not found")
        return found

    async def by_identity(self, kind: str, value: str) -> Profile:
        identity = (
            await self.session.exec(
                select(Identity).where(Identity.kind == kind, Identity.value == value)
            )
        ).first()
        if identity is None:
            raise NotFound(f"no profile has {kind} {value!r}")
        return await self.by_id(identity.profile_id)

    async def by_email(self, email: str) -> Profile:
        found = (
            await self.session.exec(
                select(Profile)
                .where(Profile.email == email)
                .order_by(col(Profile.updated_at).desc())
            )
        ).first()
        if found is None:
            raise NotFound("no profile has that email")
        return found

    async def page(
        self,
        size: int,
        token: str,
        where: Sequence[sa.ColumnElement[bool]] = (),
        scope: str = "",
    ) -> tuple[list[Profile], str]:
        """Profiles in id order after the token's position, and the next page's token; only
        those meeting every `where` condition (see `profile_filter`) when given. `scope` is
        the filter's text: a token is refused under another filter."""
        query = select(Profile).where(*where)
        return await paging.keyset_page(self.session, query, Profile.id, size, token, scope)

    async def events(self, profile_id: str) -> list[common_pb2.Event]:
        rows = await self.session.exec(
            select(ProfileEvent)
            .where(ProfileEvent.profile_id == profile_id)
            .order_by(col(ProfileEvent.timestamp), col(ProfileEvent.message_id))
        )
        return [common_pb2.Event.FromString(row.payload) for row in rows.all()]

    async def recent_events(self, profile_id: str, limit: int) -> list[common_pb2.Event]:
        """The profile's latest `limit` events, newest first."""
        rows = await self.session.exec(
            select(ProfileEvent)
            .where(ProfileEvent.profile_id == profile_id)
            .order_by(col(ProfileEvent.timestamp).desc(), col(ProfileEvent.message_id).desc())
            .limit(limit)
        )
        return [common_pb2.Event.FromString(row.payload) for row in rows.all()]

    async def merges(self, profile_id: str) -> list[ProfileMerge]:
        """Every merge that led into the profile, through earlier merges too, oldest first."""
        found: list[ProfileMerge] = []
        frontier = {profile_id}
        while frontier:
            rows = (
                await self.session.exec(
                    select(ProfileMerge).where(col(ProfileMerge.into_profile_id).in_(frontier))
                )
            ).all()
            found += rows
            frontier = {row.merged_profile_id for row in rows}
        return sorted(found, key=lambda row: (as_utc(row.merged_at), row.merged_profile_id))

    async def property_sums(self, profile_id: str) -> dict[str, dict[str, float]]:
        """Configured property totals: event name -> property -> total."""
        totals: dict[str, dict[str, float]] = defaultdict(dict)
        rows = await self.session.exec(
            select(PropertySum).where(PropertySum.profile_id == profile_id)
        )
        for row in rows.all():
            totals[row.event_name][row.property] = row.total
        return dict(totals)

    async def erase(self, profile_id: str) -> None:
        """Delete the profile and everything kept about it (its anonymous ids, history,
        counters, sums, merges, segment memberships); announce it in the same transaction."""
        profile = await self.by_id(profile_id)
        anonymous_ids = (
            await self.session.exec(
                select(Identity.value).where(
                    Identity.profile_id == profile_id, Identity.kind == ANONYMOUS_ID
                )
            )
        ).all()
        merged = [row.merged_profile_id for row in await self.merges(profile_id)]
        await self.session.exec(
            delete(ProfileMerge).where(col(ProfileMerge.merged_profile_id).in_(merged))
        )
        for model in (EventCounter, PropertySum, ProfileEvent, Identity):
            await self.session.exec(delete(model).where(col(model.profile_id) == profile_id))
        await self.session.exec(
            sa.delete(MEMBERSHIPS).where(
                MEMBERSHIPS.c.workspace == self.workspace,
                MEMBERSHIPS.c.profile_id == profile_id,
            )
        )
        await self.session.delete(profile)
        announce(
            self.session,
            self.workspace,
            bus_pb2.ProfileChanged.KIND_ERASED,
            profile,
            anonymous_ids=anonymous_ids,
        )

    async def to_protos(self, profiles: Sequence[Profile]) -> list[profile_pb2.Profile]:
        """Profiles with their identities and counters, in three queries whatever the count."""
        ids = [profile.id for profile in profiles]
        if not ids:
            return []
        anonymous: dict[str, list[str]] = defaultdict(list)
        identities = await self.session.exec(
            select(Identity)
            .where(col(Identity.profile_id).in_(ids), Identity.kind == ANONYMOUS_ID)
            .order_by(col(Identity.value))
        )
        for identity in identities.all():
            anonymous[identity.profile_id].append(identity.value)
        counters: dict[str, list[EventCounter]] = defaultdict(list)
        rows = await self.session.exec(
            select(EventCounter).where(col(EventCounter.profile_id).in_(ids))
        )
        for counter in rows.all():
            counters[counter.profile_id].append(counter)
        sums: dict[str, list[PropertySum]] = defaultdict(list)
        totals = await self.session.exec(
            select(PropertySum).where(col(PropertySum.profile_id).in_(ids))
        )
        for total in totals.all():
            sums[total.profile_id].append(total)
        workspace_zone = await workspace_time_zone(self.session, self.workspace)
        answers = [
            _profile_proto(self.workspace, p, anonymous[p.id], counters[p.id], sums[p.id])
            for p in profiles
        ]
        for answer in answers:
            answer.calendar_time_zone = zone_name(answer.time_zone, workspace_zone)
        return answers

    async def merge_protos(self, profile_id: str) -> list[profile_pb2.ProfileMerge]:
        return [
            profile_pb2.ProfileMerge(
                merged_profile=name_of("profiles", row.merged_profile_id, self.workspace),
                into_profile=name_of("profiles", row.into_profile_id, self.workspace),
                reason=_MERGE_REASONS.get(row.reason, profile_pb2.ProfileMerge.REASON_UNSPECIFIED),
                message_id=row.message_id,
                merge_time=timestamp(row.merged_at),
            )
            for row in await self.merges(profile_id)
        ]


_MERGE_REASONS = {
    "identify": profile_pb2.ProfileMerge.REASON_IDENTIFY,
    "alias": profile_pb2.ProfileMerge.REASON_ALIAS,
}


def _profile_proto(
    workspace: str,
    profile: Profile,
    anonymous_ids: list[str],
    counters: list[EventCounter],
    sums: list[PropertySum],
) -> profile_pb2.Profile:
    message = profile_pb2.Profile(
        name=name_of("profiles", profile.id, workspace),
        user_id=profile.user_id or "",
        anonymous_ids=anonymous_ids,
        time_zone=profile.time_zone,
        locale=profile.locale,
    )
    message.traits.update(json.loads(profile.traits))
    if profile.first_seen is not None:
        message.first_seen_time.CopyFrom(timestamp(profile.first_seen))
    if profile.last_seen is not None:
        message.last_seen_time.CopyFrom(timestamp(profile.last_seen))
    for counter in counters:
        stats = message.event_stats[counter.event_name]
        stats.count = counter.count
        stats.first_time.CopyFrom(timestamp(counter.first_time))
        stats.last_time.CopyFrom(timestamp(counter.last_time))
    for total in sums:
        message.event_stats[total.event_name].property_totals[total.property] = total.total
    return message
