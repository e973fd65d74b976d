"""Tables of the channels service: templates and message records (plus the shared outbox)."""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class TemplateRow(SQLModel, table=True):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("workspace", "template_id"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    template_id: str
    display_name: str
    # `engage.v1.Channel` number.
    channel: int
    # The serialized content message of the channel (`EmailContent` for email).
    content: bytes
    create_time: datetime
    update_time: datetime


class MessageRow(SQLModel, table=True):
    """One per intended send, ever: the unique (workspace, idempotency_key) makes it so."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("workspace", "idempotency_key"),
        UniqueConstraint("workspace", "message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    message_id: str
    idempotency_key: str
    channel: int
    # `engage.v1.Message.State` name without prefix: SENDING, SENT, SKIPPED, FAILED.
    state: str
    user_id: str
    profile: str
    template: str
    recipient: str
    reason: str
    journey: str
    journey_version: int
    step_id: str
    campaign: str
    provider_message_id: str
    create_time: datetime
    send_time: datetime | None = None
    # Set while a worker hands the message to the provider (the claim), cleared when the
    # provider is known not to have it. A claim without an outcome means "maybe sent".
    handoff_time: datetime | None = None
    # How many times the message went to the provider; bumped by every claim, so it also
    # versions the record for compare-and-set writes.
    handoffs: int = 0
