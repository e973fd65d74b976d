"""`engage apply` with journeys: the examples go live once, an unchanged apply changes nothing,
a dry run shows the change as a diff and changes nothing, and a journey the scheduler refuses
is named by file, line and key; `engage get` and `describe` read journeys and campaigns back,
a journey with its enrollments by step."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engage.bus import Bus
from engage.v1 import journey_pb2, journey_pb2_grpc
from engage_cli.apply import read_files
from tests.harness import MARKETER_KEY, WORKSPACE, Suite, auth, eventually
from tests.journeys import EXAMPLES, identify, start_scheduler
from tests.journeys import engage_apply as apply_files

REMINDERS = EXAMPLES / "journeys" / "prescription-reminders.yaml"


async def engage_apply(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(apply_files, suite, *args)


@pytest.fixture
async def bus_for_reading(bare_suite: Suite) -> AsyncIterator[Bus]:
    await asyncio.to_thread(start_scheduler, bare_suite)
    connection = await Bus.connect(bare_suite.nats.url, "test")
    yield connection
    await connection.close()


async def test_journeys_apply_once_show_a_dry_run_diff_and_name_a_refused_key(
    bare_suite: Suite, bus_for_reading: Bus, tmp_path: Path
) -> None:
    folders = (str(EXAMPLES / "segments"), str(EXAMPLES / "journeys"))
    first = await engage_apply(bare_suite, *folders)
    assert first.returncode == 0, first.stderr
    again = await engage_apply(bare_suite, *folders)
    assert again.returncode == 0, again.stderr
    journey_lines = [line for line in again.stdout.splitlines() if "/journeys/" in line]
    _, written = read_files(sorted((EXAMPLES / "journeys").glob("*.yaml")), WORKSPACE)
    assert len(journey_lines) == len(written)
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


PRICING = """\
journey_id: pricing-follow-up
state: active
trigger:
  event: page_viewed
  where: [{property: page, equals: pricing}]
priority: 20
steps:
  - id: by-plan
    branch:
      paths:
        - rule:
            all:
              - {trait: plan, equals: gold}
              - {event: page_viewed, where: [{property: referrer, exists: true}]}
          next: mark
      otherwise: standard
  - id: mark
    update_trait: {trait: pricing_offer, value: {plan: gold, months: 3}}
  - id: gold-offer
    send: {channel: email, template: gold-pricing}
    next: done
  - id: standard
    send: {channel: email, template: pricing}
  - id: done
    exit: {}
"""


async def test_a_journey_with_a_where_a_rule_branch_and_a_trait_update_applies_once(
    bare_suite: Suite, bus_for_reading: Bus, tmp_path: Path
) -> None:
    written = tmp_path / "pricing.yaml"
    written.write_text(PRICING)
    first = await engage_apply(bare_suite, str(written))
    assert first.returncode == 0, first.stderr
    again = await engage_apply(bare_suite, str(written))
    assert again.returncode == 0, again.stderr
    [line] = again.stdout.splitlines()
    assert line.startswith(f"unchanged workspaces/{WORKSPACE}/journeys/pricing-follow-up ")


async def test_journeys_and_campaigns_read_back_with_their_counts(
    bare_suite: Suite, bus_for_reading: Bus
) -> None:
    folders = [str(EXAMPLES / name) for name in ("segments", "journeys", "campaigns")]
    applied = await engage_apply(bare_suite, *folders)
    assert applied.returncode == 0, applied.stderr
    await identify(bus_for_reading, "ana", {"timezone": "Asia/Tokyo"}, then="added_to_cart")
    await identify(bus_for_reading, "bo", {}, then="added_to_cart")

    async def counted() -> dict[str, Any] | None:
        described = await read(bare_suite, "describe", "journey", "cart-abandonment", "-o", "json")
        record: dict[str, Any] = json.loads(described.stdout)
        return record if record["counts"].get("active") == "2" else None

    record = await eventually(counted)
    assert record["counts"]["activeAtStep"] == {"an-hour-to-buy": "2"}
    assert record["definition"]["trigger"] == {"event": {"event": "added_to_cart"}}
    listed = await read(bare_suite, "get", "journeys", "-o", "json")
    ids = sorted(row["id"] for row in json.loads(listed.stdout))
    assert "cart-abandonment" in ids and "prescription-reminders" in ids
    campaign = await read(
        bare_suite, "describe", "campaign", "night-train-new-season", "-o", "yaml"
    )
    assert "localSendTime:" in campaign.stdout and "progress:" in campaign.stdout
    table = await read(bare_suite, "get", "campaigns")
    assert "night-train-new-season" in table.stdout


async def read(suite: Suite, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engage_cli", *args, "--workspace", WORKSPACE]
    command += ["--scheduler-address", suite.address("scheduler"), "--api-key", MARKETER_KEY]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done
