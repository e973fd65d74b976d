"""Reading back what is live with the CLI: `engage get segments`, `engage describe segment`,
`engage get profile` (tables for people, `-o json` / `-o yaml` for scripts) and `engage export
members`, against real ingest and segments processes."""

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from google.protobuf.struct_pb2 import Struct

from engage.v1 import ingest_pb2, ingest_pb2_grpc, profile_pb2, profile_pb2_grpc
from tests.e2e.test_apply import engage, engage_apply
from tests.harness import INGEST_KEY, SUPPORT_KEY, WORKSPACE, Suite, auth, eventually

PROS = "segment_id: pros\ndisplay_name: Pro plan\nrule: {trait: plan, equals: pro}\n"


@pytest.fixture
async def shop(bare_suite: Suite, tmp_path: Path) -> Suite:
    """Ada (plan pro, Tokyo) who signed up then searched, Grace (plan free), and a segment of
    pro-plan customers."""
    bare_suite.start("segments")
    bare_suite.start("ingest")
    async with bare_suite.channel("ingest") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        for user, plan in (("ada", "pro"), ("grace", "free")):
            traits = Struct()
            traits.update({"plan": plan, "email": f"{user}@example.com", "会員ランク": "gold"})
            await ingest.Identify(
                ingest_pb2.IdentifyRequest(user_id=user, traits=traits), metadata=auth(INGEST_KEY)
            )
        for event in ("signed_up", "flight_searched"):
            properties = Struct()
            properties.update({"route": "NRT-HNL"} if event == "flight_searched" else {})
            await ingest.Track(
                ingest_pb2.TrackRequest(user_id="ada", event=event, properties=properties),
                metadata=auth(INGEST_KEY),
            )
    async with bare_suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        async def both_known() -> bool:
            full = profile_pb2.PROFILE_VIEW_FULL
            ada = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id="ada", view=full), metadata=auth(SUPPORT_KEY)
            )
            await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id="grace"), metadata=auth(SUPPORT_KEY)
            )
            return len(ada.recent_events) == 3  # the identify and both tracks

        await eventually(both_known)
    (tmp_path / "pros.yaml").write_text(PROS)
    applied = await engage_apply(bare_suite, str(tmp_path / "pros.yaml"))
    assert applied.returncode == 0, applied.stderr
    return bare_suite


async def test_get_segments_lists_versions_and_member_counts(shop: Suite) -> None:
    table = await engage(shop, "get", "segments", "--api-key", SUPPORT_KEY)
    as_json = await engage(shop, "get", "segments", "-o", "json", "--api-key", SUPPORT_KEY)

    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["SEGMENT", "NAME", "VERSION", "MEMBERS", "UPDATED"]
    assert row.split()[:5] == ["pros", "Pro", "plan", "1", "1"]
    (listed,) = json.loads(as_json.stdout)
    assert {k: listed[k] for k in ("segment_id", "display_name", "version", "member_count")} == {
        "segment_id": "pros",
        "display_name": "Pro plan",
        "version": 1,
        "member_count": 1,
    }


async def test_describe_segment_shows_its_rule_version_count_and_a_sample(shop: Suite) -> None:
    table = await engage(shop, "describe", "segment", "pros", "--api-key", SUPPORT_KEY)
    as_yaml = await engage(
        shop, "describe", "segment", "pros", "-o", "yaml", "--api-key", SUPPORT_KEY
    )

    assert table.returncode == 0, table.stderr
    assert "rule:\n{trait: plan, equals: pro}\n" in table.stdout
    assert "sample: 1 of 1 members" in table.stdout
    assert "ada@example.com" in table.stdout and "grace" not in table.stdout
    described = yaml.safe_load(as_yaml.stdout)
    assert described["rule"] == {"trait": "plan", "equals": "pro"}
    assert (described["version"], described["member_count"]) == (1, 1)
    assert [member["user_id"] for member in described["sample"]] == ["ada"]


async def test_get_profile_shows_traits_memberships_and_recent_events(shop: Suite) -> None:
    table = await engage(shop, "get", "profile", "ada", "--api-key", SUPPORT_KEY)
    as_json = await engage(shop, "get", "profile", "ada", "-o", "json", "--api-key", SUPPORT_KEY)
    by_email = await engage(
        shop, "get", "profile", "grace@example.com", "--by", "email", "-o", "yaml",
        "--api-key", SUPPORT_KEY,
    )  # fmt: skip

    assert table.returncode == 0, table.stderr
    for shown in ("会員ランク", "gold", "pros", "flight_searched", '"route": "NRT-HNL"'):
        assert shown in table.stdout, shown
    profile = json.loads(as_json.stdout)
    assert profile["user_id"] == "ada"
    assert profile["traits"]["plan"] == "pro" and profile["traits"]["会員ランク"] == "gold"
    assert [m["segment"] for m in profile["memberships"]] == ["pros"]
    events = [(e["type"], e["event"]) for e in profile["recent_events"]]
    assert events == [("track", "flight_searched"), ("track", "signed_up"), ("identify", "")]
    grace = yaml.safe_load(by_email.stdout)
    assert (grace["user_id"], grace["memberships"]) == ("grace", [])


async def test_an_unknown_profile_is_one_line_naming_what_was_looked_for(shop: Suite) -> None:
    missing = await engage(shop, "get", "profile", "nobody", "--api-key", SUPPORT_KEY)
    bad_by = await engage(shop, "get", "profile", "ada", "--by", "phone", "--api-key", SUPPORT_KEY)

    assert missing.returncode == 1
    assert missing.stderr == "engage get: NOT_FOUND: no profile has user_id 'nobody'\n"
    assert bad_by.returncode == 2 and "--by" in bad_by.stderr


async def test_export_members_writes_the_segment_as_csv(shop: Suite, tmp_path: Path) -> None:
    printed = await engage(shop, "export", "members", "pros", "--api-key", SUPPORT_KEY)
    to_file = await engage(
        shop, "export", "members", "pros", "--to", str(tmp_path / "pros.csv"),
        "--api-key", SUPPORT_KEY,
    )  # fmt: skip

    rows = list(csv.reader(io.StringIO(printed.stdout)))
    assert rows[0] == ["profile", "user_id", "email"]
    assert [row[1:] for row in rows[1:]] == [["ada", "ada@example.com"]]
    assert to_file.stdout == f"wrote 1 members to {tmp_path / 'pros.csv'}\n"
    assert (tmp_path / "pros.csv").read_text() == printed.stdout
    assert WORKSPACE not in rows[1][0]  # the profile's id, not its resource name
