"""What rule values mean, case by case, on the Python evaluator and in SQL on a real database
(SQLite, and PostgreSQL when configured): nested paths and quoted keys, arrays, "42" and 42,
"true" and true, missing and null, counts with at_least / at_most, non-ASCII keys. Each case
names the profiles that must match; both sides must name exactly those."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import services.segments
from engage import db, subjects
from engage.bus import Bus
from engage.rules.evaluate import Facts, evaluate
from engage.rules.proto import to_proto
from engage.v1 import bus_pb2, common_pb2, segment_pb2, segment_pb2_grpc
from services.segments.models import Profile, ProfileEvent, document_text
from services.segments.rules_sql import member_ids
from tests.harness import MARKETER_KEY, Databases, Suite, auth, eventually
from tests.rules import from_yaml

MIGRATIONS = Path(services.segments.__file__).parent / "migrations"
NOW = datetime(2025, 3, 20, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)

Events = list[tuple[str, datetime, dict[str, Any]]]


@dataclass
class Person:
    traits: dict[str, Any]
    member: bool
    events: Events = field(default_factory=list)


def yes(traits: dict[str, Any], events: Events | None = None) -> Person:
    return Person(traits, True, events or [])


def no(traits: dict[str, Any], events: Events | None = None) -> Person:
    return Person(traits, False, events or [])


ADDRESS = {"address": {"city": "Tokyo", "geo": {"zip": "100-0001"}}}
CASES: dict[str, list[Person]] = {
    # Nested paths, quoted keys holding dots, and never a step into an array.
    "{trait: address.city, equals: Tokyo}": [
        yes(ADDRESS),
        no({"address": {"city": "Osaka"}}),
        no({"address.city": "Tokyo"}),
        no({"address": "Tokyo"}),
        no({}),
    ],
    "{trait: address.geo.zip, contains: '100'}": [yes(ADDRESS), no({"address": {"geo": 100}})],
    """{trait: '"utm.source"', equals: mail}""": [
        yes({"utm.source": "mail"}),
        no({"utm": {"source": "mail"}}),
    ],
    """{trait: 'context."a.b".c', greater_than: 1}""": [
        yes({"context": {"a.b": {"c": 2}}}),
        no({"context": {"a": {"b": {"c": 2}}}}),
    ],
    "{trait: items.0, exists: true}": [
        yes({"items": {"0": "first"}}),
        no({"items": ["first"]}),
        no({"items": [["first"]]}),
    ],
    "{trait: items.0.sku, exists: true}": [
        yes({"items": {"0": {"sku": "A1"}}}),
        no({"items": [{"sku": "A1"}]}),
    ],
    "{trait: address.city, not_equals: Tokyo}": [
        no(ADDRESS),
        yes({"address": {"city": "Osaka"}}),
        yes({"address": None}),
        yes({}),
    ],
    # Arrays hold their elements.
    "{trait: tags, contains: vip}": [
        yes({"tags": ["new", "vip"]}),
        no({"tags": ["vipx", "v"]}),
        yes({"tags": "the vip lounge"}),
        no({"tags": []}),
        no({"tags": {"vip": True}}),
        no({"tags": [["vip"]]}),
    ],
    "{trait: tags, contains: 42}": [
        yes({"tags": [1, 42]}),
        yes({"tags": ["42"]}),
        no({"tags": "x42"}),
        no({"tags": 42}),
    ],
    "{trait: tags, in: [gold, 7]}": [
        yes({"tags": ["silver", "gold"]}),
        yes({"tags": [7.0]}),
        yes({"tags": "7"}),
        no({"tags": ["silver"]}),
        no({"tags": []}),
    ],
    "{trait: tags, equals: vip}": [yes({"tags": ["vip", "new"]}), no({"tags": ["new"]})],
    "{trait: tags, not_equals: vip}": [
        no({"tags": ["vip", "new"]}),
        yes({"tags": ["new"]}),
        yes({"tags": []}),
    ],
    "not: {trait: tags, in: [vip, gold]}": [
        no({"tags": ["gold"]}),
        yes({"tags": ["new", None]}),
        yes({}),
    ],
    "{trait: scores, greater_than: 1}": [no({"scores": [5, 6]}), yes({"scores": 5})],
    # "42" and 42: a plain decimal text is its number; two texts compare as texts.
    "{trait: n, equals: 42}": [
        yes({"n": 42}),
        yes({"n": 42.0}),
        yes({"n": "42"}),
        yes({"n": "42.00"}),
        no({"n": "042"}),
        no({"n": " 42"}),
        no({"n": "+42"}),
        no({"n": "4.2e1"}),
        no({"n": "0x2A"}),
        no({"n": "42."}),
        no({"n": True}),
        no({"n": None}),
    ],
    "{trait: n, equals: '42'}": [yes({"n": 42}), yes({"n": "42"}), no({"n": "42.0"})],
    "{trait: zip, equals: '007'}": [yes({"zip": "007"}), no({"zip": "7"}), no({"zip": 7})],
    "{trait: n, greater_or_equal: -4.5}": [
        yes({"n": "-4.5"}),
        yes({"n": "0"}),
        yes({"n": "-0"}),
        no({"n": "-4.51"}),
        no({"n": "-"}),
        no({"n": "1.2.3"}),
        no({"n": "12345678901234567890123"}),  # longer than a plain decimal may be
        yes({"n": "1234567890123456789"}),
    ],
    "{trait: n, between: [1, 3]}": [
        yes({"n": 1}),
        yes({"n": "3"}),
        no({"n": 3.0000001}),
        no({"n": "0.999"}),
    ],
    "{trait: n, not_equals: 42}": [no({"n": "42"}), yes({"n": "43"}), yes({"n": "forty-two"})],
    # "true" and true.
    "{trait: opted_in, equals: true}": [
        yes({"opted_in": True}),
        yes({"opted_in": "true"}),
        no({"opted_in": "True"}),
        no({"opted_in": 1}),
        no({"opted_in": "1"}),
        no({"opted_in": False}),
    ],
    "{trait: opted_in, equals: 'false'}": [yes({"opted_in": False}), yes({"opted_in": "false"})],
    # Missing and null are no value.
    "{trait: email, exists: true}": [yes({"email": ""}), no({"email": None}), no({})],
    "{trait: email, not_equals: ''}": [no({"email": ""}), yes({"email": None}), yes({})],
    # Keys in any script.
    "{trait: 会員ランク, equals: ゴールド}": [
        yes({"会員ランク": "ゴールド"}),
        no({"会員ランク": "シルバー"}),
    ],
    "{trait: prénom.usuel, equals: Zoé}": [yes({"prénom": {"usuel": "Zoé"}}), no({})],
    # Dates in nested traits.
    "{trait: subscription.started_at, before: {ago: 30d}}": [
        yes({"subscription": {"started_at": (NOW - 31 * DAY).isoformat()}}),
        no({"subscription": {"started_at": (NOW - 29 * DAY).isoformat()}}),
        no({"subscription": "2020-01-01"}),
        no({"subscription.started_at": "2020-01-01"}),
    ],
    "{trait: renewal_at, after: {trait: subscription.started_at, offset: 30d}}": [
        yes({"renewal_at": "2025-02-01", "subscription": {"started_at": "2024-12-01"}}),
        no({"renewal_at": "2025-02-01", "subscription": {"started_at": "2025-01-10"}}),
        no({"renewal_at": "2025-02-01"}),
    ],
}

PAID = "paid"
TWICE: Events = [(PAID, NOW - 2 * DAY, {}), (PAID, NOW - DAY, {})]
EVENT_CASES: dict[str, list[Person]] = {
    # Counts: at_most alone includes never; at_most: 0 is never; bounds are inclusive.
    "{event: paid, at_most: 2}": [yes({}), yes({}, TWICE), no({}, [*TWICE, *TWICE[:1]])],
    "{event: paid, at_most: 0}": [yes({}), no({}, TWICE[:1]), yes({}, [("other", NOW, {})])],
    "{event: paid, at_least: 0}": [yes({}), yes({}, TWICE)],
    "{event: paid, at_least: 2}": [no({}, TWICE[:1]), yes({}, TWICE), no({})],
    "{event: paid, at_least: 2, at_most: 2}": [yes({}, TWICE), no({}, [*TWICE, *TWICE])],
    "{event: paid, at_least: 0, at_most: 1, within: 36h}": [yes({}, TWICE), yes({})],
    "{event: paid, at_most: 0, since: {trait: signed_up_at}}": [
        yes({"signed_up_at": NOW.isoformat()}, TWICE),
        no({"signed_up_at": (NOW - 3 * DAY).isoformat()}, TWICE),
        no({}),  # "since a date it does not have" is never true
    ],
    # Properties: nested paths, arrays, text numbers, non-ASCII keys.
    "{event: paid, where: [{property: order.total, greater_than: 10}]}": [
        yes({}, [(PAID, NOW, {"order": {"total": "12.50"}})]),
        no({}, [(PAID, NOW, {"order": {"total": "9.99"}})]),
        no({}, [(PAID, NOW, {"order.total": 12})]),
    ],
    "{event: paid, where: [{property: skus, contains: A1}]}": [
        yes({}, [(PAID, NOW, {"skus": ["B2", "A1"]})]),
        no({}, [(PAID, NOW, {"skus": ["B2"]})]),
    ],
    "{event: paid, at_most: 0, where: [{property: 路線, equals: 山手線}]}": [
        no({}, [(PAID, NOW, {"路線": "山手線"})]),
        yes({}, [(PAID, NOW, {"路線": "中央線"})]),
    ],
    "{event: paid, where: [{property: coupon, not_equals: SPRING}]}": [
        yes({}, [(PAID, NOW, {})]),
        no({}, [(PAID, NOW, {"coupon": "SPRING"})]),
    ],
}


@dataclass
class Store:
    runner: asyncio.Runner
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
def store(databases: Databases) -> Iterator[Store]:
    with asyncio.Runner() as runner:
        engine, sessions = runner.run(db.open_database(databases.url("segments"), MIGRATIONS))
        yield Store(runner, sessions)
        runner.run(engine.dispose())


async def _write(
    sessions: async_sessionmaker[AsyncSession], workspace: str, people: list[Person]
) -> None:
    async with db.transaction(sessions, workspace) as session:
        for index, person in enumerate(people):
            profile_id = f"{workspace}-{index}"
            session.add(
                Profile(
                    id=profile_id,
                    workspace=workspace,
                    traits=document_text(person.traits),
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            for number, (name, at, properties) in enumerate(person.events):
                session.add(
                    ProfileEvent(
                        workspace=workspace,
                        message_id=f"{profile_id}-{number}",
                        profile_id=profile_id,
                        type=1,
                        event=name,
                        timestamp=at,
                        payload=b"",
                        properties=document_text(properties),
                    )
                )


def _evaluated(rule_yaml: str, people: list[Person]) -> list[bool]:
    rule = from_yaml(rule_yaml)
    found = []
    for person in people:
        events: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        for name, at, properties in person.events:
            events.setdefault(name, []).append((at, properties))
        found.append(evaluate(rule, Facts(person.traits, events), NOW))
    return found


async def _selected(store: Store, rule_yaml: str, people: list[Person]) -> list[bool]:
    workspace = uuid.uuid4().hex[:12]
    await _write(store.sessions, workspace, people)
    async with db.reading(store.sessions, workspace) as session:
        members = set(await member_ids(session, workspace, from_yaml(rule_yaml), NOW))
    return [f"{workspace}-{index}" in members for index in range(len(people))]


@pytest.mark.parametrize("rule_yaml", [*CASES, *EVENT_CASES])
def test_rule_values_mean_the_same_in_python_and_sql(store: Store, rule_yaml: str) -> None:
    people = CASES.get(rule_yaml) or EVENT_CASES[rule_yaml]
    expected = [person.member for person in people]
    assert _evaluated(rule_yaml, people) == expected, "evaluator"
    assert store.runner.run(_selected(store, rule_yaml, people)) == expected, "SQL"


# --- documents stored before this release ------------------------------------------------------


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_escaped_documents_are_stored_again_as_written(databases: Databases) -> None:
    engine = db.create_engine(databases.url("segments"))
    traits = {"会員ランク": "ゴールド", "address": {"moved_at": "2025-01-02T03:04:05Z"}}
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0006")
            await connection.execute(
                sa.text(
                    "INSERT INTO profiles (id, workspace, traits, trait_times, time_zone, locale,"
                    " created_at, updated_at, trait_dates, trait_local_times, sample_bucket)"
                    " VALUES ('p1', 'acme', :traits, :times, '', '', :at, :at, '{}', '{}', 0)"
                ),
                {
                    "traits": json.dumps(traits),
                    "times": json.dumps({"会員ランク": NOW.isoformat()}),
                    "at": NOW,
                },
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO profile_events (workspace, message_id, profile_id, type, event,"
                    " timestamp, payload, properties)"
                    " VALUES ('acme', 'm1', 'p1', 2, 'ride', :at, :payload, :properties)"
                ),
                {"at": NOW, "payload": b"", "properties": json.dumps({"路線": "山手線"})},
            )
            await connection.run_sync(_upgrade, "head")
            profile = (await connection.execute(sa.text("SELECT * FROM profiles"))).mappings().one()
            event = (
                await connection.execute(sa.text("SELECT properties FROM profile_events"))
            ).one()
    finally:
        await engine.dispose()
    assert profile["traits"] == document_text(traits)
    assert "会員ランク" in profile["trait_times"]
    assert event[0] == '{"路線": "山手線"}'
    assert json.loads(profile["trait_dates"]) == {"address": {"moved_at": 1735787045000000}}


async def test_segments_over_migrated_documents_see_their_members(databases: Databases) -> None:
    """The issue's case: data stored first, the segment made afterwards, on SQLite too."""
    url = databases.url("segments")
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0006")
            await connection.execute(
                sa.text(
                    "INSERT INTO profiles (id, workspace, traits, trait_times, time_zone, locale,"
                    " created_at, updated_at, trait_dates, trait_local_times, sample_bucket)"
                    " VALUES ('p1', 'acme', :traits, '{}', '', '', :at, :at, '{}', '{}', 0)"
                ),
                {"traits": json.dumps({"会員ランク": "ゴールド"}), "at": NOW},
            )
    finally:
        await engine.dispose()
    engine, sessions = await db.open_database(url, MIGRATIONS)
    try:
        async with db.reading(sessions, "acme") as session:
            rule = from_yaml("{trait: 会員ランク, equals: ゴールド}")
            assert await member_ids(session, "acme", rule, NOW) == ["p1"]
    finally:
        await engine.dispose()


