"""SimulateJourney: the audience listed and read from segments, each profile followed through
the journey (`simulation`), and the answer summed up. Sends nothing, writes nothing."""

import asyncio
from datetime import UTC, timedelta
from typing import cast

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import resources
from engage.clock import Clock, as_utc
from engage.db import reading
from engage.errors import InvalidArgument, NotFound
from engage.profiles import ProfileDirectory, ProfileView
from engage.v1 import common_pb2, journey_pb2
from services.scheduler import journeys, ledger, simulation, store
from services.scheduler.broadcasts import Audience
from services.scheduler.enrollments import ACTIVE, ActiveJourney
from services.scheduler.graph import AFTER_COOLDOWN, ONCE
from services.scheduler.models import EnrollmentRow
from services.scheduler.policies import WorkspacePolicies

DEFAULT_PROFILES = 1_000
MAX_PROFILES = 10_000
DEFAULT_HORIZON = timedelta(days=90)
MAX_HORIZON = timedelta(days=800)
PROFILE_READS_IN_FLIGHT = 32
# The id and uid of a journey simulated before it is saved (it has no history).
UNSAVED = "unsaved"
_KINDS = {
    simulation.ENTERED: journey_pb2.SimulatedStep.KIND_ENTERED,
    simulation.SENT: journey_pb2.SimulatedStep.KIND_SENT,
    simulation.SKIPPED: journey_pb2.SimulatedStep.KIND_SKIPPED,
    simulation.DEFERRED: journey_pb2.SimulatedStep.KIND_DEFERRED,
    simulation.ASSUMED_TIMEOUT: journey_pb2.SimulatedStep.KIND_ASSUMED_TIMEOUT,
}


