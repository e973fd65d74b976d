"""The outbox relay of a real service process outlives a NATS outage: what the service commits
while NATS is away is published, once, by the relay's own retry after NATS returns."""

import asyncio
import uuid

from engage import subjects
from engage.bus import Bus
from engage.v1 import bus_pb2, common_pb2, profile_pb2, profile_pb2_grpc
from tests.harness import WORKSPACE, Suite, auth, eventually


async def identify(nats_url: str, user_id: str) -> None:
    bus = await Bus.connect(nats_url, "test-identify")
    try:
        event = common_pb2.Event(
            message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
        )
        event.timestamp.GetCurrentTime()
        batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
        subject = subjects.events(WORKSPACE, user_id, 8)
        await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)
    finally:
        await bus.close()


async def erasures_published(nats_url: str, profile: str) -> int:
    """How many KIND_ERASED changes of `profile` the PROFILES stream holds."""
    bus = await Bus.connect(nats_url, "test-reader")
    try:
        state = (await bus.js.stream_info("PROFILES")).state
        found = 0
        for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            stored = await bus.js.get_msg("PROFILES", sequence)
            if not (stored.subject or "").startswith("engage.profiles."):
                continue  # the stream holds membership changes too
            for change in bus_pb2.ProfileChanges.FromString(stored.data or b"").changes:
                erased = change.kind == bus_pb2.ProfileChanged.KIND_ERASED
                found += erased and change.profile == profile
        return found
    finally:
        await bus.close()


async def test_an_erasure_committed_while_nats_is_away_is_published_once_it_returns(
    bare_suite: Suite,
) -> None:
    await asyncio.to_thread(bare_suite.start, "segments")
    await identify(bare_suite.nats.url, "ada")
    async with bare_suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        request = profile_pb2.GetProfileRequest(user_id="ada")
        profile = await eventually(lambda: profiles.GetProfile(request, metadata=auth()))

        await asyncio.to_thread(bare_suite.nats.stop)
        try:
            # The erasure commits with its announcement in the outbox; NATS cannot take it.
            deletion = profile_pb2.DeleteProfileRequest(name=profile.name)
            await profiles.DeleteProfile(deletion, metadata=auth())
            relay_failed = "outbox not relayed, will retry"
            await eventually(lambda: relay_failed in bare_suite.log("segments"), timeout=30)
        finally:
            await asyncio.to_thread(bare_suite.nats.start)  # same port, same store

    async def published() -> int:
        return await erasures_published(bare_suite.nats.url, profile.name)

    assert await eventually(published, timeout=30) == 1
