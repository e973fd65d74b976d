"""The ingest process through a NATS outage while single events pour in: every call is
answered, OK only for events JetStream stored, UNAVAILABLE (HTTP 503) otherwise, and none
answered OK is lost."""

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from engage.v1 import ingest_pb2, ingest_pb2_grpc
from tests.harness import INGEST_KEY, Suite, auth, eventually, stored_events
from tests.integration.test_ingest_http import basic

CALLERS = 16


class Tally:
    """Who was told what: message ids answered OK, and the error codes of the others."""

    def __init__(self) -> None:
        self.ok: list[str] = []
        self.refused: list[str] = []
        self.ids = itertools.count()


async def pour(
    call: Callable[[str], Awaitable[str | None]], tally: Tally, stop: asyncio.Event
) -> None:
    """`CALLERS` callers sending one event after the other until `stop`."""

    async def caller() -> None:
        while not stop.is_set():
            message_id = f"m-{next(tally.ids)}"
            refused = await call(message_id)
            if refused is None:
                tally.ok.append(message_id)
            else:
                tally.refused.append(refused)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))


async def through_an_outage(suite: Suite, call: Callable[[str], Awaitable[str | None]]) -> Tally:
    """Pour events, stop NATS, wait for the refusals, start it again (same store), and wait
    for calls to succeed again."""
    tally, stop = Tally(), asyncio.Event()
    pouring = asyncio.create_task(pour(call, tally, stop))
    await eventually(lambda: len(tally.ok) >= 200)
    await asyncio.to_thread(suite.nats.stop)
    try:
        await eventually(lambda: len(tally.refused) >= CALLERS, timeout=30)
    finally:
        await asyncio.to_thread(suite.nats.start)  # same port, same store
    ok_before = len(tally.ok)
    await eventually(lambda: len(tally.ok) >= ok_before + 200, timeout=30)
    stop.set()
    await asyncio.wait_for(pouring, timeout=30)  # no call is left hanging
    return tally


async def test_grpc_tracks_through_an_outage_are_answered_ok_only_when_stored(
    bare_suite: Suite,
) -> None:
    await asyncio.to_thread(bare_suite.start, "ingest")
    async with bare_suite.channel("ingest") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)

        async def track(message_id: str) -> str | None:
            request = ingest_pb2.TrackRequest(message_id=message_id, user_id=message_id, event="e")
            try:
                await ingest.Track(request, metadata=auth(INGEST_KEY))
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)
            return None

        tally = await through_an_outage(bare_suite, track)

    assert set(tally.refused) == {"UNAVAILABLE"}
    stored = {event.message_id for event in await stored_events(bare_suite)}
    assert set(tally.ok) <= stored


async def test_http_tracks_through_an_outage_are_answered_200_only_when_stored(
    bare_suite: Suite,
) -> None:
    await asyncio.to_thread(bare_suite.start, "ingest")
    url = f"http://{bare_suite.processes['ingest'].http_address}/v1/track"
    async with aiohttp.ClientSession(headers=basic(INGEST_KEY)) as session:

        async def track(message_id: str) -> str | None:
            call = {"messageId": message_id, "userId": message_id, "event": "e"}
            async with session.post(url, json=call) as response:
                answer = await response.json()
                return None if response.status == 200 else f"{response.status} {answer}"

        tally = await through_an_outage(bare_suite, track)

    assert {refusal.split(" ")[0] for refusal in tally.refused} == {"503"}
    stored = {event.message_id for event in await stored_events(bare_suite)}
    assert set(tally.ok) <= stored
