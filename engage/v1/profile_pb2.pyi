import datetime

from engage.v1 import common_pb2 as _common_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProfileView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFILE_VIEW_UNSPECIFIED: _ClassVar[ProfileView]
    PROFILE_VIEW_BASIC: _ClassVar[ProfileView]
    PROFILE_VIEW_FULL: _ClassVar[ProfileView]
PROFILE_VIEW_UNSPECIFIED: ProfileView
PROFILE_VIEW_BASIC: ProfileView
PROFILE_VIEW_FULL: ProfileView

class EventStats(_message.Message):
    __slots__ = ("count", "first_time", "last_time", "property_totals")
    class PropertyTotalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_TOTALS_FIELD_NUMBER: _ClassVar[int]
    count: int
    first_time: _timestamp_pb2.Timestamp
    last_time: _timestamp_pb2.Timestamp
    property_totals: _containers.ScalarMap[str, float]
    def __init__(self, count: _Optional[int] = ..., first_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., property_totals: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("name", "user_id", "anonymous_ids", "traits", "first_seen_time", "last_seen_time", "time_zone", "locale", "event_stats", "memberships", "recent_events", "calendar_time_zone")
    class EventStatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EventStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EventStats, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_IDS_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    EVENT_STATS_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    user_id: str
    anonymous_ids: _containers.RepeatedScalarFieldContainer[str]
    traits: _struct_pb2.Struct
    first_seen_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    time_zone: str
    locale: str
    event_stats: _containers.MessageMap[str, EventStats]
    memberships: _containers.RepeatedCompositeFieldContainer[SegmentMembership]
    recent_events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    calendar_time_zone: str
    def __init__(self, name: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_ids: _Optional[_Iterable[str]] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., time_zone: _Optional[str] = ..., locale: _Optional[str] = ..., event_stats: _Optional[_Mapping[str, EventStats]] = ..., memberships: _Optional[_Iterable[_Union[SegmentMembership, _Mapping]]] = ..., recent_events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., calendar_time_zone: _Optional[str] = ...) -> None: ...

class SegmentMembership(_message.Message):
    __slots__ = ("segment", "entered_time")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    ENTERED_TIME_FIELD_NUMBER: _ClassVar[int]
    segment: str
    entered_time: _timestamp_pb2.Timestamp
    def __init__(self, segment: _Optional[str] = ..., entered_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("name", "user_id", "anonymous_id", "email", "view", "applied_event")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    APPLIED_EVENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    user_id: str
    anonymous_id: str
    email: str
    view: ProfileView
    applied_event: str
    def __init__(self, name: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., email: _Optional[str] = ..., view: _Optional[_Union[ProfileView, str]] = ..., applied_event: _Optional[str] = ...) -> None: ...

class ListProfilesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles", "next_page_token")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    next_page_token: str
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteProfileRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportProfileRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportProfileResponse(_message.Message):
    __slots__ = ("profile", "events", "merges")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MERGES_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    merges: _containers.RepeatedCompositeFieldContainer[ProfileMerge]
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., merges: _Optional[_Iterable[_Union[ProfileMerge, _Mapping]]] = ...) -> None: ...

class ProfileMerge(_message.Message):
    __slots__ = ("merged_profile", "into_profile", "reason", "message_id", "merge_time")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[ProfileMerge.Reason]
        REASON_IDENTIFY: _ClassVar[ProfileMerge.Reason]
        REASON_ALIAS: _ClassVar[ProfileMerge.Reason]
    REASON_UNSPECIFIED: ProfileMerge.Reason
    REASON_IDENTIFY: ProfileMerge.Reason
    REASON_ALIAS: ProfileMerge.Reason
    MERGED_PROFILE_FIELD_NUMBER: _ClassVar[int]
    INTO_PROFILE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_TIME_FIELD_NUMBER: _ClassVar[int]
    merged_profile: str
    into_profile: str
    reason: ProfileMerge.Reason
    message_id: str
    merge_time: _timestamp_pb2.Timestamp
    def __init__(self, merged_profile: _Optional[str] = ..., into_profile: _Optional[str] = ..., reason: _Optional[_Union[ProfileMerge.Reason, str]] = ..., message_id: _Optional[str] = ..., merge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
