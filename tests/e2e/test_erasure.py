"""GDPR erasure end to end: DeleteProfile on segments, and every other service erases its copy:
no cell of any table of any service's database, text, JSON or blob, still holds the person's
email address, user id or name."""

import json

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
FIRST_NAME = "Adelheid"
PERSONAL = [ADDRESS, USER_ID, FIRST_NAME]
# Every service that keeps a database (ingest keeps none).
WITH_DATABASE = ("segments", "scheduler", "channels", "reporting")


def searchable(value: object) -> tuple[str, bytes]:
    """A stored value's kind and its bytes to search: blobs (protobuf payloads) as they are,
    JSON as its JSON text, text as UTF-8, anything else as its text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "blob", bytes(value)
    if isinstance(value, dict | list):
        return "json", json.dumps(value, ensure_ascii=False).encode()
    if isinstance(value, str):
        return "text", value.encode()
    return "other", b"" if value is None else str(value).encode()


async def personal_data_in(suite: Suite, service: str, needles: list[str]) -> dict[str, str]:
    """Every `table.column` of the service's database, of any type, where some cell holds a
    needle, with the kind of that cell (text, json, blob)."""
    engine = create_engine(suite.service_env(service)["ENGAGE_DATABASE_URL"])
    found: dict[str, str] = {}
    try:
        async with engine.connect() as connection:
            schema = sa.MetaData()
            await connection.run_sync(schema.reflect)
            for table in schema.sorted_tables:
                for row in (await connection.execute(sa.select(table))).mappings():
                    for column, value in row.items():
                        kind, cell = searchable(value)
                        if any(needle.encode() in cell for needle in needles):
                            found[f"{table.name}.{column}"] = kind
    finally:
        await engine.dispose()
    return found


async def test_deleted_profile_is_erased_from_every_service_and_counts_stay(
    suite: Suite, smtp_sink: SmtpSink
) -> None:
    await create_welcome_journey(suite)
    await identify(suite, USER_ID, FIRST_NAME, ADDRESS)
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
        # What the scan below looks for is there before the erasure, in text, JSON and blobs.
        held = {
            service: await personal_data_in(suite, service, PERSONAL) for service in WITH_DATABASE
        }
        for service in ("segments", "channels", "scheduler"):
            assert held[service], service
        assert "blob" in held["segments"].values(), held["segments"]  # the stored event payloads

        async with suite.channel("segments") as segments:
            await profile_pb2_grpc.ProfileServiceStub(segments).DeleteProfile(
                profile_pb2.DeleteProfileRequest(name=profile.name), metadata=auth(ADMIN_KEY)
            )

        async def erased_everywhere() -> bool:
            for service in WITH_DATABASE:
                found = await personal_data_in(suite, service, PERSONAL)
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
