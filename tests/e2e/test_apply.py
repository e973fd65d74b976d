"""`engage apply`: the examples a marketer keeps in git become live segments, and again later;
`engage export segments` gives back the files a marketer would have written."""

import asyncio
import subprocess
import sys
from pathlib import Path

from engage.v1 import segment_pb2, segment_pb2_grpc
from engage_cli.rules_yaml import from_data, load
from tests.harness import MARKETER_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "segments").glob("*.yaml"))


async def engage(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    """`engage <args>` against the suite's segments service, as a marketer runs it."""
    command = [sys.executable, "-m", "engage_cli", *args, "--address", suite.address("segments")]
    command += ["--workspace", WORKSPACE]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )


async def engage_apply(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    return await engage(suite, "apply", *args)


async def live_segments(suite: Suite) -> dict[str, segment_pb2.Segment]:
    async with suite.channel("segments") as channel:
        listed = await segment_pb2_grpc.SegmentServiceStub(channel).ListSegments(
            segment_pb2.ListSegmentsRequest(parent=f"workspaces/{WORKSPACE}"),
            metadata=auth(SUPPORT_KEY),
        )
    return {segment.name.rsplit("/", 1)[1]: segment for segment in listed.segments}


async def test_examples_are_created_then_updated_as_new_versions(bare_suite: Suite) -> None:
    bare_suite.start("segments")

    first = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, *map(str, EXAMPLES))
    again = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, str(EXAMPLES[0]))

    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["created"] * len(EXAMPLES)
    assert again.stdout.startswith(f"updated workspaces/{WORKSPACE}/segments/")
    assert " v2:" in again.stdout
    assert set(await live_segments(bare_suite)) == {path.stem for path in EXAMPLES}


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


async def test_exported_segments_apply_back_to_the_same_rules(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    applied = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, *map(str, EXAMPLES))
    assert applied.returncode == 0, applied.stderr
    before = await live_segments(bare_suite)

    exported = await engage(
        bare_suite, "export", "segments", "--dir", str(tmp_path / "out"), "--api-key", SUPPORT_KEY
    )
    one = await engage(bare_suite, "export", "segments", EXAMPLES[0].stem, "--api-key", SUPPORT_KEY)
    files = sorted((tmp_path / "out").glob("*.yaml"))
    again = await engage_apply(bare_suite, "--api-key", MARKETER_KEY, *map(str, files))
    after = await live_segments(bare_suite)

    assert exported.returncode == 0, exported.stderr
    assert [path.name for path in files] == [path.name for path in EXAMPLES]
    assert one.stdout == (tmp_path / "out" / EXAMPLES[0].name).read_text()
    assert again.returncode == 0, again.stderr
    for segment_id, segment in before.items():
        document = load((tmp_path / "out" / f"{segment_id}.yaml").read_text())
        original = load((EXAMPLES[0].parent / f"{segment_id}.yaml").read_text())
        assert from_data(document["rule"]) == segment.rule == from_data(original["rule"])
        assert {k: v for k, v in document.items() if k != "rule"} == {
            k: v for k, v in original.items() if k != "rule"
        }
        assert after[segment_id].rule == segment.rule, segment_id
        assert after[segment_id].version == segment.version + 1