# --- through the running service ---------------------------------------------------------------


async def test_a_segment_made_after_the_data_sees_nested_and_non_ascii_values(
    bare_suite: Suite,
) -> None:
    """Identifies and tracks applied by the segments process, then segments created: SQL
    reads what the process stored (on SQLite too, keys in any script)."""
    await asyncio.to_thread(bare_suite.start, "segments")
    bus = await Bus.open(bare_suite.nats.url, "test")
    channel = bare_suite.channel("segments")
    try:
        stub = segment_pb2_grpc.SegmentServiceStub(channel)
        await _publish(
            bus,
            _event(
                "hana",
                traits={
                    "email": "hana@example.com",
                    "会員ランク": "ゴールド",
                    "address": {"city": "東京", "zip": "100-0001"},
                    "tags": ["vip", "early"],
                    "seats": "3",
                },
            ),
            _event("hana", name="ride", properties={"路線": "山手線", "fare": {"yen": 160}}),
            _event("zoe", traits={"email": "zoe@example.com", "prénom": "Zoé", "seats": 2}),
        )

        async def applied() -> bool:
            people = await _count(stub, "{trait: email, exists: true}")
            return people == 2 and await _count(stub, "{event: ride}") == 1

        await eventually(applied)
        expected = {
            "{trait: 会員ランク, equals: ゴールド}": 1,
            "{trait: address.city, equals: 東京}": 1,
            "{trait: tags, contains: vip}": 1,
            "{trait: prénom, equals: Zoé}": 1,
            "{trait: seats, greater_than: 2}": 1,
            "{event: ride, where: [{property: 路線, equals: 山手線}]}": 1,
            "{event: ride, where: [{property: fare.yen, less_or_equal: 160}]}": 1,
            "{event: ride, at_most: 0}": 1,
        }
        for index, (rule_yaml, members) in enumerate(expected.items()):
            made = await stub.CreateSegment(
                segment_pb2.CreateSegmentRequest(
                    parent="workspaces/acme",
                    segment_id=f"s{index}",
                    segment=segment_pb2.Segment(rule=to_proto(from_yaml(rule_yaml))),
                ),
                metadata=auth(MARKETER_KEY),
            )
            assert made.member_count == members, rule_yaml
    finally:
        await channel.close()
        await bus.close()


def _event(user_id: str, *, name: str = "", **fields: dict[str, Any]) -> common_pb2.Event:
    kind = common_pb2.EVENT_TYPE_TRACK if name else common_pb2.EVENT_TYPE_IDENTIFY
    made = common_pb2.Event(message_id=uuid.uuid4().hex, type=kind, user_id=user_id, event=name)
    made.timestamp.FromDatetime(datetime.now(UTC))
    made.traits.update(fields.get("traits", {}))
    made.properties.update(fields.get("properties", {}))
    return made


async def _publish(bus: Bus, *events: common_pb2.Event) -> None:
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace="acme", events=list(events))
    await bus.publish(subjects.events("acme", "hana", 8), batch, batch.id, "acme")


async def _count(stub: segment_pb2_grpc.SegmentServiceStub, rule_yaml: str) -> int:
    request = segment_pb2.PreviewSegmentRequest(
        parent="workspaces/acme", rule=to_proto(from_yaml(rule_yaml))
    )
    answer = await stub.PreviewSegment(request, metadata=auth(MARKETER_KEY))
    return int(answer.member_count)
