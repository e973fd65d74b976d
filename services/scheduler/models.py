"""The scheduler's tables: journeys, every saved version of each, enrollments and their timers,
and the frequency ledger."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class JourneyRow(SQLModel, table=True):
    """A journey's current definition (the latest version)."""

    __tablename__ = "journeys"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "journey_id", name="uq_journeys_workspace_journey"),
        sa.Index("ix_journeys_trigger", "workspace", "state", "trigger_event"),
        sa.Index("ix_journeys_trigger_segment", "workspace", "state", "trigger_segment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    # Changes when a journey is deleted and created again, so enrollments never collide.
    uid: str
    display_name: str
    state: int
    version: int
    # What enters profiles: an event, or a segment (then `trigger_event` is empty).
    trigger_event: str
    trigger_segment: str
    # What the journey does, as the contract's JSON (see graph.to_json).
    definition: str
    create_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
    update_time: datetime = Field(sa_type=sa.DateTime(timezone=True))


class JourneyVersionRow(SQLModel, table=True):
    """One saved version of a journey; enrollments run the version they entered with."""

    __tablename__ = "journey_versions"
    __table_args__ = (
        sa.UniqueConstraint(
            "workspace", "journey_id", "version", name="uq_journey_versions_version"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    version: int
    definition: str
    create_time: datetime = Field(sa_type=sa.DateTime(timezone=True))


class EnrollmentRow(SQLModel, table=True):
    """One profile's pass through one journey version (see enrollments.Enrollment)."""

    __tablename__ = "journey_enrollments"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "enrollment_id", name="uq_journey_enrollments_id"),
        # At most one active enrollment per profile and journey: `active_key` is the profile
        # key while active and NULL after (NULLs never collide).
        sa.UniqueConstraint(
            "workspace", "journey_id", "active_key", name="uq_journey_enrollments_active"
        ),
        sa.Index("ix_journey_enrollments_profile", "workspace", "profile_key", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    profile_key: str
    enrollment_id: str
    journey_version: int
    user_id: str
    anonymous_id: str
    enrolled_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    # The event that enrolled it: a step that reads the profile reads it with this applied.
    trigger_message_id: str
    # JSON of what its sends' templates may read of the trigger (its properties).
    context: str
    status: int
    active_key: str | None = None
    step_id: str
    awaiting_event: str
    last_send_key: str
    position: int
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class TimerRow(SQLModel, table=True):
    """When a waiting enrollment moves on. Fired by whichever scheduler claims it first."""

    __tablename__ = "journey_timers"
    __table_args__ = (
        sa.Index("ix_journey_timers_due", "due_at"),
        sa.Index("ix_journey_timers_enrollment", "workspace", "enrollment_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    journey_id: str
    enrollment_id: str
    # The enrollment's position when the timer was set: a timer whose enrollment has moved
    # since (an awaited event came, it left) is stale and dropped.
    position: int
    due_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    # The step it resumes at; empty: the enrollment ends.
    resume_at: str
    # Set for a step that waits for the profile to be fetched, not for a time.
    needs_profile: bool
    # Fetches of the profile that found the trigger not applied yet.
    attempts: int


class LedgerRow(SQLModel, table=True):
    """A marketing send made: what frequency caps count."""

    __tablename__ = "frequency_ledger"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "send_key", name="uq_frequency_ledger_send"),
        sa.Index("ix_frequency_ledger_profile", "workspace", "profile_key", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    profile_key: str
    channel: int
    sent_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    send_key: str


class CampaignRow(SQLModel, table=True):
    """A campaign, and how far its broadcast has come."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.UniqueConstraint("workspace", "campaign_id", name="uq_campaigns_workspace_campaign"),
        sa.Index("ix_campaigns_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    campaign_id: str
    # Changes when a campaign is deleted and created again, so send keys never collide.
    uid: str
    display_name: str
    state: int
    # What it is, as the contract's JSON (see campaigns.to_proto).
    definition: str
    send_time: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The runs begun (a one-off campaign has one); the current run's last member gone through
    # (a profile name): a restarted broadcast goes on after it.
    runs: int = 0
    cursor: str = ""
    audience_done: bool = False
    targeted: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    # JSON object: reason -> count.
    skipped: str = "{}"
    # Members not decided yet (see campaigns.Recipient.pending); for an A/B test, when its
    # test's audience was gone through, and the winning variant once chosen.
    pending: int = 0
    test_done_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    winner: str = ""
    # The event that converts a recipient (from the definition, kept apart to find it by).
    goal_event: str = ""
    create_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
    update_time: datetime = Field(sa_type=sa.DateTime(timezone=True))


class RecipientRow(SQLModel, table=True):
    """One member of a campaign's audience, and what became of its send."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        sa.UniqueConstraint(
            "workspace", "campaign_id", "run", "profile_key", name="uq_campaign_recipients_profile"
        ),
        sa.Index("ix_campaign_recipients_send", "workspace", "send_key"),
        sa.Index(
            "ix_campaign_recipients_pending", "workspace", "campaign_id", "run", "status", "due_at"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace: str
    campaign_id: str
    run: int
    profile_key: str
    variant: str
    # Empty for a member sent nothing.
    send_key: str
    # pending, queued, sent, failed, or skipped.
    status: str
    reason: str
    # A pending member's moment (none: it waits for the winner of an A/B test).
    due_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The IANA zone of the member's calendar when the broadcast listed it.
    zone: str = "UTC"
    opened: bool = False
    clicked: bool = False
    # When channels reported it sent; whether it did the campaign's goal within its window.
    sent_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    converted: bool = False
