"""How the segments service shares and gathers its work: the partitions replicas own, and the
group commit that puts what several partitions fetched into one transaction."""

import asyncio

import pytest

from services.segments.consumers import GroupCommit, owned_partitions


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_every_partition_has_exactly_one_owner(count: int) -> None:
    shares = [owned_partitions(8, index, count) for index in range(count)]
    assert sorted(p for share in shares for p in share) == list(range(8))
    assert all(shares)


async def test_what_arrives_during_a_call_goes_together_into_the_next() -> None:
    calls: list[list[str]] = []
    first_running = asyncio.Event()
    release = asyncio.Event()

    async def apply(items: list[str]) -> None:
        calls.append(items)
        first_running.set()
        if len(calls) == 1:
            await release.wait()

    group: GroupCommit[str] = GroupCommit(apply)
    first = asyncio.create_task(group.submit(["a"]))
    await first_running.wait()
    later = [asyncio.create_task(group.submit([name])) for name in "bcd"]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *later)
    assert calls == [["a"], ["b", "c", "d"]]


async def test_a_failed_call_fails_every_submitter_in_it() -> None:
    async def apply(items: list[str]) -> None:
        raise RuntimeError("database away")

    group: GroupCommit[str] = GroupCommit(apply)
    outcomes = await asyncio.gather(
        *(group.submit([name]) for name in "ab"),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