class JourneySimulator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audience: Audience,
        profiles: ProfileDirectory,
        policies: WorkspacePolicies,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.audience = audience
        self.profiles = profiles
        self.policies = policies
        self.clock = clock

    async def simulate(
        self, request: journey_pb2.SimulateJourneyRequest
    ) -> journey_pb2.SimulateJourneyResponse:
        workspace = resources.parse_parent("parent", request.parent)
        start = (
            request.start_time.ToDatetime(tzinfo=UTC)
            if request.HasField("start_time")
            else self.clock()
        )
        horizon = _horizon(request)
        limit = _max_profiles(request)
        journey = await self._journey(request, workspace)
        user_ids, truncated = await self._audience(request, workspace, limit)
        profiles = await self._profiles(workspace, user_ids)
        entered_before = await self._history(workspace, journey, user_ids)
        policy = await self.policies.policy(workspace)
        async with reading(self.sessions, workspace) as session:
            keys = {(workspace, user_id) for user_id in profiles}
            decisions = await ledger.decisions_for(session, {workspace: policy}, keys, start)
        answer = journey_pb2.SimulateJourneyResponse(truncated=truncated)
        for user_id in user_ids:
            simulated = journey_pb2.SimulatedProfile(user_id=user_id)
            profile = profiles.get(user_id)
            refusal = "profile_not_found" if profile is None else entered_before.get(user_id, "")
            if refusal or profile is None:
                simulated.not_entered = refusal
            else:
                followed = simulation.simulate(
                    journey, workspace, profile, decisions, start, horizon
                )
                _fill(simulated, followed, answer)
            answer.profiles.append(simulated)
        return answer

    async def _journey(
        self, request: journey_pb2.SimulateJourneyRequest, workspace: str
    ) -> ActiveJourney:
        if request.HasField("journey"):
            spec = journeys.parse_journey(request.journey, workspace)
            # Named, it draws its holdout as the saved journey of that name will.
            named = request.journey.name
            journey_id = resources.parse_name("journey.name", named, "journeys") if named else ""
            return ActiveJourney(journey_id or UNSAVED, UNSAVED, 1, spec.definition)
        journey_id = resources.parse_name("journey_name", request.journey_name, "journeys")
        async with reading(self.sessions, workspace) as session:
            row = await store.get_journey(session, journey_id)
        if row is None:
            raise NotFound(f"journey {journey_id!r} not found")
        return ActiveJourney(row.journey_id, row.uid, row.version, store.spec_of(row).definition)

    async def _audience(
        self, request: journey_pb2.SimulateJourneyRequest, workspace: str, limit: int
    ) -> tuple[list[str], bool]:
        """The user ids to follow, at most `limit`, and whether there were more."""
        if request.HasField("users"):
            ids = list(dict.fromkeys(u for u in request.users.user_ids if u))
            return ids[:limit], len(ids) > limit
        if not request.segment:
            raise InvalidArgument("segment", "a segment or users are required")
        resources.parse_name("segment", request.segment, "segments")
        found: list[str] = []
        async for chunk in self.audience.members(workspace, request.segment, ""):
            found += [member.user_id for member in chunk if member.user_id]
            if len(found) > limit:
                return found[:limit], True
        return found, False

    async def _profiles(self, workspace: str, user_ids: list[str]) -> dict[str, ProfileView]:
        slots = asyncio.Semaphore(PROFILE_READS_IN_FLIGHT)

        async def read(user_id: str) -> ProfileView | None:
            async with slots:
                return await self.profiles.find(workspace, user_id, with_segments=True)

        read_all = await asyncio.gather(*(read(user_id) for user_id in user_ids))
        return {u: profile for u, profile in zip(user_ids, read_all, strict=True) if profile}

    async def _history(
        self, workspace: str, journey: ActiveJourney, user_ids: list[str]
    ) -> dict[str, str]:
        """Why each profile the journey's re-entry policy keeps out would not enter."""
        if journey.uid == UNSAVED or not user_ids:
            return {}
        async with reading(self.sessions, workspace) as session:
            rows = (
                await session.exec(
                    select(EnrollmentRow).where(
                        col(EnrollmentRow.journey_id) == journey.journey_id,
                        col(EnrollmentRow.profile_key).in_(user_ids),
                    )
                )
            ).all()
        reentry, now = journey.definition.reentry, self.clock()
        kept_out: dict[str, str] = {}
        for row in rows:
            if row.status == ACTIVE:
                kept_out[row.profile_key] = "already_in_journey"
            elif reentry.mode == ONCE:
                kept_out.setdefault(row.profile_key, "already_entered")
            elif (
                reentry.mode == AFTER_COOLDOWN and now - as_utc(row.enrolled_at) < reentry.cooldown
            ):
                kept_out.setdefault(row.profile_key, "cooling_down")
        return kept_out


def _horizon(request: journey_pb2.SimulateJourneyRequest) -> timedelta:
    if not request.HasField("horizon"):
        return DEFAULT_HORIZON
    horizon = request.horizon.ToTimedelta()
    if not timedelta() < horizon <= MAX_HORIZON:
        raise InvalidArgument("horizon", f"must be more than 0 and at most {MAX_HORIZON.days} days")
    return horizon


def _max_profiles(request: journey_pb2.SimulateJourneyRequest) -> int:
    if not request.max_profiles:
        return DEFAULT_PROFILES
    if not 1 <= request.max_profiles <= MAX_PROFILES:
        raise InvalidArgument("max_profiles", f"must be from 1 to {MAX_PROFILES:,}")
    return request.max_profiles


def _fill(
    simulated: journey_pb2.SimulatedProfile,
    followed: simulation.Simulation,
    answer: journey_pb2.SimulateJourneyResponse,
) -> None:
    simulated.outcome = followed.outcome
    for step in followed.steps:
        proto = journey_pb2.SimulatedStep(
            step_id=step.step_id,
            kind=_KINDS[step.kind],
            channel=cast(common_pb2.Channel, step.channel),
            template=step.template,
            reason=step.reason,
        )
        proto.time.FromDatetime(step.time)
        simulated.steps.append(proto)
        if step.kind == simulation.ENTERED:
            answer.entered_by_step[step.step_id] += 1
        elif step.kind == simulation.SENT:
            answer.sends_by_channel[common_pb2.Channel.Name(step.channel)] += 1
        elif step.kind == simulation.SKIPPED:
            answer.skipped_by_reason[step.reason] += 1
