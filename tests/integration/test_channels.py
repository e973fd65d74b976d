"""The channels service on real parts: nats-server, its database, the segments service for
profiles and an SMTP sink that keeps what it receives."""

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.js import JetStreamContext

from engage import subjects
from engage.bus import Bus
from engage.v1 import (
    bus_pb2,
    common_pb2,
    message_pb2,
    message_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    template_pb2,
    template_pb2_grpc,
)
from services.channels.sandboxes.smtp_sink import SmtpSink
from tests.harness import (
    SUPPORT_KEY,
    Suite,
    auth,
    dead_letters,
    eventually,
    publish_sends,
    sends_settled,
)

WORKSPACE = "acme"
PARENT = f"workspaces/{WORKSPACE}"
DELIVERIES = subjects.deliveries(WORKSPACE, common_pb2.CHANNEL_EMAIL)


@dataclass
class Channels:
    bus: Bus
    templates: template_pb2_grpc.TemplateServiceStub
    messages: message_pb2_grpc.MessageServiceStub


async def start(bare_suite: Suite, bus: Bus, *services: str) -> AsyncIterator[Channels]:
    # `start` blocks until ready (and makes PostgreSQL databases with asyncio.run): off the loop.
    for service in services:
        await asyncio.to_thread(bare_suite.start, service)
    channel = bare_suite.channel("channels")
    yield Channels(
        bus,
        template_pb2_grpc.TemplateServiceStub(channel),
        message_pb2_grpc.MessageServiceStub(channel),
    )
    await channel.close()


@pytest.fixture
async def channels(bare_suite: Suite, bus: Bus) -> AsyncIterator[Channels]:
    """Channels alone: no profiles, so only what needs none can be tested."""
    async for running in start(bare_suite, bus, "channels"):
        yield running


@pytest.fixture
async def channels_with_profiles(bare_suite: Suite, bus: Bus) -> AsyncIterator[Channels]:
    # segments first: channels is given its address at start.
    async for running in start(bare_suite, bus, "segments", "channels"):
        yield running


def welcome_template() -> template_pb2.Template:
    return template_pb2.Template(
        display_name="Welcome",
        channel=common_pb2.CHANNEL_EMAIL,
        email=template_pb2.EmailContent(
            subject="Welcome, {{ profile.traits.first_name }}",
            text_body="Hello {{ profile.traits.first_name }}, your plan is {{ data.plan }}.",
            html_body="<p>Hello {{ profile.traits.first_name }}</p>",
        ),
    )


async def create_template(
    running: Channels, template_id: str, template: template_pb2.Template | None = None
) -> template_pb2.Template:
    created: template_pb2.Template = await running.templates.CreateTemplate(
        template_pb2.CreateTemplateRequest(
            parent=PARENT, template_id=template_id, template=template or welcome_template()
        ),
        metadata=auth(),
    )
    return created


async def identify(bus: Bus, user_id: str, **traits: str) -> None:
    event = common_pb2.Event(
        message_id=uuid.uuid4().hex, type=common_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id
    )
    event.traits.update(traits)
    batch = bus_pb2.EventBatch(id=uuid.uuid4().hex, workspace=WORKSPACE, events=[event])
    subject = subjects.events(WORKSPACE, user_id, 8)
    await bus.publish(subject, batch, f"{WORKSPACE}:{batch.id}", WORKSPACE)


async def profile_known(bare_suite: Suite, user_id: str) -> None:
    """Wait until segments has made the profile (with its email) from the identify."""
    async with bare_suite.channel("segments") as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        async def has_email() -> bool:
            profile = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id=user_id), metadata=auth()
            )
            return bool(profile.traits.fields["email"].string_value)

        await eventually(has_email)


def send_request(key: str, template: str, user_id: str = "u1") -> bus_pb2.SendRequested:
    send = bus_pb2.SendRequested(
        id=key,
        workspace=WORKSPACE,
        channel=common_pb2.CHANNEL_EMAIL,
        template=f"{PARENT}/templates/{template}",
        user_id=user_id,
        campaign=f"{PARENT}/campaigns/spring",
    )
    send.data.update({"plan": "pro"})
    return send


def message_name(key: str) -> str:
    return f"{PARENT}/messages/{hashlib.sha256(key.encode()).hexdigest()[:32]}"


async def next_delivery(subscription: JetStreamContext.PushSubscription) -> bus_pb2.DeliveryEvent:
    message = await subscription.next_msg(timeout=20)
    event = bus_pb2.DeliveryEvent()
    event.ParseFromString(message.data)
    return event


def field_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return str(bad_request.field_violations[0].field)
    return ""


