"""`engage apply`: the examples a marketer keeps in git become live segments, and again later."""

import asyncio
import subprocess
import sys
from pathlib import Path

from engage.v1 import segment_pb2, segment_pb2_grpc
from tests.harness import MARKETER_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "segments").glob("*.yaml"))


async def engage_apply(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engage.cli", "apply", "--address", suite.address("segments")]
    command += ["--workspace", WORKSPACE, *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )


async def test_examples_are_created_then_updated_as_new_versions(bare_suite: Suite) -> None:
    bare_suite.start("segments")

    first = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, *map(str, EXAMPLES))
    again = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, str(EXAMPLES[0]))

    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["created"] * len(EXAMPLES)
    assert again.stdout.startswith(f"updated workspaces/{WORKSPACE}/segments/")
    assert " v2:" in again.stdout
    async with bare_suite.channel("segments") as channel:
        listed = await segment_pb2_grpc.SegmentServiceStub(channel).ListSegments(
            segment_pb2.ListSegmentsRequest(parent=f"workspaces/{WORKSPACE}"),
            metadata=auth(SUPPORT_KEY),
        )
    assert {s.name.rsplit("/", 1)[1] for s in listed.segments} == {p.stem for p in EXAMPLES}


async def test_a_bad_file_or_key_is_refused_with_the_reason(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    broken = tmp_path / "broken.yaml"
    broken.write_text("segment_id: broken\nrule: {trait: plan, equalz: pro}\n")

    bad_file = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, str(broken))
    bad_key = await engage_apply(bare_suite, "--api-key", SUPPORT_KEY, str(EXAMPLES[0]))

    assert bad_file.returncode == 2 and "equalz" in bad_file.stderr
    assert bad_key.returncode == 1 and "PERMISSION_DENIED" in bad_key.stderr
