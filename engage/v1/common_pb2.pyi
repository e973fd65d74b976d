import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_EMAIL: _ClassVar[Channel]
    CHANNEL_PUSH: _ClassVar[Channel]
    CHANNEL_SMS: _ClassVar[Channel]
    CHANNEL_LINE: _ClassVar[Channel]
    CHANNEL_DIRECT_MAIL: _ClassVar[Channel]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_TRACK: _ClassVar[EventType]
    EVENT_TYPE_IDENTIFY: _ClassVar[EventType]
    EVENT_TYPE_ALIAS: _ClassVar[EventType]
    EVENT_TYPE_PAGE: _ClassVar[EventType]
    EVENT_TYPE_SCREEN: _ClassVar[EventType]
    EVENT_TYPE_GROUP: _ClassVar[EventType]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_EMAIL: Channel
CHANNEL_PUSH: Channel
CHANNEL_SMS: Channel
CHANNEL_LINE: Channel
CHANNEL_DIRECT_MAIL: Channel
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_TRACK: EventType
EVENT_TYPE_IDENTIFY: EventType
EVENT_TYPE_ALIAS: EventType
EVENT_TYPE_PAGE: EventType
EVENT_TYPE_SCREEN: EventType
EVENT_TYPE_GROUP: EventType

class Event(_message.Message):
    __slots__ = ("message_id", "type", "event", "user_id", "anonymous_id", "previous_id", "properties", "traits", "context", "timestamp", "received_at")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ID_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    type: EventType
    event: str
    user_id: str
    anonymous_id: str
    previous_id: str
    properties: _struct_pb2.Struct
    traits: _struct_pb2.Struct
    context: _struct_pb2.Struct
    timestamp: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, message_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., event: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., previous_id: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventError(_message.Message):
    __slots__ = ("index", "field", "description")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    index: int
    field: str
    description: str
    def __init__(self, index: _Optional[int] = ..., field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class LocalTime(_message.Message):
    __slots__ = ("hours", "minutes")
    HOURS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    hours: int
    minutes: int
    def __init__(self, hours: _Optional[int] = ..., minutes: _Optional[int] = ...) -> None: ...
