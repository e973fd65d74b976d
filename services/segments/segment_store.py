"""Segment definitions, their versions and their memberships, in the caller's transaction.

Membership changes leave as `MembershipChanges` on `engage.memberships.<workspace>` through the
outbox, in the transaction that makes them. Each change's id names the transition: segment,
version, profile, change and the membership's `entered_at` (the episode it opens or closes), so
it is unique per actual transition and the same on every relay of the committed row.
"""

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import paging, subjects
from engage.clock import as_utc
from engage.db import Insert, insert_many, table_of, upsert_into
from engage.errors import AlreadyExists, NotFound
from engage.outbox import OutboxMessage, outbox_row
from engage.resources import name_of
from engage.v1 import bus_pb2
from services.segments.models import (
    CHANGES,
    CHUNK,
    MEMBERSHIPS,
    PROFILES,
    WHEN,
    Segment,
    SegmentMembership,
    SegmentVersion,
)

ENTERED = bus_pb2.MembershipChanged.CHANGE_ENTERED
EXITED = bus_pb2.MembershipChanged.CHANGE_EXITED
# Changes per bus message: about 150 bytes each, so a message stays far below NATS's 1 MB.
CHANGES_PER_MESSAGE = 1_000


@dataclass(frozen=True)
class Transition:
    """One profile entering or leaving one segment."""

    segment_id: str
    version: int
    profile_id: str
    user_id: str
    change: "bus_pb2.MembershipChanged.Change"
    # When the membership episode this transition opens (ENTERED) or closes (EXITED) began.
    entered_at: datetime


def transition_id(workspace: str, transition: Transition) -> str:
    kind = "entered" if transition.change == ENTERED else "exited"
    episode = int(as_utc(transition.entered_at).timestamp() * 1_000_000)
    return (
        f"{workspace}:{transition.segment_id}:{transition.version}:"
        f"{transition.profile_id}:{kind}:{episode}"
    )


async def enqueue_transitions(
    session: AsyncSession, workspace: str, transitions: Sequence[Transition], now: datetime
) -> None:
    """Put the transitions in the outbox as MembershipChanges of up to CHANGES_PER_MESSAGE."""
    rows = []
    for start in range(0, len(transitions), CHANGES_PER_MESSAGE):
        message = bus_pb2.MembershipChanges(id=uuid.uuid4().hex, workspace=workspace)
        message.occurred_at.FromDatetime(now)
        for transition in transitions[start : start + CHANGES_PER_MESSAGE]:
            change = message.changes.add(
                id=transition_id(workspace, transition),
                workspace=workspace,
                segment=name_of("segments", transition.segment_id, workspace),
                segment_version=transition.version,
                profile=name_of("profiles", transition.profile_id, workspace),
                user_id=transition.user_id,
                change=transition.change,
            )
            change.occurred_at.CopyFrom(message.occurred_at)
        subject = subjects.memberships(workspace)
        rows.append(outbox_row(subject, workspace, message, message.id, now))
    if rows:
        await session.exec(sa.insert(table_of(OutboxMessage)), params=rows)