async def test_send_reaches_the_profile_once_and_is_recorded(
    channels_with_profiles: Channels, bare_suite: Suite, smtp_sink: SmtpSink
) -> None:
    running = channels_with_profiles
    await identify(running.bus, "u1", email="ada@example.com", first_name="Ada")
    await profile_known(bare_suite, "u1")
    await create_template(running, "welcome")
    deliveries = await running.bus.js.subscribe(DELIVERIES, ordered_consumer=True)
    send = send_request("spring:enrollment-1:welcome:u1", "welcome")

    await publish_sends(running.bus, send)

    await eventually(lambda: len(smtp_sink.received) == 1)
    mail = smtp_sink.received[0]
    assert mail.recipients == ["ada@example.com"]
    assert mail.message["Subject"] == "Welcome, Ada"
    body = mail.message.get_body(("plain",))
    assert body is not None and "Hello Ada, your plan is pro." in body.get_content()
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    event = await next_delivery(deliveries)
    assert event.kind == bus_pb2.DeliveryEvent.KIND_SENT
    assert event.id == f"{send.id}:sent"
    assert (event.idempotency_key, event.user_id) == (send.id, "u1")
    assert event.campaign == send.campaign
    assert event.message == message_name(send.id)

    # The same send again, past JetStream's dedupe: the record makes it a no-op.
    await publish_sends(running.bus, send, msg_id=f"{send.id}-again")
    await eventually(lambda: sends_settled(running.bus))
    assert len(smtp_sink.received) == 1

    message = await running.messages.GetMessage(
        message_pb2.GetMessageRequest(name=message_name(send.id)), metadata=auth()
    )
    assert message.state == message_pb2.Message.STATE_SENT
    assert message.recipient == "ada@example.com"
    assert message.template == f"{PARENT}/templates/welcome"
    assert message.profile.startswith(f"{PARENT}/profiles/")
    assert message.send_time.seconds > 0
    masked = await running.messages.GetMessage(
        message_pb2.GetMessageRequest(name=message_name(send.id)), metadata=auth(SUPPORT_KEY)
    )
    assert masked.recipient == "a***@example.com"
    listed = await running.messages.ListMessages(
        message_pb2.ListMessagesRequest(parent=PARENT, profile=message.profile), metadata=auth()
    )
    assert [m.name for m in listed.messages] == [message.name]
    await deliveries.unsubscribe()


async def test_a_bad_send_in_a_bundle_is_dead_lettered_alone_and_the_others_go(
    channels_with_profiles: Channels, bare_suite: Suite, smtp_sink: SmtpSink
) -> None:
    running = channels_with_profiles
    for user_id, address in (("u7", "grace@example.com"), ("u8", "alan@example.com")):
        await identify(running.bus, user_id, email=address, first_name=user_id)
        await profile_known(bare_suite, user_id)
    await create_template(running, "welcome")
    good = [send_request(f"spring:{u}:welcome", "welcome", user_id=u) for u in ("u7", "u8")]
    # Names another workspace than the message it came in: it can never be handled.
    stray = send_request("spring:u9:welcome", "welcome", user_id="u9")
    stray.workspace = "globex"

    await publish_sends(running.bus, good[0], stray, good[1])

    await eventually(lambda: len(smtp_sink.received) == 2)
    assert sorted(r for mail in smtp_sink.received for r in mail.recipients) == [
        "alan@example.com",
        "grace@example.com",
    ]
    [parked] = await eventually(lambda: dead_letters(running.bus, "channels-sends"))
    assert bus_pb2.SendRequested.FromString(parked.data or b"").id == stray.id
    assert "globex" in (parked.headers or {})["Engage-Error"]
    await eventually(lambda: sends_settled(running.bus))


async def test_refused_recipient_fails_the_send_for_good(
    channels_with_profiles: Channels, bare_suite: Suite, smtp_sink: SmtpSink
) -> None:
    running = channels_with_profiles
    await identify(running.bus, "u3", email="reject-me@example.com", first_name="Rex")
    await profile_known(bare_suite, "u3")
    await create_template(running, "welcome")
    deliveries = await running.bus.js.subscribe(DELIVERIES, ordered_consumer=True)
    send = send_request("spring:enrollment-3:welcome:u3", "welcome", user_id="u3")

    await publish_sends(running.bus, send)

    event = await next_delivery(deliveries)
    assert event.kind == bus_pb2.DeliveryEvent.KIND_FAILED
    assert event.reason.startswith("smtp 550")
    message = await running.messages.GetMessage(
        message_pb2.GetMessageRequest(name=message_name(send.id)), metadata=auth()
    )
    assert message.state == message_pb2.Message.STATE_FAILED
    assert smtp_sink.received == []
    await deliveries.unsubscribe()


