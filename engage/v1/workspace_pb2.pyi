import datetime

from engage.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkspaceSettings(_message.Message):
    __slots__ = ("name", "time_zone", "update_time", "frequency_caps", "global_control_percent", "quiet_hours")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_CAPS_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_CONTROL_PERCENT_FIELD_NUMBER: _ClassVar[int]
    QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    name: str
    time_zone: str
    update_time: _timestamp_pb2.Timestamp
    frequency_caps: _containers.RepeatedCompositeFieldContainer[FrequencyCap]
    global_control_percent: float
    quiet_hours: QuietHours
    def __init__(self, name: _Optional[str] = ..., time_zone: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frequency_caps: _Optional[_Iterable[_Union[FrequencyCap, _Mapping]]] = ..., global_control_percent: _Optional[float] = ..., quiet_hours: _Optional[_Union[QuietHours, _Mapping]] = ...) -> None: ...

class QuietHours(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _common_pb2.LocalTime
    end: _common_pb2.LocalTime
    def __init__(self, start: _Optional[_Union[_common_pb2.LocalTime, _Mapping]] = ..., end: _Optional[_Union[_common_pb2.LocalTime, _Mapping]] = ...) -> None: ...

class FrequencyCap(_message.Message):
    __slots__ = ("channel", "max_sends", "window")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MAX_SENDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    channel: _common_pb2.Channel
    max_sends: int
    window: _duration_pb2.Duration
    def __init__(self, channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., max_sends: _Optional[int] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetWorkspaceSettingsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateWorkspaceSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: WorkspaceSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[WorkspaceSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...
