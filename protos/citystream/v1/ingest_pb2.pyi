from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class IngestBatch(_message.Message):
    __slots__ = ("detections", "readings", "device", "batch_sequence")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    detections: bytes
    readings: bytes
    device: str
    batch_sequence: int
    def __init__(self, detections: _Optional[bytes] = ..., readings: _Optional[bytes] = ..., device: _Optional[str] = ..., batch_sequence: _Optional[int] = ...) -> None: ...

class IngestSummary(_message.Message):
    __slots__ = ("batches", "detections", "readings", "refused_batches", "errors")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_BATCHES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    batches: int
    detections: int
    readings: int
    refused_batches: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batches: _Optional[int] = ..., detections: _Optional[int] = ..., readings: _Optional[int] = ..., refused_batches: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...
