"""GDPR erasure end to end: DeleteProfile on segments, and every other service erases its copy."""

import sqlalchemy as sa

from engage.db import create_engine
from engage.v1 import message_pb2, message_pb2_grpc, profile_pb2, profile_pb2_grpc
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import ADMIN_KEY, WORKSPACE, Suite, auth, eventually
from tests.scenario import (
    create_welcome_journey,
    identify,
    journey_report,
    report_once_sent,
    track,
    wait_for_mail,
)

ADDRESS = "ada.lovelace@example.com"
USER_ID = "ada-erasure-7f3c"


async def personal_data_in(suite: Suite, service: str, needles: list[str]) -> list[str]:
    """`table.column` of every text cell of the service's database containing a needle."""
    engine = create_engine(suite.service_env(service)["ENGAGE_DATABASE_URL"])
    found: list[str] = []
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(
                lambda sync: {
                    name: [
                        column["name"]
                        for column in sa.inspect(sync).get_columns(name)
                        if isinstance(column["type"], sa.String)
                    ]
                    for name in sa.inspect(sync).get_table_names()
                }
            )
            for table, columns in tables.items():
                for column in columns:
                    for needle in needles:
                        statement = (
                            sa.select(sa.func.count())
                            .select_from(sa.table(table))
                            .where(sa.column(column).contains(needle, autoescape=True))
                        )
                        if (await connection.execute(statement)).scalar_one():
                            found.append(f"{table}.{column}")
    finally:
        await engine.dispose()
    return found


async def test_deleted_profile_is_erased_from_every_service_and_counts_stay(
    suite: Suite, smtp_sink: SmtpSink
) -> None:
    await create_welcome_journey(suite)
    await identify(suite, USER_ID, "Ada", ADDRESS)
    await track(suite, USER_ID, "signed_up")
    await wait_for_mail(smtp_sink, ADDRESS)
    await report_once_sent(suite, sent=1)

    async with suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        profile = await profiles.GetProfile(
            profile_pb2.GetProfileRequest(user_id=USER_ID), metadata=auth(ADMIN_KEY)
        )
    async with suite.channel("channels") as channel:
        messages = message_pb2_grpc.MessageServiceStub(channel)
        listed = await messages.ListMessages(
            message_pb2.ListMessagesRequest(parent=f"workspaces/{WORKSPACE}"),
            metadata=auth(ADMIN_KEY),
        )
        assert [(m.profile, m.recipient) for m in listed.messages] == [(profile.name, ADDRESS)]
        # What the scan below looks for is there before the erasure.
        for service in ("channels", "scheduler"):
            assert await personal_data_in(suite, service, [ADDRESS, USER_ID]), service

        async with suite.channel("segments") as segments:
            await profile_pb2_grpc.ProfileServiceStub(segments).DeleteProfile(
                profile_pb2.DeleteProfileRequest(name=profile.name), metadata=auth(ADMIN_KEY)
            )

        async def erased_everywhere() -> bool:
            for service in ("channels", "scheduler", "reporting"):
                found = await personal_data_in(suite, service, [ADDRESS, USER_ID])
                assert not found, (service, found)
            return True

        await eventually(erased_everywhere)

        to_profile = await messages.ListMessages(
            message_pb2.ListMessagesRequest(parent=f"workspaces/{WORKSPACE}", profile=profile.name),
            metadata=auth(ADMIN_KEY),
        )
        assert list(to_profile.messages) == []
        # The record itself stays, anonymised: its idempotency key still stops a replayed send.
        everything = await messages.ListMessages(
            message_pb2.ListMessagesRequest(parent=f"workspaces/{WORKSPACE}"),
            metadata=auth(ADMIN_KEY),
        )
        [record] = everything.messages
        assert record.state == message_pb2.Message.STATE_SENT
        assert (record.profile, record.recipient) == ("", "")

    report = await journey_report(suite)
    assert (report.enrolled_count, report.deliveries.sent) == (1, 1)
    assert len([mail for mail in smtp_sink.received if ADDRESS in mail.recipients]) == 1
