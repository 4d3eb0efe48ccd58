from tally.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransferFlow(_message.Message):
    __slots__ = ("to", "amount", "currency", "memo")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    to: _types_pb2.AccountRef
    amount: int
    currency: str
    memo: str
    def __init__(self, to: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ..., **kwargs) -> None: ...

class AdjustmentFlow(_message.Message):
    __slots__ = ("lines", "reason")
    LINES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[_types_pb2.LineInput]
    reason: str
    def __init__(self, lines: _Optional[_Iterable[_Union[_types_pb2.LineInput, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...
