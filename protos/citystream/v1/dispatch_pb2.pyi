import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Weather(_message.Message):
    __slots__ = ("temperature", "humidity", "wind_speed", "wind_direction", "pm10", "precipitation", "visibility")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    HUMIDITY_FIELD_NUMBER: _ClassVar[int]
    WIND_SPEED_FIELD_NUMBER: _ClassVar[int]
    WIND_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PM10_FIELD_NUMBER: _ClassVar[int]
    PRECIPITATION_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    humidity: float
    wind_speed: float
    wind_direction: float
    pm10: float
    precipitation: float
    visibility: float
    def __init__(self, temperature: _Optional[float] = ..., humidity: _Optional[float] = ..., wind_speed: _Optional[float] = ..., wind_direction: _Optional[float] = ..., pm10: _Optional[float] = ..., precipitation: _Optional[float] = ..., visibility: _Optional[float] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("sequence", "incident_id", "gateway", "district", "kind", "severity", "window_start", "window_end", "cameras", "evidence", "weather", "trigger_time", "ingest_time", "emit_time", "logged_time", "acknowledgement")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    WEATHER_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TIME_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    EMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    LOGGED_TIME_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    incident_id: str
    gateway: str
    district: str
    kind: str
    severity: int
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    cameras: _containers.RepeatedScalarFieldContainer[str]
    evidence: str
    weather: Weather
    trigger_time: _timestamp_pb2.Timestamp
    ingest_time: _timestamp_pb2.Timestamp
    emit_time: _timestamp_pb2.Timestamp
    logged_time: _timestamp_pb2.Timestamp
    acknowledgement: Acknowledgement
    def __init__(self, sequence: _Optional[int] = ..., incident_id: _Optional[str] = ..., gateway: _Optional[str] = ..., district: _Optional[str] = ..., kind: _Optional[str] = ..., severity: _Optional[int] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cameras: _Optional[_Iterable[str]] = ..., evidence: _Optional[str] = ..., weather: _Optional[_Union[Weather, _Mapping]] = ..., trigger_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., emit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., logged_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledgement: _Optional[_Union[Acknowledgement, _Mapping]] = ...) -> None: ...

class Acknowledgement(_message.Message):
    __slots__ = ("console", "officer", "time", "note")
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    OFFICER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    console: str
    officer: str
    time: _timestamp_pb2.Timestamp
    note: str
    def __init__(self, console: _Optional[str] = ..., officer: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("districts", "kinds", "min_severity", "resume_after")
    DISTRICTS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_FIELD_NUMBER: _ClassVar[int]
    districts: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    min_severity: int
    resume_after: int
    def __init__(self, districts: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[str]] = ..., min_severity: _Optional[int] = ..., resume_after: _Optional[int] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("sequence", "officer", "note")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OFFICER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    officer: str
    note: str
    def __init__(self, sequence: _Optional[int] = ..., officer: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("sequence", "incident_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    incident_id: str
    def __init__(self, sequence: _Optional[int] = ..., incident_id: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("districts", "kinds", "min_severity", "after", "limit")
    DISTRICTS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    districts: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    min_severity: int
    after: int
    limit: int
    def __init__(self, districts: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[str]] = ..., min_severity: _Optional[int] = ..., after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents", "last_sequence")
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    last_sequence: int
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ..., last_sequence: _Optional[int] = ...) -> None: ...
