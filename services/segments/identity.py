"""Which profile an event belongs to, and merging two profiles into one.

User ids and anonymous ids resolve to profiles through the `identities` table, loaded once per
batch. An event carrying a user id and an anonymous id (identify), or an alias event joining a
previous id to a user id, merges the profiles in the caller's transaction: identities, history,
counters, sums, traits and seen times move to the surviving profile and the other is deleted.
Because later events for a merged id resolve through the identity table, a merge is correct
whichever partition each side arrived on. Two profiles that each have a user id are merged only
by an alias naming one user id as the other's previous id, never by a shared anonymous id.
"""

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from engage.clock import as_utc
from engage.db import insert_many, table_of
from engage.rules.language import TIME_ZONE_KEY, stable_bucket
from engage.v1 import bus_pb2, common_pb2
from services.segments.aggregates import upsert_counters, upsert_sums
from services.segments.models import (
    PROFILES,
    EventCounter,
    Identity,
    ProfileEvent,
    ProfileMerge,
    ProfileRow,
    PropertySum,
    document_text,
)
from services.segments.profile_changes import announce, profile_name
from services.segments.traits import LOCALE_KEY, TraitState

log = logging.getLogger(__name__)

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"


class MergeReason(StrEnum):
    IDENTIFY = "identify"
    ALIAS = "alias"


class ConcurrentMerge(Exception):
    """An identity pointed at a profile another transaction merged away meanwhile. Transient:
    the redelivered batch resolves through the identity rows that merge committed."""


