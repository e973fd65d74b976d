"""`engage apply`: the examples a marketer keeps in git become live segments; applying them again
changes nothing; a dry run shows what would change; a mistake, found by the CLI or by the
service, names the file, the line and the key as written; `engage export segments` gives back the
files a marketer would have written."""

import asyncio
import subprocess
import sys
from pathlib import Path

from engage.v1 import segment_pb2, segment_pb2_grpc
from engage_cli.rules_yaml import from_data, load
from tests.harness import MARKETER_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "segments").glob("*.yaml"))
PILLS = next(path for path in EXAMPLES if path.stem == "pill-subscribers")


async def engage(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    """`engage <args>` against the suite's segments service, as a marketer runs it."""
    command = [sys.executable, "-m", "engage_cli", *args, "--address", suite.address("segments")]
    command += ["--workspace", WORKSPACE]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )


async def engage_apply(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    return await engage(suite, "apply", "--api-key", MARKETER_KEY, *args)


async def live_segments(suite: Suite) -> dict[str, segment_pb2.Segment]:
    async with suite.channel("segments") as channel:
        listed = await segment_pb2_grpc.SegmentServiceStub(channel).ListSegments(
            segment_pb2.ListSegmentsRequest(parent=f"workspaces/{WORKSPACE}"),
            metadata=auth(SUPPORT_KEY),
        )
    return {segment.name.rsplit("/", 1)[1]: segment for segment in listed.segments}


def edited(source: Path, folder: Path, old: str, new: str) -> Path:
    """A copy of `source` in `folder` with `old` replaced by `new`."""
    text = source.read_text()
    assert old in text
    copy = folder / source.name
    copy.write_text(text.replace(old, new))
    return copy


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a refused command: exit 2 and one line on stderr, never a traceback."""
    assert result.returncode == 2, result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


async def test_examples_are_created_and_an_unchanged_apply_changes_nothing(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")

    first = await engage_apply(bare_suite, *map(str, EXAMPLES))
    created = await live_segments(bare_suite)
    again = await engage_apply(bare_suite, str(EXAMPLES[0].parent))  # a folder: its files
    changed = edited(PILLS, tmp_path, "description: ", "description: Now, ")
    update = await engage_apply(bare_suite, str(changed))

    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["created"] * len(EXAMPLES)
    assert set(created) == {path.stem for path in EXAMPLES}
    assert again.returncode == 0, again.stderr
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["unchanged"] * len(EXAMPLES)
    after = await live_segments(bare_suite)
    assert update.returncode == 0, update.stderr
    assert after[PILLS.stem].version == 2 and after[PILLS.stem].description.startswith("Now, ")
    assert update.stdout.startswith(f"updated workspaces/{WORKSPACE}/segments/{PILLS.stem} v2:")
    assert all(after[s].version == 1 for s in created if s != PILLS.stem)


async def test_the_service_saves_no_version_for_an_update_that_changes_nothing(
    bare_suite: Suite,
) -> None:
    bare_suite.start("segments")
    assert (await engage_apply(bare_suite, str(PILLS))).returncode == 0
    async with bare_suite.channel("segments") as channel:
        segments = segment_pb2_grpc.SegmentServiceStub(channel)
        name = f"workspaces/{WORKSPACE}/segments/{PILLS.stem}"
        live = await segments.GetSegment(
            segment_pb2.GetSegmentRequest(name=name), metadata=auth(MARKETER_KEY)
        )
        same = await segments.UpdateSegment(
            segment_pb2.UpdateSegmentRequest(segment=live), metadata=auth(MARKETER_KEY)
        )
        renamed = segment_pb2.Segment(name=name, display_name="Pills, renamed")
        masked = segment_pb2.UpdateSegmentRequest(segment=renamed)
        masked.update_mask.paths.append("display_name")
        changed = await segments.UpdateSegment(masked, metadata=auth(MARKETER_KEY))

    assert same.version == live.version == 1
    assert same.update_time == live.update_time
    assert (changed.version, changed.display_name, changed.rule) == (2, "Pills, renamed", live.rule)


async def test_a_dry_run_prints_what_would_change_as_a_diff_and_touches_nothing(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    others = [path for path in EXAMPLES if path != PILLS]
    assert (await engage_apply(bare_suite, str(PILLS))).returncode == 0
    before = await live_segments(bare_suite)
    changed = edited(PILLS, tmp_path, "equals: active", "equals: paused")

    dry = await engage_apply(bare_suite, "--dry-run", str(changed), *map(str, others))
    unchanged = await engage_apply(bare_suite, "--dry-run", str(PILLS))

    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    name = f"workspaces/{WORKSPACE}/segments/{PILLS.stem}"
    assert lines[0].startswith(f"would update {name} v1 → v2: 0 members ({changed})")
    diff = [line for line in lines if line[:1] in "+-@" and not line.startswith(("---", "+++"))]
    assert [line for line in diff if line[:1] in "+-"] == [
        "-    - {trait: subscription_status, equals: active}",
        "+    - {trait: subscription_status, equals: paused}",
    ], dry.stdout
    would_create = [line for line in lines if line.startswith("would create ")]
    assert len(would_create) == len(others)
    assert unchanged.stdout.startswith(f"unchanged {name} v1 ")
    assert await live_segments(bare_suite) == before


async def test_a_missing_file_or_bad_yaml_is_one_line_naming_the_file_and_line(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    broken = tmp_path / "broken.yaml"
    broken.write_text("segment_id: broken\nrule:\n  all: [{trait: plan, equals: pro}\n")

    missing = await engage_apply(bare_suite, str(tmp_path / "absent.yaml"))
    not_yaml = await engage_apply(bare_suite, str(broken))

    assert one_line_error(missing) == f"engage apply: {tmp_path / 'absent.yaml'}: no such file"
    # The sequence opened on line 3 is found unclosed at the end, line 4.
    assert one_line_error(not_yaml) == (
        f"engage apply: {broken}:4: is not valid YAML: while parsing a flow sequence (from line"
        " 3), expected ',' or ']', but got '<stream end>'"
    )
    assert await live_segments(bare_suite) == {}


async def test_unknown_keys_are_refused_at_every_level_with_file_line_and_key(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    top = tmp_path / "top.yaml"
    top.write_text("segment_id: top\ndescripton: typo\nrule: {trait: plan, equals: pro}\n")
    rule = tmp_path / "rule.yaml"
    rule.write_text(
        "segment_id: rule\nrule:\n  all:\n    - {trait: plan, equals: pro}\n"
        "    - event: paid\n      within: 7d\n      where:\n        - {property: sku, equalz: A}\n"
    )

    refused_top = await engage_apply(bare_suite, str(top))
    refused_rule = await engage_apply(bare_suite, str(rule))

    assert one_line_error(refused_top) == (
        f"engage apply: {top}:2: descripton: is not a field here; did you mean `description`?"
    )
    assert one_line_error(refused_rule).startswith(f"engage apply: {rule}:8: rule.all[1].where[0]")
    assert "equalz" in refused_rule.stderr
    assert await live_segments(bare_suite) == {}


async def test_a_mistake_the_service_finds_names_the_key_and_line_as_written(
    bare_suite: Suite, tmp_path: Path
) -> None:
    bare_suite.start("segments")
    bounds = tmp_path / "bounds.yaml"
    bounds.write_text(
        "segment_id: bounds\nrule:\n  all:\n    - {trait: plan, equals: pro}\n"
        "    - {trait: age, between: [65, 18]}\n"
    )
    date = tmp_path / "date.yaml"
    date.write_text(
        "segment_id: date\nrule:\n  any:\n    - not:\n"
        "        {trait: signed_up_at, after: 2026-13-45}\n"
    )

    reversed_bounds = await engage_apply(bare_suite, str(bounds))
    bad_date = await engage_apply(bare_suite, str(date))
    dry = await engage_apply(bare_suite, "--dry-run", str(bounds))

    assert one_line_error(reversed_bounds).startswith(
        f"engage apply: {bounds}:5: rule.all[1].between: "
    )
    assert one_line_error(bad_date).startswith(f"engage apply: {date}:5: rule.any[0].not.after: ")
    assert one_line_error(dry) == one_line_error(reversed_bounds)
    assert await live_segments(bare_suite) == {}


async def test_a_key_without_the_right_is_refused_by_the_service(bare_suite: Suite) -> None:
    bare_suite.start("segments")

    refused = await engage(bare_suite, "apply", "--api-key", SUPPORT_KEY, str(EXAMPLES[0]))

    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_exported_segments_apply_back_unchanged(bare_suite: Suite, tmp_path: Path) -> None:
    bare_suite.start("segments")
    applied = await engage_apply(bare_suite, *map(str, EXAMPLES))
    assert applied.returncode == 0, applied.stderr
    before = await live_segments(bare_suite)

    exported = await engage(
        bare_suite, "export", "segments", "--dir", str(tmp_path / "out"), "--api-key", SUPPORT_KEY
    )
    one = await engage(bare_suite, "export", "segments", EXAMPLES[0].stem, "--api-key", SUPPORT_KEY)
    every = await engage(bare_suite, "export", "segments", "--api-key", SUPPORT_KEY)
    (tmp_path / "all.yaml").write_text(every.stdout)
    files = sorted((tmp_path / "out").glob("*.yaml"))
    again = await engage_apply(bare_suite, *map(str, files))
    as_one_file = await engage_apply(bare_suite, str(tmp_path / "all.yaml"))
    after = await live_segments(bare_suite)

    assert exported.returncode == 0, exported.stderr
    assert [path.name for path in files] == [path.name for path in EXAMPLES]
    assert one.stdout == (tmp_path / "out" / EXAMPLES[0].name).read_text()
    assert again.returncode == 0, again.stderr
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"unchanged"}
    assert as_one_file.stdout.count("unchanged ") == len(EXAMPLES), as_one_file.stderr
    for segment_id, segment in before.items():
        document = load((tmp_path / "out" / f"{segment_id}.yaml").read_text())
        original = load((EXAMPLES[0].parent / f"{segment_id}.yaml").read_text())
        assert from_data(document["rule"]) == segment.rule == from_data(original["rule"])
        assert {k: v for k, v in document.items() if k != "rule"} == {
            k: v for k, v in original.items() if k != "rule"
        }
        assert after[segment_id] == segment, segment_id
