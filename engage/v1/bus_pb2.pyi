import datetime

from engage.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventBatch(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "events")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ...) -> None: ...

class ProfileChanges(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "changes")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    changes: _containers.RepeatedCompositeFieldContainer[ProfileChanged]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[ProfileChanged, _Mapping]]] = ...) -> None: ...

class ProfileChanged(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "kind", "profile", "user_id", "changed_traits", "merged_profile", "anonymous_ids")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ProfileChanged.Kind]
        KIND_CREATED: _ClassVar[ProfileChanged.Kind]
        KIND_UPDATED: _ClassVar[ProfileChanged.Kind]
        KIND_MERGED: _ClassVar[ProfileChanged.Kind]
        KIND_ERASED: _ClassVar[ProfileChanged.Kind]
    KIND_UNSPECIFIED: ProfileChanged.Kind
    KIND_CREATED: ProfileChanged.Kind
    KIND_UPDATED: ProfileChanged.Kind
    KIND_MERGED: ProfileChanged.Kind
    KIND_ERASED: ProfileChanged.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_TRAITS_FIELD_NUMBER: _ClassVar[int]
    MERGED_PROFILE_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    kind: ProfileChanged.Kind
    profile: str
    user_id: str
    changed_traits: _struct_pb2.Struct
    merged_profile: str
    anonymous_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., kind: _Optional[_Union[ProfileChanged.Kind, str]] = ..., profile: _Optional[str] = ..., user_id: _Optional[str] = ..., changed_traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., merged_profile: _Optional[str] = ..., anonymous_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MembershipChanges(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "changes")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    changes: _containers.RepeatedCompositeFieldContainer[MembershipChanged]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[MembershipChanged, _Mapping]]] = ...) -> None: ...

class MembershipChanged(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "segment", "segment_version", "profile", "user_id", "change")
    class Change(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANGE_UNSPECIFIED: _ClassVar[MembershipChanged.Change]
        CHANGE_ENTERED: _ClassVar[MembershipChanged.Change]
        CHANGE_EXITED: _ClassVar[MembershipChanged.Change]
    CHANGE_UNSPECIFIED: MembershipChanged.Change
    CHANGE_ENTERED: MembershipChanged.Change
    CHANGE_EXITED: MembershipChanged.Change
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    segment: str
    segment_version: int
    profile: str
    user_id: str
    change: MembershipChanged.Change
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., segment: _Optional[str] = ..., segment_version: _Optional[int] = ..., profile: _Optional[str] = ..., user_id: _Optional[str] = ..., change: _Optional[_Union[MembershipChanged.Change, str]] = ...) -> None: ...

class SendRequests(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "sends")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    SENDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    sends: _containers.RepeatedCompositeFieldContainer[SendRequested]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., sends: _Optional[_Iterable[_Union[SendRequested, _Mapping]]] = ...) -> None: ...

class SendRequested(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "channel", "template", "user_id", "anonymous_id", "journey", "journey_version", "enrollment_id", "step_id", "campaign", "transactional", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONAL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    channel: _common_pb2.Channel
    template: str
    user_id: str
    anonymous_id: str
    journey: str
    journey_version: int
    enrollment_id: str
    step_id: str
    campaign: str
    transactional: bool
    data: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., template: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., journey: _Optional[str] = ..., journey_version: _Optional[int] = ..., enrollment_id: _Optional[str] = ..., step_id: _Optional[str] = ..., campaign: _Optional[str] = ..., transactional: _Optional[bool] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeliveryEvent(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "kind", "channel", "message", "idempotency_key", "user_id", "journey", "journey_version", "step_id", "campaign", "reason")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[DeliveryEvent.Kind]
        KIND_SENT: _ClassVar[DeliveryEvent.Kind]
        KIND_DELIVERED: _ClassVar[DeliveryEvent.Kind]
        KIND_BOUNCED: _ClassVar[DeliveryEvent.Kind]
        KIND_FAILED: _ClassVar[DeliveryEvent.Kind]
        KIND_OPENED: _ClassVar[DeliveryEvent.Kind]
        KIND_CLICKED: _ClassVar[DeliveryEvent.Kind]
        KIND_UNSUBSCRIBED: _ClassVar[DeliveryEvent.Kind]
        KIND_COMPLAINED: _ClassVar[DeliveryEvent.Kind]
        KIND_SKIPPED: _ClassVar[DeliveryEvent.Kind]
    KIND_UNSPECIFIED: DeliveryEvent.Kind
    KIND_SENT: DeliveryEvent.Kind
    KIND_DELIVERED: DeliveryEvent.Kind
    KIND_BOUNCED: DeliveryEvent.Kind
    KIND_FAILED: DeliveryEvent.Kind
    KIND_OPENED: DeliveryEvent.Kind
    KIND_CLICKED: DeliveryEvent.Kind
    KIND_UNSUBSCRIBED: DeliveryEvent.Kind
    KIND_COMPLAINED: DeliveryEvent.Kind
    KIND_SKIPPED: DeliveryEvent.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    kind: DeliveryEvent.Kind
    channel: _common_pb2.Channel
    message: str
    idempotency_key: str
    user_id: str
    journey: str
    journey_version: int
    step_id: str
    campaign: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., kind: _Optional[_Union[DeliveryEvent.Kind, str]] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., user_id: _Optional[str] = ..., journey: _Optional[str] = ..., journey_version: _Optional[int] = ..., step_id: _Optional[str] = ..., campaign: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class JourneyEvents(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "events")
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    events: _containers.RepeatedCompositeFieldContainer[JourneyEvent]
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., events: _Optional[_Iterable[_Union[JourneyEvent, _Mapping]]] = ...) -> None: ...

class JourneyEvent(_message.Message):
    __slots__ = ("id", "occurred_at", "workspace", "kind", "journey", "journey_version", "enrollment_id", "user_id", "step_id", "reason", "attributed_send", "time_to_convert")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[JourneyEvent.Kind]
        KIND_ENROLLED: _ClassVar[JourneyEvent.Kind]
        KIND_STEP: _ClassVar[JourneyEvent.Kind]
        KIND_EXITED: _ClassVar[JourneyEvent.Kind]
        KIND_CONVERTED: _ClassVar[JourneyEvent.Kind]
        KIND_SEND_SKIPPED: _ClassVar[JourneyEvent.Kind]
        KIND_SEND_DEFERRED: _ClassVar[JourneyEvent.Kind]
    KIND_UNSPECIFIED: JourneyEvent.Kind
    KIND_ENROLLED: JourneyEvent.Kind
    KIND_STEP: JourneyEvent.Kind
    KIND_EXITED: JourneyEvent.Kind
    KIND_CONVERTED: JourneyEvent.Kind
    KIND_SEND_SKIPPED: JourneyEvent.Kind
    KIND_SEND_DEFERRED: JourneyEvent.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_SEND_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_CONVERT_FIELD_NUMBER: _ClassVar[int]
    id: str
    occurred_at: _timestamp_pb2.Timestamp
    workspace: str
    kind: JourneyEvent.Kind
    journey: str
    journey_version: int
    enrollment_id: str
    user_id: str
    step_id: str
    reason: str
    attributed_send: str
    time_to_convert: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workspace: _Optional[str] = ..., kind: _Optional[_Union[JourneyEvent.Kind, str]] = ..., journey: _Optional[str] = ..., journey_version: _Optional[int] = ..., enrollment_id: _Optional[str] = ..., user_id: _Optional[str] = ..., step_id: _Optional[str] = ..., reason: _Optional[str] = ..., attributed_send: _Optional[str] = ..., time_to_convert: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