class IdentityResolver:
    """The identities and profiles one batch touches, in the caller's transaction."""

    def __init__(self, session: AsyncSession, workspace: str, now: datetime) -> None:
        self.session = session
        self.workspace = workspace
        self.now = now
        self.identities: dict[tuple[str, str], str] = {}
        self.profiles: dict[str, ProfileRow] = {}
        self.merged_into: dict[str, str] = {}
        self.created: set[str] = set()
        # Rows made here and not written yet (see `flush`).
        self._new_profiles: list[ProfileRow] = []
        self._new_identities: list[dict[str, str]] = []

    async def load(self, events: Iterable[common_pb2.Event]) -> None:
        """Load, in one query each, the identities the events name and their profiles."""
        user_ids: set[str] = set()
        anonymous_ids: set[str] = set()
        for event in events:
            user_ids.update(filter(None, [event.user_id]))
            anonymous_ids.update(filter(None, [event.anonymous_id]))
            if event.type == common_pb2.EVENT_TYPE_ALIAS and event.previous_id:
                # A previous id is an anonymous id or an earlier user id.
                user_ids.add(event.previous_id)
                anonymous_ids.add(event.previous_id)
        # Plain rows, not ORM objects: only their values are needed (and it is a hot path).
        table = table_of(Identity)
        rows = await self.session.exec(
            select(table.c.kind, table.c.value, table.c.profile_id).where(
                table.c.workspace == self.workspace,
                sa.or_(
                    sa.and_(table.c.kind == USER_ID, table.c.value.in_(user_ids)),
                    sa.and_(table.c.kind == ANONYMOUS_ID, table.c.value.in_(anonymous_ids)),
                ),
            )
        )
        self.identities = {(kind, value): profile_id for kind, value, profile_id in rows.all()}
        wanted = set(self.identities.values())
        if not wanted:
            return
        # Locked so that a concurrent merge of the same profiles waits for this one.
        found = await self.session.exec(
            select(*(PROFILES.c[name] for name in ProfileRow.columns()))
            .where(PROFILES.c.workspace == self.workspace, PROFILES.c.id.in_(wanted))
            .with_for_update()
        )
        self.profiles = {row.id: ProfileRow(*row) for row in found.all()}
        if missing := wanted - self.profiles.keys():
            raise ConcurrentMerge(f"profiles {sorted(missing)} were merged or erased meanwhile")

    async def resolve(self, event: common_pb2.Event) -> str:
        """The profile an event belongs to; links new ids and merges as the event shows."""
        if event.type == common_pb2.EVENT_TYPE_ALIAS and event.previous_id and event.user_id:
            profile_id = await self._alias(event)
        elif not event.user_id:
            known = self.identities.get((ANONYMOUS_ID, event.anonymous_id))
            return known or self._create(anonymous_id=event.anonymous_id)
        else:
            profile_id = self._for_user(event.user_id, event.anonymous_id)
        if event.anonymous_id:
            await self._attach_anonymous(event, profile_id)
        return profile_id

    async def flush(self) -> None:
        """Write the profiles and identities made since the last flush, in one statement each:
        before the history that points at them, and before a merge moves them."""
        profiles, self._new_profiles = self._new_profiles, []
        identities, self._new_identities = self._new_identities, []
        if profiles:
            rows = [
                {
                    **{name: getattr(profile, name) for name in ProfileRow.columns()},
                    "workspace": self.workspace,
                    "created_at": self.now,
                    "updated_at": self.now,
                    "sample_bucket": stable_bucket(profile.id),
                }
                for profile in profiles
            ]
            await insert_many(self.session, sa.insert(PROFILES), rows)
        if identities:
            await insert_many(self.session, sa.insert(table_of(Identity)), identities)

    def final(self, profile_id: str) -> str:
        """Where a profile resolved earlier in the batch ended up after the batch's merges."""
        while profile_id in self.merged_into:
            profile_id = self.merged_into[profile_id]
        return profile_id

    def _for_user(self, user_id: str, anonymous_id: str) -> str:
        """The user's profile; a first sight of the user adopts their anonymous profile."""
        known = self.identities.get((USER_ID, user_id))
        if known is not None:
            return known
        anonymous = self.identities.get((ANONYMOUS_ID, anonymous_id)) if anonymous_id else None
        if anonymous is not None and self.profiles[anonymous].user_id is None:
            self._link(USER_ID, user_id, anonymous)
            self.profiles[anonymous].user_id = user_id
            return anonymous
        return self._create(user_id=user_id)

    async def _alias(self, event: common_pb2.Event) -> str:
        """Join the previous id (anonymous, or an earlier user id) to the user's profile."""
        previous_id, user_id = event.previous_id, event.user_id
        as_user = self.identities.get((USER_ID, previous_id))
        previous = as_user or self.identities.get((ANONYMOUS_ID, previous_id))
        if previous is None:
            # Seen before its events: they will resolve here whenever they arrive.
            profile_id = self._for_user(user_id, "")
            self._link(ANONYMOUS_ID, previous_id, profile_id)
            return profile_id
        owner = self.profiles[previous].user_id
        joinable = as_user is not None or owner is None or owner == user_id
        known = self.identities.get((USER_ID, user_id))
        if not joinable:
            self._keep_with_owner(previous, known)
            return known or self._create(user_id=user_id)
        if known is None:
            # The previous profile is now known by this user id (a renamed user keeps both).
            self._link(USER_ID, user_id, previous)
            self.profiles[previous].user_id = user_id
            return previous
        if known != previous:
            await self._merge(previous, known, MergeReason.ALIAS, event.message_id)
        return known

    async def _attach_anonymous(self, event: common_pb2.Event, profile_id: str) -> None:
        owner = self.identities.get((ANONYMOUS_ID, event.anonymous_id))
        if owner is None:
            self._link(ANONYMOUS_ID, event.anonymous_id, profile_id)
        elif owner != profile_id:
            if self.profiles[owner].user_id is None:
                # Any event carrying both ids identifies the anonymous visitor, track included.
                reason = (
                    MergeReason.ALIAS
                    if event.type == common_pb2.EVENT_TYPE_ALIAS
                    else MergeReason.IDENTIFY
                )
                await self._merge(owner, profile_id, reason, event.message_id)
            else:
                self._keep_with_owner(owner, profile_id)

    def _keep_with_owner(self, owner: str, claimant: str | None) -> None:
        # A shared device: the id stays with the user who had it first.
        log.info(
            "anonymous id already belongs to another user; not merged",
            extra={"workspace": self.workspace, "profile": owner, "claimant": claimant or ""},
        )

    def _create(self, user_id: str = "", anonymous_id: str = "") -> str:
        profile = ProfileRow(uuid.uuid4().hex, user_id=user_id or None)
        self._new_profiles.append(profile)
        self.profiles[profile.id] = profile
        self.created.add(profile.id)
        if user_id:
            self._link(USER_ID, user_id, profile.id)
        if anonymous_id:
            self._link(ANONYMOUS_ID, anonymous_id, profile.id)
        return profile.id

    def _link(self, kind: str, value: str, profile_id: str) -> None:
        self._new_identities.append(
            {"workspace": self.workspace, "kind": kind, "value": value, "profile_id": profile_id}
        )
        self.identities[(kind, value)] = profile_id

    async def _merge(
        self, source_id: str, target_id: str, reason: MergeReason, message_id: str
    ) -> None:
        """Move everything of the source profile to the target, record it, delete the source."""
        await self.flush()
        ws = self.workspace
        for model in (Identity, ProfileEvent):
            await self.session.exec(
                update(model).where(col(model.profile_id) == source_id).values(profile_id=target_id)
            )
        await _move_aggregates(self.session, source_id, target_id)
        # Merges into the source now lead, through it, to the target.
        self.session.add(
            ProfileMerge(
                workspace=ws,
                merged_profile_id=source_id,
                into_profile_id=target_id,
                reason=reason.value,
                message_id=message_id,
                merged_at=self.now,
            )
        )
        source, target = self.profiles.pop(source_id), self.profiles[target_id]
        fold_profile(source, into=target)
        await self.session.exec(
            sa.delete(PROFILES).where(PROFILES.c.workspace == ws, PROFILES.c.id == source_id)
        )
        for key, profile_id in self.identities.items():
            if profile_id == source_id:
                self.identities[key] = target_id
        self.merged_into[source_id] = target_id
        self.created.discard(source_id)
        announce(
            self.session,
            ws,
            bus_pb2.ProfileChanged.KIND_MERGED,
            target,
            merged_profile=profile_name(ws, source_id),
        )
        log.info(
            "profiles merged",
            extra={
                "workspace": ws,
                "profile": target_id,
                "merged_profile": source_id,
                "reason": reason.value,
                "message_id": message_id,
            },
        )


