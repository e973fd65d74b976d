import datetime

from engage.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Campaign(_message.Message):
    __slots__ = ("name", "display_name", "state", "segment", "channel", "template", "send_time", "holdout_percent", "create_time", "update_time", "variants", "max_sends_per_minute", "progress", "recurrence", "runs", "winner_rule", "winner", "local_send_time", "goal")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Campaign.State]
        STATE_DRAFT: _ClassVar[Campaign.State]
        STATE_SCHEDULED: _ClassVar[Campaign.State]
        STATE_SENDING: _ClassVar[Campaign.State]
        STATE_COMPLETED: _ClassVar[Campaign.State]
        STATE_CANCELLED: _ClassVar[Campaign.State]
    STATE_UNSPECIFIED: Campaign.State
    STATE_DRAFT: Campaign.State
    STATE_SCHEDULED: Campaign.State
    STATE_SENDING: Campaign.State
    STATE_COMPLETED: Campaign.State
    STATE_CANCELLED: Campaign.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    MAX_SENDS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    WINNER_RULE_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    state: Campaign.State
    segment: str
    channel: _common_pb2.Channel
    template: str
    send_time: _timestamp_pb2.Timestamp
    holdout_percent: float
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    variants: _containers.RepeatedCompositeFieldContainer[CampaignVariant]
    max_sends_per_minute: int
    progress: CampaignProgress
    recurrence: str
    runs: int
    winner_rule: WinnerRule
    winner: str
    local_send_time: _common_pb2.LocalTime
    goal: CampaignGoal
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[Campaign.State, str]] = ..., segment: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., template: _Optional[str] = ..., send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holdout_percent: _Optional[float] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[CampaignVariant, _Mapping]]] = ..., max_sends_per_minute: _Optional[int] = ..., progress: _Optional[_Union[CampaignProgress, _Mapping]] = ..., recurrence: _Optional[str] = ..., runs: _Optional[int] = ..., winner_rule: _Optional[_Union[WinnerRule, _Mapping]] = ..., winner: _Optional[str] = ..., local_send_time: _Optional[_Union[_common_pb2.LocalTime, _Mapping]] = ..., goal: _Optional[_Union[CampaignGoal, _Mapping]] = ...) -> None: ...

class CampaignGoal(_message.Message):
    __slots__ = ("event", "within")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    WITHIN_FIELD_NUMBER: _ClassVar[int]
    event: str
    within: _duration_pb2.Duration
    def __init__(self, event: _Optional[str] = ..., within: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WinnerRule(_message.Message):
    __slots__ = ("metric", "test_percent", "after")
    class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        METRIC_UNSPECIFIED: _ClassVar[WinnerRule.Metric]
        METRIC_CLICK_RATE: _ClassVar[WinnerRule.Metric]
        METRIC_OPEN_RATE: _ClassVar[WinnerRule.Metric]
        METRIC_CONVERSION_RATE: _ClassVar[WinnerRule.Metric]
    METRIC_UNSPECIFIED: WinnerRule.Metric
    METRIC_CLICK_RATE: WinnerRule.Metric
    METRIC_OPEN_RATE: WinnerRule.Metric
    METRIC_CONVERSION_RATE: WinnerRule.Metric
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TEST_PERCENT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    metric: WinnerRule.Metric
    test_percent: int
    after: _duration_pb2.Duration
    def __init__(self, metric: _Optional[_Union[WinnerRule.Metric, str]] = ..., test_percent: _Optional[int] = ..., after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CampaignVariant(_message.Message):
    __slots__ = ("id", "template", "weight")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: str
    template: str
    weight: int
    def __init__(self, id: _Optional[str] = ..., template: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class CampaignProgress(_message.Message):
    __slots__ = ("targeted", "queued", "skipped", "pending", "sent", "failed", "audience_done")
    class SkippedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TARGETED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_DONE_FIELD_NUMBER: _ClassVar[int]
    targeted: int
    queued: int
    skipped: _containers.ScalarMap[str, int]
    pending: int
    sent: int
    failed: int
    audience_done: bool
    def __init__(self, targeted: _Optional[int] = ..., queued: _Optional[int] = ..., skipped: _Optional[_Mapping[str, int]] = ..., pending: _Optional[int] = ..., sent: _Optional[int] = ..., failed: _Optional[int] = ..., audience_done: _Optional[bool] = ...) -> None: ...

class CreateCampaignRequest(_message.Message):
    __slots__ = ("parent", "campaign_id", "campaign", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    campaign_id: str
    campaign: Campaign
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., campaign_id: _Optional[str] = ..., campaign: _Optional[_Union[Campaign, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "next_page_token")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[Campaign]
    next_page_token: str
    def __init__(self, campaigns: _Optional[_Iterable[_Union[Campaign, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCampaignRequest(_message.Message):
    __slots__ = ("campaign", "update_mask", "validate_only")
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    campaign: Campaign
    update_mask: _field_mask_pb2.FieldMask
    validate_only: bool
    def __init__(self, campaign: _Optional[_Union[Campaign, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class DeleteCampaignRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelCampaignRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
