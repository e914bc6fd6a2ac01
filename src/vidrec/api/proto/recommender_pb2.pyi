# Generated from proto/recommender.proto by vidrec.api.proto.generate; do not edit.
# ruff: noqa
# fmt: off
# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecommendRequest(_message.Message):
    __slots__ = ("surface", "user_id", "video_id", "region", "category", "count", "session_id")
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    surface: str
    user_id: int
    video_id: int
    region: str
    category: int
    count: int
    session_id: str
    def __init__(self, surface: _Optional[str] = ..., user_id: _Optional[int] = ..., video_id: _Optional[int] = ..., region: _Optional[str] = ..., category: _Optional[int] = ..., count: _Optional[int] = ..., session_id: _Optional[str] = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("video_id", "score", "scores", "source", "explanation")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    video_id: int
    score: float
    scores: _containers.ScalarMap[str, float]
    source: str
    explanation: str
    def __init__(self, video_id: _Optional[int] = ..., score: _Optional[float] = ..., scores: _Optional[_Mapping[str, float]] = ..., source: _Optional[str] = ..., explanation: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("request_id", "surface", "variant", "items", "degraded", "degraded_reasons")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    surface: str
    variant: str
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    degraded: bool
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., surface: _Optional[str] = ..., variant: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., degraded: _Optional[bool] = ..., degraded_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class EngagementEvent(_message.Message):
    __slots__ = ("event_id", "user_id", "video_id", "type", "watch_ms", "video_duration_ms", "position", "surface", "request_id", "ts", "device", "region")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WATCH_MS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: int
    video_id: int
    type: str
    watch_ms: int
    video_duration_ms: int
    position: int
    surface: str
    request_id: str
    ts: int
    device: str
    region: str
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[int] = ..., video_id: _Optional[int] = ..., type: _Optional[str] = ..., watch_ms: _Optional[int] = ..., video_duration_ms: _Optional[int] = ..., position: _Optional[int] = ..., surface: _Optional[str] = ..., request_id: _Optional[str] = ..., ts: _Optional[int] = ..., device: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EngagementEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[EngagementEvent, _Mapping]]] = ...) -> None: ...

class EventRejection(_message.Message):
    __slots__ = ("index", "field", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    field: str
    detail: str
    def __init__(self, index: _Optional[int] = ..., field: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class LogEventsResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "rejections")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[EventRejection]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[EventRejection, _Mapping]]] = ...) -> None: ...