async def _move_aggregates(session: AsyncSession, source_id: str, target_id: str) -> None:
    """Fold the source's counters and sums into the target's: counts and totals add up."""
    for model, upsert in ((EventCounter, upsert_counters), (PropertySum, upsert_sums)):
        mine = col(model.profile_id) == source_id
        rows: list[dict[str, Any]] = [
            {**row.model_dump(), "profile_id": target_id}
            for row in (await session.exec(select(model).where(mine))).all()
        ]
        if rows:
            await session.exec(delete(model).where(mine))
            await upsert(session, rows)


def fold_profile(source: ProfileRow, into: ProfileRow) -> None:
    """A merge's effect on the surviving profile row: traits key by key, the later event
    winning; the widest seen span; time zone and locale from whichever event set them later."""
    traits = TraitState.load(into.traits, into.trait_times)
    theirs = TraitState.load(source.traits, source.trait_times)
    traits.merge(theirs)
    into.time_zone = traits.merge_field(theirs, TIME_ZONE_KEY, into.time_zone, source.time_zone)
    into.locale = traits.merge_field(theirs, LOCALE_KEY, into.locale, source.locale)
    into.traits = document_text(traits.values)
    into.trait_times = traits.dump_times()
    email = traits.values.get("email")
    into.email = email if isinstance(email, str) else None
    seen_first = [as_utc(t) for t in (into.first_seen, source.first_seen) if t is not None]
    seen_last = [as_utc(t) for t in (into.last_seen, source.last_seen) if t is not None]
    into.first_seen = min(seen_first, default=None)
    into.last_seen = max(seen_last, default=None)
    into.folded = True
