"""Migration 0002 on a real database (SQLite, and PostgreSQL when configured): journeys saved
as lists of steps read back as the same journeys, as graphs, and enrollments made before it
count as done, so their profiles are not entered again."""

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

import services.scheduler
from engage import db
from engage.v1 import common_pb2
from services.scheduler import graph, store
from services.scheduler.enrollments import COMPLETED
from tests.harness import Databases

MIGRATIONS = Path(services.scheduler.__file__).parent / "migrations"
TEMPLATE = "workspaces/acme/templates/welcome"
OLD_STEPS = (
    '[{"id":"hello","send":{"channel":1,"template":"' + TEMPLATE + '","transactional":false}},'
    '{"id":"stop","exit":{}}]'
)
NOW = "'2026-01-01 00:00:00'"


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_old_journeys_read_back_as_graphs_and_old_enrollments_are_done(
    databases: Databases,
) -> None:
    engine = db.create_engine(databases.url("scheduler"))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0001")
            await connection.execute(
                sa.text(
                    "INSERT INTO journeys (workspace, journey_id, uid, display_name, state,"
                    " version, trigger_event, steps, create_time, update_time) VALUES ('acme',"
                    f" 'welcome', 'u1', 'Welcome', 2, 1, 'signed_up', :steps, {NOW}, {NOW})"
                ),
                {"steps": OLD_STEPS},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO journey_versions (workspace, journey_id, version,"
                    " trigger_event, steps, create_time) VALUES"
                    f" ('acme', 'welcome', 1, 'signed_up', :steps, {NOW})"
                ),
                {"steps": OLD_STEPS},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO journey_enrollments (workspace, journey_id, profile_key,"
                    " enrollment_id, journey_version, user_id, anonymous_id, enrolled_at) VALUES"
                    f" ('acme', 'welcome', 'ana', 'e1', 1, 'ana', '', {NOW})"
                )
            )
            await connection.run_sync(_upgrade, "head")
            journey = (await connection.execute(sa.text("SELECT definition FROM journeys"))).one()
            version = (
                await connection.execute(sa.text("SELECT definition FROM journey_versions"))
            ).one()
            enrollment = (
                await connection.execute(
                    sa.text("SELECT status, active_key FROM journey_enrollments")
                )
            ).one()
    finally:
        await engine.dispose()
    definition = store.definition_of(journey.definition, "acme")
    assert definition == store.definition_of(version.definition, "acme")
    assert definition.trigger_event == "signed_up"
    assert [(s.id, s.next) for s in definition.steps] == [("hello", "stop"), ("stop", "")]
    assert definition.steps[0].action == graph.Send(common_pb2.CHANNEL_EMAIL, TEMPLATE)
    assert isinstance(definition.steps[1].action, graph.Exit)
    assert (enrollment.status, enrollment.active_key) == (COMPLETED, None)
