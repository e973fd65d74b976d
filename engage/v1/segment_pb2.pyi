import datetime

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

class Operator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATOR_UNSPECIFIED: _ClassVar[Operator]
    OPERATOR_EQUALS: _ClassVar[Operator]
    OPERATOR_NOT_EQUALS: _ClassVar[Operator]
    OPERATOR_IN: _ClassVar[Operator]
    OPERATOR_CONTAINS: _ClassVar[Operator]
    OPERATOR_EXISTS: _ClassVar[Operator]
    OPERATOR_GREATER_THAN: _ClassVar[Operator]
    OPERATOR_GREATER_OR_EQUAL: _ClassVar[Operator]
    OPERATOR_LESS_THAN: _ClassVar[Operator]
    OPERATOR_LESS_OR_EQUAL: _ClassVar[Operator]
    OPERATOR_BEFORE: _ClassVar[Operator]
    OPERATOR_AFTER: _ClassVar[Operator]
    OPERATOR_BETWEEN: _ClassVar[Operator]
OPERATOR_UNSPECIFIED: Operator
OPERATOR_EQUALS: Operator
OPERATOR_NOT_EQUALS: Operator
OPERATOR_IN: Operator
OPERATOR_CONTAINS: Operator
OPERATOR_EXISTS: Operator
OPERATOR_GREATER_THAN: Operator
OPERATOR_GREATER_OR_EQUAL: Operator
OPERATOR_LESS_THAN: Operator
OPERATOR_LESS_OR_EQUAL: Operator
OPERATOR_BEFORE: Operator
OPERATOR_AFTER: Operator
OPERATOR_BETWEEN: Operator

class Segment(_message.Message):
    __slots__ = ("name", "display_name", "description", "rule", "version", "member_count", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    rule: Rule
    version: int
    member_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., rule: _Optional[_Union[Rule, _Mapping]] = ..., version: _Optional[int] = ..., member_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("all", "any", "trait", "event", "in_segment", "sample")
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NOT_FIELD_NUMBER: _ClassVar[int]
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    IN_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    all: RuleGroup
    any: RuleGroup
    trait: TraitCondition
    event: EventCondition
    in_segment: SegmentReference
    sample: Sample
    def __init__(self, all: _Optional[_Union[RuleGroup, _Mapping]] = ..., any: _Optional[_Union[RuleGroup, _Mapping]] = ..., trait: _Optional[_Union[TraitCondition, _Mapping]] = ..., event: _Optional[_Union[EventCondition, _Mapping]] = ..., in_segment: _Optional[_Union[SegmentReference, _Mapping]] = ..., sample: _Optional[_Union[Sample, _Mapping]] = ..., **kwargs) -> None: ...

class RuleGroup(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ...) -> None: ...

class RelativeTime(_message.Message):
    __slots__ = ("trait", "offset", "days")
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    trait: str
    offset: _duration_pb2.Duration
    days: int
    def __init__(self, trait: _Optional[str] = ..., offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., days: _Optional[int] = ...) -> None: ...

class TraitCondition(_message.Message):
    __slots__ = ("trait", "operator", "value", "relative_to")
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_TO_FIELD_NUMBER: _ClassVar[int]
    trait: str
    operator: Operator
    value: _struct_pb2.Value
    relative_to: RelativeTime
    def __init__(self, trait: _Optional[str] = ..., operator: _Optional[_Union[Operator, str]] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., relative_to: _Optional[_Union[RelativeTime, _Mapping]] = ...) -> None: ...

class PropertyCondition(_message.Message):
    __slots__ = ("property", "operator", "value")
    PROPERTY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    property: str
    operator: Operator
    value: _struct_pb2.Value
    def __init__(self, property: _Optional[str] = ..., operator: _Optional[_Union[Operator, str]] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class EventCondition(_message.Message):
    __slots__ = ("event", "where", "at_least", "at_most", "within", "since")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    AT_MOST_FIELD_NUMBER: _ClassVar[int]
    WITHIN_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    event: str
    where: _containers.RepeatedCompositeFieldContainer[PropertyCondition]
    at_least: int
    at_most: int
    within: _duration_pb2.Duration
    since: RelativeTime
    def __init__(self, event: _Optional[str] = ..., where: _Optional[_Iterable[_Union[PropertyCondition, _Mapping]]] = ..., at_least: _Optional[int] = ..., at_most: _Optional[int] = ..., within: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., since: _Optional[_Union[RelativeTime, _Mapping]] = ...) -> None: ...

class SegmentReference(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: str
    def __init__(self, segment: _Optional[str] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("percent", "seed")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    percent: float
    seed: str
    def __init__(self, percent: _Optional[float] = ..., seed: _Optional[str] = ...) -> None: ...

class CreateSegmentRequest(_message.Message):
    __slots__ = ("parent", "segment_id", "segment", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    segment_id: str
    segment: Segment
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., segment_id: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments", "next_page_token")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    next_page_token: str
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSegmentRequest(_message.Message):
    __slots__ = ("segment", "update_mask", "validate_only")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    update_mask: _field_mask_pb2.FieldMask
    validate_only: bool
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PreviewSegmentRequest(_message.Message):
    __slots__ = ("parent", "rule", "sample_size")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    rule: Rule
    sample_size: int
    def __init__(self, parent: _Optional[str] = ..., rule: _Optional[_Union[Rule, _Mapping]] = ..., sample_size: _Optional[int] = ...) -> None: ...

class PreviewSegmentResponse(_message.Message):
    __slots__ = ("member_count", "sample_profiles")
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_PROFILES_FIELD_NUMBER: _ClassVar[int]
    member_count: int
    sample_profiles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_count: _Optional[int] = ..., sample_profiles: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSegmentMembersRequest(_message.Message):
    __slots__ = ("segment", "start_after")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    segment: str
    start_after: str
    def __init__(self, segment: _Optional[str] = ..., start_after: _Optional[str] = ...) -> None: ...

class ListSegmentMembersResponse(_message.Message):
    __slots__ = ("profiles", "members")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedScalarFieldContainer[str]
    members: _containers.RepeatedCompositeFieldContainer[SegmentMember]
    def __init__(self, profiles: _Optional[_Iterable[str]] = ..., members: _Optional[_Iterable[_Union[SegmentMember, _Mapping]]] = ...) -> None: ...

class SegmentMember(_message.Message):
    __slots__ = ("profile", "user_id", "calendar_time_zone")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    profile: str
    user_id: str
    calendar_time_zone: str
    def __init__(self, profile: _Optional[str] = ..., user_id: _Optional[str] = ..., calendar_time_zone: _Optional[str] = ...) -> None: ...

class CheckMembershipRequest(_message.Message):
    __slots__ = ("segment", "profile")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    profile: str
    def __init__(self, segment: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...

class CheckMembershipResponse(_message.Message):
    __slots__ = ("member", "entered_time")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ENTERED_TIME_FIELD_NUMBER: _ClassVar[int]
    member: bool
    entered_time: _timestamp_pb2.Timestamp
    def __init__(self, member: _Optional[bool] = ..., entered_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
