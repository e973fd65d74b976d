"""Templates: validation, storage and conversion to and from the `Template` proto."""

from collections.abc import Sequence
from email.utils import parseaddr

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engage import db, paging
from engage.clock import Clock, timestamp, utc_now
from engage.errors import AlreadyExists, InvalidArgument, NotFound
from engage.resources import name_of
from engage.v1 import common_pb2, template_pb2
from services.channels.adapters.email import address_is_valid
from services.channels.models import TemplateRow
from services.channels.rendering import TemplateProblem, check_email_syntax

COLLECTION = "templates"
# Paths an update_mask may name, and the ones an empty mask means (AIP-134: replace all).
UPDATABLE_PATHS = frozenset(
    {
        "display_name",
        "email",
        "email.from",
        "email.subject",
        "email.text_body",
        "email.html_body",
    }
)
FULL_REPLACEMENT = ("display_name", "email")
MAX_DISPLAY_NAME = 200


def validate_template(template: template_pb2.Template, field: str = "template") -> None:
    """Raise InvalidArgument naming the first bad field (`template.email.subject`, ...)."""
    if len(template.display_name) > MAX_DISPLAY_NAME:
        raise InvalidArgument(f"{field}.display_name", f"longer than {MAX_DISPLAY_NAME}")
    if template.channel not in (common_pb2.CHANNEL_UNSPECIFIED, common_pb2.CHANNEL_EMAIL):
        raise InvalidArgument(f"{field}.channel", "only CHANNEL_EMAIL templates are supported")
    if template.WhichOneof("content") != "email":
        raise InvalidArgument(f"{field}.email", "is required")
    email = template.email
    if not email.subject.strip():
        raise InvalidArgument(f"{field}.email.subject", "is required")
    if not email.text_body.strip() and not email.html_body.strip():
        raise InvalidArgument(f"{field}.email.text_body", "text_body or html_body is required")
    sender = sender_of(email)
    if sender and "{" not in sender and not address_is_valid(parseaddr(sender)[1]):
        raise InvalidArgument(f"{field}.email.from", "must be `Name <address>` or an address")
    try:
        check_email_syntax(email)
    except TemplateProblem as problem:
        raise InvalidArgument(f"{field}.email.{problem.part}", problem.description) from problem


def sender_of(content: template_pb2.EmailContent) -> str:
    """The `from` field (a Python keyword, so not an attribute name)."""
    return str(getattr(content, "from"))


def to_proto(row: TemplateRow) -> template_pb2.Template:
    template = template_pb2.Template(
        name=name_of(COLLECTION, row.template_id, row.workspace),
        display_name=row.display_name,
        channel=common_pb2.Channel.Name(row.channel),
    )
    template.email.ParseFromString(row.content)
    template.create_time.CopyFrom(timestamp(row.create_time))
    template.update_time.CopyFrom(timestamp(row.update_time))
    return template


def apply_mask(
    current: template_pb2.Template, change: template_pb2.Template, paths: Sequence[str]
) -> template_pb2.Template:
    """`current` with the masked fields taken from `change`."""
    updated = template_pb2.Template()
    updated.CopyFrom(current)
    for path in paths or FULL_REPLACEMENT:
        if path not in UPDATABLE_PATHS:
            raise InvalidArgument("update_mask", f"cannot update {path!r}")
        if path == "display_name":
            updated.display_name = change.display_name
        elif path == "email":
            updated.email.CopyFrom(change.email)
        else:
            part = path.partition(".")[2]
            setattr(updated.email, part, getattr(change.email, part))
    return updated


class TemplateStore:
    """Templates of every workspace; each method is one transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    async def create(
        self, workspace: str, template_id: str, template: template_pb2.Template
    ) -> template_pb2.Template:
        validate_template(template)
        now = self.clock()
        row = TemplateRow(
            workspace=workspace,
            template_id=template_id,
            display_name=template.display_name,
            channel=common_pb2.CHANNEL_EMAIL,
            content=template.email.SerializeToString(deterministic=True),
            create_time=now,
            update_time=now,
        )
        try:
            async with db.transaction(self.sessions, workspace) as session:
                session.add(row)
        except IntegrityError as error:
            raise AlreadyExists(f"template {template_id!r} already exists") from error
        return to_proto(row)

    async def get(self, workspace: str, template_id: str) -> template_pb2.Template:
        async with db.reading(self.sessions, workspace) as session:
            return to_proto(await self._row(session, template_id))

    async def find(self, workspace: str, template_id: str) -> template_pb2.Template | None:
        async with db.reading(self.sessions, workspace) as session:
            row = await self._find(session, template_id)
        return to_proto(row) if row else None

    async def list(
        self, workspace: str, size: int, token: str
    ) -> tuple[list[template_pb2.Template], str]:
        async with db.reading(self.sessions, workspace) as session:
            rows, next_token = await paging.keyset_page(
                session, select(TemplateRow), TemplateRow.id, size, token
            )
        return [to_proto(row) for row in rows], next_token

    async def update(
        self, workspace: str, template_id: str, change: template_pb2.Template, paths: Sequence[str]
    ) -> template_pb2.Template:
        async with db.transaction(self.sessions, workspace) as session:
            row = await self._row(session, template_id)
            updated = apply_mask(to_proto(row), change, paths)
            validate_template(updated)
            row.display_name = updated.display_name
            row.content = updated.email.SerializeToString(deterministic=True)
            row.update_time = self.clock()
            session.add(row)
        return to_proto(row)

    async def delete(self, workspace: str, template_id: str) -> None:
        async with db.transaction(self.sessions, workspace) as session:
            await session.delete(await self._row(session, template_id))

    @classmethod
    async def _row(cls, session: AsyncSession, template_id: str) -> TemplateRow:
        row = await cls._find(session, template_id)
        if row is None:
            raise NotFound(f"template {template_id!r} not found")
        return row

    @staticmethod
    async def _find(session: AsyncSession, template_id: str) -> TemplateRow | None:
        query = select(TemplateRow).where(col(TemplateRow.template_id) == template_id)
        return (await session.exec(query)).first()