class SegmentStore:
    """Segments of one workspace, on one session."""

    def __init__(self, session: AsyncSession, workspace: str) -> None:
        self.session = session
        self.workspace = workspace

    # -- definitions -------------------------------------------------------------------------

    async def create(self, segment: Segment) -> Segment:
        await self.check_absent(segment.id)
        self.session.add(segment)
        self._keep_version(segment)
        await self.session.flush()
        return segment

    async def check_absent(self, segment_id: str) -> None:
        if await self.session.get(Segment, (self.workspace, segment_id)) is not None:
            raise AlreadyExists(f"segment {segment_id!r} already exists", "segment_id")

    async def get(self, segment_id: str, *, lock: bool = False) -> Segment:
        """The segment; `lock` holds its row until commit, serialising its evaluations."""
        query = select(Segment).where(Segment.id == segment_id)
        found = (await self.session.exec(query.with_for_update() if lock else query)).first()
        if found is None:
            raise NotFound(f"segment {segment_id!r} not found")
        return found

    async def all(self) -> list[Segment]:
        return list((await self.session.exec(select(Segment))).all())

    async def time_dependent(self) -> list[Segment]:
        query = select(Segment).where(col(Segment.time_dependent))
        return list((await self.session.exec(query.order_by(col(Segment.id)))).all())

    async def page(self, size: int, token: str) -> tuple[list[Segment], str]:
        return await paging.keyset_page(self.session, select(Segment), Segment.id, size, token)

    async def save_version(self, segment: Segment) -> None:
        """Store an updated segment (its version already advanced) and keep that version."""
        self.session.add(segment)
        self._keep_version(segment)
        await self.session.flush()

    def _keep_version(self, segment: Segment) -> None:
        self.session.add(
            SegmentVersion(
                workspace=self.workspace,
                segment_id=segment.id,
                version=segment.version,
                display_name=segment.display_name,
                description=segment.description,
                rule=segment.rule,
                create_time=segment.update_time,
            )
        )

    async def delete(self, segment: Segment) -> None:
        """Delete the segment and its versions; memberships must have been emptied first."""
        await self.session.exec(
            delete(SegmentVersion).where(col(SegmentVersion.segment_id) == segment.id)
        )
        await self.session.delete(segment)

    # -- memberships -------------------------------------------------------------------------

    async def member_counts(self, segment_ids: Sequence[str]) -> dict[str, int]:
        if not segment_ids:
            return {}
        query = (
            select(MEMBERSHIPS.c.segment_id, sa.func.count())
            .where(
                MEMBERSHIPS.c.workspace == self.workspace,
                MEMBERSHIPS.c.segment_id.in_(segment_ids),
            )
            .group_by(MEMBERSHIPS.c.segment_id)
        )
        rows = (await self.session.exec(query)).all()
        return {segment_id: int(count) for segment_id, count in rows}

    async def members_after(self, segment_id: str, after: str, limit: int) -> list[str]:
        """Member profile ids in id order after `after`: one keyset page."""
        query = (
            select(MEMBERSHIPS.c.profile_id)
            .where(
                MEMBERSHIPS.c.workspace == self.workspace,
                MEMBERSHIPS.c.segment_id == segment_id,
                MEMBERSHIPS.c.profile_id > after,
            )
            .order_by(MEMBERSHIPS.c.profile_id)
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def member_details(self, profile_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(user id or "", own time zone or "") of each of these profiles."""
        stored = PROFILES.c
        query = select(stored.id, stored.user_id, stored.time_zone).where(
            stored.workspace == self.workspace, stored.id.in_(profile_ids)
        )
        rows = (await self.session.exec(query)).all()
        return {profile_id: (user_id or "", zone or "") for profile_id, user_id, zone in rows}

    async def entered_at(self, segment_id: str, profile_id: str) -> datetime | None:
        found = await self.session.get(SegmentMembership, (self.workspace, segment_id, profile_id))
        return None if found is None else as_utc(found.entered_at)

    async def memberships_of(self, profile_ids: Sequence[str]) -> list[tuple[str, str, datetime]]:
        """(profile id, segment id, entered at) of every membership of these profiles."""
        stored = MEMBERSHIPS.c
        found: list[tuple[str, str, datetime]] = []
        for start in range(0, len(profile_ids), CHUNK):
            query = select(stored.profile_id, stored.segment_id, stored.entered_at).where(
                stored.workspace == self.workspace,
                stored.profile_id.in_(profile_ids[start : start + CHUNK]),
            )
            rows = await self.session.exec(query)
            found += [(profile_id, segment_id, as_utc(at)) for profile_id, segment_id, at in rows]
        return found

    async def members_among(
        self, profile_ids: Sequence[str], segment_ids: Collection[str]
    ) -> list[tuple[str, str]]:
        """(profile id, segment id) of the memberships of these profiles in these segments."""
        if not profile_ids or not segment_ids:
            return []
        stored = MEMBERSHIPS.c
        # By the profile index only, the segments kept here: with both lists in SQL, the
        # planners probe the primary key once per pair.
        query = select(stored.profile_id, stored.segment_id).where(
            stored.workspace == self.workspace, stored.profile_id.in_(profile_ids)
        )
        rows = await self.session.exec(query)
        return [(profile, segment) for profile, segment in rows if segment in segment_ids]

    async def record(self, transitions: Sequence[Transition], now: datetime) -> None:
        """Write a few transitions found in Python (real time) and announce them."""
        if not transitions:
            return
        entered = [
            {"segment_id": t.segment_id, "profile_id": t.profile_id, "entered_at": t.entered_at}
            for t in transitions
            if t.change == ENTERED
        ]
        exited = [t for t in transitions if t.change == EXITED]
        if entered:
            await self._add_memberships(entered)
        if exited:
            leave = sa.delete(MEMBERSHIPS).where(
                MEMBERSHIPS.c.workspace == sa.bindparam("ws"),
                MEMBERSHIPS.c.segment_id == sa.bindparam("segment"),
                MEMBERSHIPS.c.profile_id == sa.bindparam("profile"),
            )
            pairs = [
                {"ws": self.workspace, "segment": t.segment_id, "profile": t.profile_id}
                for t in exited
            ]
            await self.session.exec(leave, params=pairs)
        await enqueue_transitions(self.session, self.workspace, transitions, now)

    async def _add_memberships(self, rows: list[dict[str, Any]]) -> None:
        """Insert memberships (segment_id, profile_id, entered_at), leaving one that exists
        (and its entered_at) alone."""
        rows = [{**row, "workspace": self.workspace} for row in rows]
        await insert_many(self.session, self._insert_new_memberships(), rows)

    def _insert_new_memberships(self) -> Insert:
        """An INSERT that leaves an existing membership (and its entered_at) alone."""
        return upsert_into(self.session, SegmentMembership).on_conflict_do_nothing()

    async def reconcile(
        self,
        segment: Segment,
        members: sa.Select[Any] | None,
        now: datetime,
        among: Collection[str] | None = None,
    ) -> tuple[int, int]:
        """Make the stored members of `segment` those of `members` (a one-column SELECT of
        profile ids; None for nobody), in SQL, and announce the difference in chunks. With
        `among`, only those profiles are compared and changed.

        Returns (entered, exited). The caller holds the segment's row lock.
        """
        columns = ["workspace", "segment_id", "profile_id", "change", "entered_at"]
        staged = self._differences(segment.id, members, now, among)
        await self.session.exec(sa.insert(CHANGES).from_select(columns, staged))
        await self._apply_staged(segment.id)
        counts = await self._announce_staged(segment, now)
        await self.session.exec(
            sa.delete(CHANGES).where(
                CHANGES.c.workspace == self.workspace, CHANGES.c.segment_id == segment.id
            )
        )
        return counts

    async def disagreeing(
        self, segment_id: str, members: sa.Select[Any], now: datetime
    ) -> list[str]:
        """The profiles `reconcile` would change: in `members` but not stored, or stored but
        not in `members`. Only reads, so it can run outside the writing transaction."""
        differences = self._differences(segment_id, members, now, None).subquery()
        return list((await self.session.exec(select(differences.c.profile_id))).all())

    def _differences(
        self,
        segment_id: str,
        members: sa.Select[Any] | None,
        now: datetime,
        among: Collection[str] | None,
    ) -> sa.Select[Any]:
        """(workspace, segment_id, profile_id, change, entered_at) of each profile entering or
        leaving when the segment's members become `members`."""
        ws, seg = self.workspace, segment_id
        stored = MEMBERSHIPS.c
        mine = sa.and_(stored.workspace == ws, stored.segment_id == seg)
        if among is not None:
            mine = sa.and_(mine, stored.profile_id.in_(among))
        leaving_id = stored.profile_id.label("profile_id")
        if members is None:
            return sa.select(
                sa.literal(ws), sa.literal(seg), leaving_id, sa.literal(int(EXITED)),
                stored.entered_at,
            ).where(mine)  # fmt: skip
        if among is not None:
            members = members.where(PROFILES.c.id.in_(among))
        rule_members = members.cte("rule_members")
        member_id = rule_members.c[0]
        entering = sa.select(
            sa.literal(ws), sa.literal(seg), member_id.label("profile_id"),
            sa.literal(int(ENTERED)), sa.literal(now, WHEN),
        ).where(~sa.exists().where(mine, stored.profile_id == member_id))  # fmt: skip
        leaving = sa.select(
            sa.literal(ws), sa.literal(seg), leaving_id, sa.literal(int(EXITED)),
            stored.entered_at,
        ).where(mine, ~sa.exists().where(member_id == stored.profile_id))  # fmt: skip
        return sa.select(sa.union_all(entering, leaving).subquery())

    async def _apply_staged(self, segment_id: str) -> None:
        ws = self.workspace
        staged = sa.and_(CHANGES.c.workspace == ws, CHANGES.c.segment_id == segment_id)
        await self.session.exec(
            sa.delete(MEMBERSHIPS).where(
                MEMBERSHIPS.c.workspace == ws,
                MEMBERSHIPS.c.segment_id == segment_id,
                MEMBERSHIPS.c.profile_id.in_(
                    sa.select(CHANGES.c.profile_id).where(staged, CHANGES.c.change == int(EXITED))
                ),
            )
        )
        entering = sa.select(
            CHANGES.c.workspace, CHANGES.c.segment_id, CHANGES.c.profile_id, CHANGES.c.entered_at
        ).where(staged, CHANGES.c.change == int(ENTERED))
        await self.session.exec(
            self._insert_new_memberships().from_select(
                ["workspace", "segment_id", "profile_id", "entered_at"], entering
            )
        )

    async def _announce_staged(self, segment: Segment, now: datetime) -> tuple[int, int]:
        """Page through the staged changes by profile id, one outbox INSERT per page."""
        entered = exited = 0
        after = ""
        profile = sa.and_(
            PROFILES.c.workspace == CHANGES.c.workspace, PROFILES.c.id == CHANGES.c.profile_id
        )
        while True:
            query = (
                select(
                    CHANGES.c.profile_id,
                    CHANGES.c.change,
                    CHANGES.c.entered_at,
                    PROFILES.c.user_id,
                )
                .select_from(CHANGES.outerjoin(PROFILES, profile))
                .where(
                    CHANGES.c.workspace == self.workspace,
                    CHANGES.c.segment_id == segment.id,
                    CHANGES.c.profile_id > after,
                )
                .order_by(CHANGES.c.profile_id)
                .limit(CHUNK)
            )
            rows = (await self.session.exec(query)).all()
            if not rows:
                return entered, exited
            transitions = [
                Transition(
                    segment.id,
                    segment.version,
                    profile_id,
                    user_id or "",
                    ENTERED if change == ENTERED else EXITED,
                    as_utc(at),
                )
                for profile_id, change, at, user_id in rows
            ]
            await enqueue_transitions(self.session, self.workspace, transitions, now)
            came = sum(1 for t in transitions if t.change == ENTERED)
            entered, exited = entered + came, exited + len(transitions) - came
            after = rows[-1][0]
