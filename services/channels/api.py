"""gRPC servicers of the channels service: TemplateService and MessageService."""

import grpc
from google.protobuf import empty_pb2, json_format

from engage.errors import EngageError, InvalidArgument
from engage.paging import page_size
from engage.principal import current_principal
from engage.resources import check_id, parse_name, parse_parent
from engage.resources import workspace as caller_workspace
from engage.v1 import message_pb2, message_pb2_grpc, template_pb2, template_pb2_grpc
from services.channels import messages, templates
from services.channels.messages import MessageStore
from services.channels.rendering import TemplateProblem, profile_context, render_email
from services.channels.templates import TemplateStore


class Unimplemented(EngageError):
    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


class TemplateApi(template_pb2_grpc.TemplateServiceServicer):
    def __init__(self, store: TemplateStore) -> None:
        self.store = store

    async def CreateTemplate(
        self, request: template_pb2.CreateTemplateRequest, context: grpc.aio.ServicerContext
    ) -> template_pb2.Template:
        workspace = parse_parent("parent", request.parent)
        template_id = check_id("template_id", request.template_id)
        return await self.store.create(workspace, template_id, request.template)

    async def GetTemplate(
        self, request: template_pb2.GetTemplateRequest, context: grpc.aio.ServicerContext
    ) -> template_pb2.Template:
        template_id = parse_name("name", request.name, templates.COLLECTION)
        return await self.store.get(caller_workspace(), template_id)

    async def ListTemplates(
        self, request: template_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> template_pb2.ListTemplatesResponse:
        workspace = parse_parent("parent", request.parent)
        found, token = await self.store.list(
            workspace, page_size(request.page_size), request.page_token
        )
        return template_pb2.ListTemplatesResponse(templates=found, next_page_token=token)

    async def UpdateTemplate(
        self, request: template_pb2.UpdateTemplateRequest, context: grpc.aio.ServicerContext
    ) -> template_pb2.Template:
        template_id = parse_name("template.name", request.template.name, templates.COLLECTION)
        return await self.store.update(
            caller_workspace(),
            template_id,
            request.template,
            list(request.update_mask.paths),
        )

    async def DeleteTemplate(
        self, request: template_pb2.DeleteTemplateRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        template_id = parse_name("name", request.name, templates.COLLECTION)
        await self.store.delete(caller_workspace(), template_id)
        return empty_pb2.Empty()

    async def RenderTemplate(
        self, request: template_pb2.RenderTemplateRequest, context: grpc.aio.ServicerContext
    ) -> template_pb2.RenderTemplateResponse:
        template_id = parse_name("name", request.name, templates.COLLECTION)
        template = await self.store.get(caller_workspace(), template_id)
        traits = json_format.MessageToDict(request.traits) if request.HasField("traits") else {}
        sample = profile_context(
            str(traits.get("user_id", "")), traits, {}, unsubscribe_url="#unsubscribe"
        )
        try:
            rendered = render_email(template.email, sample, preview=True)
        except TemplateProblem as problem:
            raise InvalidArgument("traits", f"template does not render: {problem}") from problem
        email = template_pb2.EmailContent(
            subject=rendered.subject, text_body=rendered.text_body, html_body=rendered.html_body
        )
        setattr(email, "from", rendered.sender)  # `from` is a keyword
        return template_pb2.RenderTemplateResponse(email=email)


class MessageApi(message_pb2_grpc.MessageServiceServicer):
    def __init__(self, store: MessageStore) -> None:
        self.store = store

    async def SendMessage(
        self, request: message_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> message_pb2.Message:
        raise Unimplemented("SendMessage is not implemented yet; publish a SendRequested")

    async def GetMessage(
        self, request: message_pb2.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> message_pb2.Message:
        message_id = parse_name("name", request.name, messages.COLLECTION)
        row = await self.store.get(caller_workspace(), message_id)
        return messages.to_proto(row, reveal_recipient=_may_see_personal_data())

    async def ListMessages(
        self, request: message_pb2.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> message_pb2.ListMessagesResponse:
        workspace = parse_parent("parent", request.parent)
        if request.profile:
            parse_name("profile", request.profile, "profiles")
        rows, token = await self.store.list(
            workspace, page_size(request.page_size), request.page_token, request.profile
        )
        reveal = _may_see_personal_data()
        return message_pb2.ListMessagesResponse(
            messages=[messages.to_proto(row, reveal) for row in rows], next_page_token=token
        )


def _may_see_personal_data() -> bool:
    # Only admins see full addresses until per-key grants exist (DESIGN: support sees masked).
    return "admin" in current_principal.get().roles
