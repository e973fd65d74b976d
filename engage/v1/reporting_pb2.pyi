from engage.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryCounts(_message.Message):
    __slots__ = ("sent", "delivered", "bounced", "failed", "opened", "clicked", "unsubscribed", "complained", "skipped")
    SENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    BOUNCED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    COMPLAINED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    sent: int
    delivered: int
    bounced: int
    failed: int
    opened: int
    clicked: int
    unsubscribed: int
    complained: int
    skipped: int
    def __init__(self, sent: _Optional[int] = ..., delivered: _Optional[int] = ..., bounced: _Optional[int] = ..., failed: _Optional[int] = ..., opened: _Optional[int] = ..., clicked: _Optional[int] = ..., unsubscribed: _Optional[int] = ..., complained: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class ChannelDeliveryCounts(_message.Message):
    __slots__ = ("channel", "counts")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    channel: _common_pb2.Channel
    counts: DeliveryCounts
    def __init__(self, channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., counts: _Optional[_Union[DeliveryCounts, _Mapping]] = ...) -> None: ...

class JourneyReport(_message.Message):
    __slots__ = ("name", "enrolled_count", "exited_count", "converted_count", "deliveries", "channel_deliveries")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXITED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    enrolled_count: int
    exited_count: int
    converted_count: int
    deliveries: DeliveryCounts
    channel_deliveries: _containers.RepeatedCompositeFieldContainer[ChannelDeliveryCounts]
    def __init__(self, name: _Optional[str] = ..., enrolled_count: _Optional[int] = ..., exited_count: _Optional[int] = ..., converted_count: _Optional[int] = ..., deliveries: _Optional[_Union[DeliveryCounts, _Mapping]] = ..., channel_deliveries: _Optional[_Iterable[_Union[ChannelDeliveryCounts, _Mapping]]] = ...) -> None: ...

class GetJourneyReportRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CampaignReport(_message.Message):
    __slots__ = ("name", "deliveries", "channel_deliveries")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    deliveries: DeliveryCounts
    channel_deliveries: _containers.RepeatedCompositeFieldContainer[ChannelDeliveryCounts]
    def __init__(self, name: _Optional[str] = ..., deliveries: _Optional[_Union[DeliveryCounts, _Mapping]] = ..., channel_deliveries: _Optional[_Iterable[_Union[ChannelDeliveryCounts, _Mapping]]] = ...) -> None: ...

class GetCampaignReportRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