async def test_send_with_unknown_template_is_skipped_with_reason(
    channels: Channels, smtp_sink: SmtpSink
) -> None:
    deliveries = await channels.bus.js.subscribe(DELIVERIES, ordered_consumer=True)
    send = send_request("spring:enrollment-2:welcome:u2", "no-such-template", user_id="u2")

    await publish_sends(channels.bus, send)

    event = await next_delivery(deliveries)
    assert event.kind == bus_pb2.DeliveryEvent.KIND_SKIPPED
    assert event.reason == "template_not_found"
    message = await channels.messages.GetMessage(
        message_pb2.GetMessageRequest(name=message_name(send.id)), metadata=auth()
    )
    assert message.state == message_pb2.Message.STATE_SKIPPED
    assert message.reason == "template_not_found"
    assert smtp_sink.received == []
    await deliveries.unsubscribe()


async def test_template_lifecycle_and_errors(channels: Channels) -> None:
    created = await create_template(channels, "welcome")
    assert created.name == f"{PARENT}/templates/welcome"
    assert created.create_time.seconds > 0

    no_subject = welcome_template()
    no_subject.email.subject = ""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_template(channels, "broken", no_subject)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(error.value) == "template.email.subject"

    bad_syntax = welcome_template()
    bad_syntax.email.html_body = "<p>{% if %}</p>"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_template(channels, "broken", bad_syntax)
    assert field_of(error.value) == "template.email.html_body"

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_template(channels, "welcome")
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await channels.templates.GetTemplate(
            template_pb2.GetTemplateRequest(name=f"{PARENT}/templates/unknown"), metadata=auth()
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND

    change = template_pb2.Template(
        name=created.name, email=template_pb2.EmailContent(subject="Hi {{ profile.traits.x }}")
    )
    updated = await channels.templates.UpdateTemplate(
        template_pb2.UpdateTemplateRequest(
            template=change, update_mask=field_mask_pb2.FieldMask(paths=["email.subject"])
        ),
        metadata=auth(),
    )
    assert updated.email.subject == "Hi {{ profile.traits.x }}"
    assert updated.email.text_body == created.email.text_body

    rendered = await channels.templates.RenderTemplate(
        template_pb2.RenderTemplateRequest(name=created.name, traits={"x": "<b>Ada</b>"}),
        metadata=auth(),
    )
    assert rendered.email.subject == "Hi <b>Ada</b>"
    # A preview shows what the sample lacks instead of failing.
    assert rendered.email.text_body == "Hello {{ first_name }}, your plan is {{ plan }}."

    await create_template(channels, "second")
    first_page = await channels.templates.ListTemplates(
        template_pb2.ListTemplatesRequest(parent=PARENT, page_size=1), metadata=auth()
    )
    second_page = await channels.templates.ListTemplates(
        template_pb2.ListTemplatesRequest(
            parent=PARENT, page_size=1, page_token=first_page.next_page_token
        ),
        metadata=auth(),
    )
    names = [t.name for t in [*first_page.templates, *second_page.templates]]
    assert names == [created.name, f"{PARENT}/templates/second"]
    assert second_page.next_page_token == ""

    await channels.templates.DeleteTemplate(
        template_pb2.DeleteTemplateRequest(name=created.name), metadata=auth()
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await channels.templates.GetTemplate(
            template_pb2.GetTemplateRequest(name=created.name), metadata=auth()
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_messages_are_listed_a_page_at_a_time(channels: Channels) -> None:
    keys = [f"spring:enrollment-{n}:welcome:u{n}" for n in (4, 5)]
    for key in keys:
        send = send_request(key, "no-such-template", user_id=key.rsplit(":", 1)[1])
        await publish_sends(channels.bus, send)
    await eventually(lambda: sends_settled(channels.bus))

    first = await channels.messages.ListMessages(
        message_pb2.ListMessagesRequest(parent=PARENT, page_size=1), metadata=auth()
    )
    second = await channels.messages.ListMessages(
        message_pb2.ListMessagesRequest(
            parent=PARENT, page_size=1, page_token=first.next_page_token
        ),
        metadata=auth(),
    )
    listed = [m.idempotency_key for m in [*first.messages, *second.messages]]
    assert sorted(listed) == sorted(keys) and len(set(listed)) == 2
    # A token belongs to the filter it was issued for.
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await channels.messages.ListMessages(
            message_pb2.ListMessagesRequest(
                parent=PARENT,
                page_size=1,
                page_token=first.next_page_token,
                profile=f"{PARENT}/profiles/someone",
            ),
            metadata=auth(),
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(error.value) == "page_token"
