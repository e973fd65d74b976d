"""`engage apply` with journeys: the examples go live once, an unchanged apply changes nothing,
a dry run shows the change as a diff and changes nothing, and a journey the scheduler refuses
is named by file, line and key."""

import asyncio
import subprocess
from pathlib import Path

from engage.v1 import journey_pb2, journey_pb2_grpc
from tests.harness import MARKETER_KEY, WORKSPACE, Suite, auth
from tests.journeys import EXAMPLES, start_scheduler
from tests.journeys import engage_apply as apply_files

REMINDERS = EXAMPLES / "journeys" / "prescription-reminders.yaml"


async def engage_apply(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(apply_files, suite, *args)


async def test_journeys_apply_once_show_a_dry_run_diff_and_name_a_refused_key(
    bare_suite: Suite, tmp_path: Path
) -> None:
    await asyncio.to_thread(start_scheduler, bare_suite)
    folders = (str(EXAMPLES / "segments"), str(EXAMPLES / "journeys"))
    first = await engage_apply(bare_suite, *folders)
    assert first.returncode == 0, first.stderr
    again = await engage_apply(bare_suite, *folders)
    assert again.returncode == 0, again.stderr
    journey_lines = [line for line in again.stdout.splitlines() if "/journeys/" in line]
    assert len(journey_lines) == 2
    assert all(line.startswith("unchanged ") for line in journey_lines)

    edited = tmp_path / REMINDERS.name
    edited.write_text(REMINDERS.read_text().replace("holdout_percent: 10", "holdout_percent: 20"))
    dry = await engage_apply(bare_suite, "--dry-run", str(edited))
    assert dry.returncode == 0, dry.stderr
    assert "would update workspaces/acme/journeys/prescription-reminders" in dry.stdout
    assert "-holdoutPercent: 10.0" in dry.stdout and "+holdoutPercent: 20.0" in dry.stdout
    async with bare_suite.channel("scheduler") as channel:
        live = await journey_pb2_grpc.JourneyServiceStub(channel).GetJourney(
            journey_pb2.GetJourneyRequest(
                name=f"workspaces/{WORKSPACE}/journeys/prescription-reminders"
            ),
            metadata=auth(MARKETER_KEY),
        )
    assert (live.version, live.holdout_percent) == (1, 10.0)

    broken = tmp_path / "broken.yaml"
    broken.write_text(REMINDERS.read_text().replace("days: 11,", "days: 11, months: 999,"))
    refused = await engage_apply(bare_suite, str(broken))
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"engage apply: {broken}:17: steps[2].wait.trait_date.months:")
