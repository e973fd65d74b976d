import datetime

from engage.v1 import common_pb2 as _common_pb2
from engage.v1 import segment_pb2 as _segment_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Journey(_message.Message):
    __slots__ = ("name", "display_name", "state", "version", "trigger", "steps", "create_time", "update_time", "goal", "exit_events", "reentry", "holdout_percent", "counts", "priority")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Journey.State]
        STATE_DRAFT: _ClassVar[Journey.State]
        STATE_ACTIVE: _ClassVar[Journey.State]
        STATE_PAUSED: _ClassVar[Journey.State]
        STATE_ARCHIVED: _ClassVar[Journey.State]
    STATE_UNSPECIFIED: Journey.State
    STATE_DRAFT: Journey.State
    STATE_ACTIVE: Journey.State
    STATE_PAUSED: Journey.State
    STATE_ARCHIVED: Journey.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    EXIT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    REENTRY_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    state: Journey.State
    version: int
    trigger: JourneyTrigger
    steps: _containers.RepeatedCompositeFieldContainer[JourneyStep]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    goal: JourneyGoal
    exit_events: _containers.RepeatedScalarFieldContainer[str]
    reentry: ReentryPolicy
    holdout_percent: float
    counts: JourneyCounts
    priority: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[Journey.State, str]] = ..., version: _Optional[int] = ..., trigger: _Optional[_Union[JourneyTrigger, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[JourneyStep, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., goal: _Optional[_Union[JourneyGoal, _Mapping]] = ..., exit_events: _Optional[_Iterable[str]] = ..., reentry: _Optional[_Union[ReentryPolicy, _Mapping]] = ..., holdout_percent: _Optional[float] = ..., counts: _Optional[_Union[JourneyCounts, _Mapping]] = ..., priority: _Optional[int] = ...) -> None: ...

class JourneyCounts(_message.Message):
    __slots__ = ("enrolled", "active", "completed", "exited", "converted", "active_at_step")
    class ActiveAtStepEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_AT_STEP_FIELD_NUMBER: _ClassVar[int]
    enrolled: int
    active: int
    completed: int
    exited: int
    converted: int
    active_at_step: _containers.ScalarMap[str, int]
    def __init__(self, enrolled: _Optional[int] = ..., active: _Optional[int] = ..., completed: _Optional[int] = ..., exited: _Optional[int] = ..., converted: _Optional[int] = ..., active_at_step: _Optional[_Mapping[str, int]] = ...) -> None: ...

class JourneyGoal(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: str
    def __init__(self, event: _Optional[str] = ...) -> None: ...

class ReentryPolicy(_message.Message):
    __slots__ = ("mode", "cooldown")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[ReentryPolicy.Mode]
        MODE_ONCE: _ClassVar[ReentryPolicy.Mode]
        MODE_ONE_AT_A_TIME: _ClassVar[ReentryPolicy.Mode]
        MODE_AFTER_COOLDOWN: _ClassVar[ReentryPolicy.Mode]
    MODE_UNSPECIFIED: ReentryPolicy.Mode
    MODE_ONCE: ReentryPolicy.Mode
    MODE_ONE_AT_A_TIME: ReentryPolicy.Mode
    MODE_AFTER_COOLDOWN: ReentryPolicy.Mode
    MODE_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    mode: ReentryPolicy.Mode
    cooldown: _duration_pb2.Duration
    def __init__(self, mode: _Optional[_Union[ReentryPolicy.Mode, str]] = ..., cooldown: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class JourneyTrigger(_message.Message):
    __slots__ = ("event", "segment")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    event: EventTrigger
    segment: SegmentTrigger
    def __init__(self, event: _Optional[_Union[EventTrigger, _Mapping]] = ..., segment: _Optional[_Union[SegmentTrigger, _Mapping]] = ...) -> None: ...

class SegmentTrigger(_message.Message):
    __slots__ = ("segment", "change")
    class Change(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANGE_UNSPECIFIED: _ClassVar[SegmentTrigger.Change]
        CHANGE_ENTERED: _ClassVar[SegmentTrigger.Change]
        CHANGE_EXITED: _ClassVar[SegmentTrigger.Change]
    CHANGE_UNSPECIFIED: SegmentTrigger.Change
    CHANGE_ENTERED: SegmentTrigger.Change
    CHANGE_EXITED: SegmentTrigger.Change
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    change: SegmentTrigger.Change
    def __init__(self, segment: _Optional[str] = ..., change: _Optional[_Union[SegmentTrigger.Change, str]] = ...) -> None: ...

class EventTrigger(_message.Message):
    __slots__ = ("event", "where")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    event: str
    where: _containers.RepeatedCompositeFieldContainer[_segment_pb2.PropertyCondition]
    def __init__(self, event: _Optional[str] = ..., where: _Optional[_Iterable[_Union[_segment_pb2.PropertyCondition, _Mapping]]] = ...) -> None: ...

class JourneyStep(_message.Message):
    __slots__ = ("id", "send", "exit", "wait", "split", "branch", "update_trait", "next")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TRAIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    send: SendStep
    exit: ExitStep
    wait: WaitStep
    split: SplitStep
    branch: BranchStep
    update_trait: UpdateTraitStep
    next: str
    def __init__(self, id: _Optional[str] = ..., send: _Optional[_Union[SendStep, _Mapping]] = ..., exit: _Optional[_Union[ExitStep, _Mapping]] = ..., wait: _Optional[_Union[WaitStep, _Mapping]] = ..., split: _Optional[_Union[SplitStep, _Mapping]] = ..., branch: _Optional[_Union[BranchStep, _Mapping]] = ..., update_trait: _Optional[_Union[UpdateTraitStep, _Mapping]] = ..., next: _Optional[str] = ...) -> None: ...

class UpdateTraitStep(_message.Message):
    __slots__ = ("trait", "value")
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    trait: str
    value: _struct_pb2.Value
    def __init__(self, trait: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class BranchStep(_message.Message):
    __slots__ = ("paths", "otherwise")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    OTHERWISE_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedCompositeFieldContainer[BranchPath]
    otherwise: str
    def __init__(self, paths: _Optional[_Iterable[_Union[BranchPath, _Mapping]]] = ..., otherwise: _Optional[str] = ...) -> None: ...

class BranchPath(_message.Message):
    __slots__ = ("segment", "member", "next", "rule")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    member: bool
    next: str
    rule: _segment_pb2.Rule
    def __init__(self, segment: _Optional[str] = ..., member: _Optional[bool] = ..., next: _Optional[str] = ..., rule: _Optional[_Union[_segment_pb2.Rule, _Mapping]] = ...) -> None: ...

class WaitStep(_message.Message):
    __slots__ = ("duration", "event", "time_of_day", "trait_date")
    DURATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TIME_OF_DAY_FIELD_NUMBER: _ClassVar[int]
    TRAIT_DATE_FIELD_NUMBER: _ClassVar[int]
    duration: _duration_pb2.Duration
    event: WaitForEvent
    time_of_day: _common_pb2.LocalTime
    trait_date: TraitDate
    def __init__(self, duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., event: _Optional[_Union[WaitForEvent, _Mapping]] = ..., time_of_day: _Optional[_Union[_common_pb2.LocalTime, _Mapping]] = ..., trait_date: _Optional[_Union[TraitDate, _Mapping]] = ...) -> None: ...

class TraitDate(_message.Message):
    __slots__ = ("trait", "months", "days", "at", "on_missing")
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ON_MISSING_FIELD_NUMBER: _ClassVar[int]
    trait: str
    months: int
    days: int
    at: _common_pb2.LocalTime
    on_missing: str
    def __init__(self, trait: _Optional[str] = ..., months: _Optional[int] = ..., days: _Optional[int] = ..., at: _Optional[_Union[_common_pb2.LocalTime, _Mapping]] = ..., on_missing: _Optional[str] = ...) -> None: ...

class WaitForEvent(_message.Message):
    __slots__ = ("event", "timeout", "on_timeout")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    event: str
    timeout: _duration_pb2.Duration
    on_timeout: str
    def __init__(self, event: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_timeout: _Optional[str] = ...) -> None: ...

class SplitStep(_message.Message):
    __slots__ = ("paths",)
    PATHS_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedCompositeFieldContainer[SplitPath]
    def __init__(self, paths: _Optional[_Iterable[_Union[SplitPath, _Mapping]]] = ...) -> None: ...

class SplitPath(_message.Message):
    __slots__ = ("percent", "next")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    percent: int
    next: str
    def __init__(self, percent: _Optional[int] = ..., next: _Optional[str] = ...) -> None: ...

class SendStep(_message.Message):
    __slots__ = ("channel", "template", "transactional")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONAL_FIELD_NUMBER: _ClassVar[int]
    channel: _common_pb2.Channel
    template: str
    transactional: bool
    def __init__(self, channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., template: _Optional[str] = ..., transactional: _Optional[bool] = ...) -> None: ...

class ExitStep(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateJourneyRequest(_message.Message):
    __slots__ = ("parent", "journey_id", "journey", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    journey_id: str
    journey: Journey
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., journey_id: _Optional[str] = ..., journey: _Optional[_Union[Journey, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetJourneyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJourneysRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJourneysResponse(_message.Message):
    __slots__ = ("journeys", "next_page_token")
    JOURNEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    journeys: _containers.RepeatedCompositeFieldContainer[Journey]
    next_page_token: str
    def __init__(self, journeys: _Optional[_Iterable[_Union[Journey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateJourneyRequest(_message.Message):
    __slots__ = ("journey", "update_mask", "validate_only")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    journey: Journey
    update_mask: _field_mask_pb2.FieldMask
    validate_only: bool
    def __init__(self, journey: _Optional[_Union[Journey, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class DeleteJourneyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SimulateJourneyRequest(_message.Message):
    __slots__ = ("parent", "journey_name", "journey", "segment", "users", "start_time", "horizon", "max_profiles")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_NAME_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    MAX_PROFILES_FIELD_NUMBER: _ClassVar[int]
    parent: str
    journey_name: str
    journey: Journey
    segment: str
    users: UserIds
    start_time: _timestamp_pb2.Timestamp
    horizon: _duration_pb2.Duration
    max_profiles: int
    def __init__(self, parent: _Optional[str] = ..., journey_name: _Optional[str] = ..., journey: _Optional[_Union[Journey, _Mapping]] = ..., segment: _Optional[str] = ..., users: _Optional[_Union[UserIds, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_profiles: _Optional[int] = ...) -> None: ...

class UserIds(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SimulateJourneyResponse(_message.Message):
    __slots__ = ("profiles", "entered_by_step", "sends_by_channel", "skipped_by_reason", "truncated")
    class EnteredByStepEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SendsByChannelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SkippedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    ENTERED_BY_STEP_FIELD_NUMBER: _ClassVar[int]
    SENDS_BY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[SimulatedProfile]
    entered_by_step: _containers.ScalarMap[str, int]
    sends_by_channel: _containers.ScalarMap[str, int]
    skipped_by_reason: _containers.ScalarMap[str, int]
    truncated: bool
    def __init__(self, profiles: _Optional[_Iterable[_Union[SimulatedProfile, _Mapping]]] = ..., entered_by_step: _Optional[_Mapping[str, int]] = ..., sends_by_channel: _Optional[_Mapping[str, int]] = ..., skipped_by_reason: _Optional[_Mapping[str, int]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SimulatedProfile(_message.Message):
    __slots__ = ("user_id", "not_entered", "steps", "outcome")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NOT_ENTERED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    not_entered: str
    steps: _containers.RepeatedCompositeFieldContainer[SimulatedStep]
    outcome: str
    def __init__(self, user_id: _Optional[str] = ..., not_entered: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[SimulatedStep, _Mapping]]] = ..., outcome: _Optional[str] = ...) -> None: ...

class SimulatedStep(_message.Message):
    __slots__ = ("step_id", "kind", "time", "channel", "template", "reason")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SimulatedStep.Kind]
        KIND_ENTERED: _ClassVar[SimulatedStep.Kind]
        KIND_SENT: _ClassVar[SimulatedStep.Kind]
        KIND_SKIPPED: _ClassVar[SimulatedStep.Kind]
        KIND_DEFERRED: _ClassVar[SimulatedStep.Kind]
        KIND_ASSUMED_TIMEOUT: _ClassVar[SimulatedStep.Kind]
    KIND_UNSPECIFIED: SimulatedStep.Kind
    KIND_ENTERED: SimulatedStep.Kind
    KIND_SENT: SimulatedStep.Kind
    KIND_SKIPPED: SimulatedStep.Kind
    KIND_DEFERRED: SimulatedStep.Kind
    KIND_ASSUMED_TIMEOUT: SimulatedStep.Kind
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: SimulatedStep.Kind
    time: _timestamp_pb2.Timestamp
    channel: _common_pb2.Channel
    template: str
    reason: str
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[_Union[SimulatedStep.Kind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., template: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
