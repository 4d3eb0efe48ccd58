import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tally.v1 import flows_pb2 as _flows_pb2
from tally.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PostRequest(_message.Message):
    __slots__ = ("request_id", "memo", "metadata", "effective_time", "transfer", "adjustment", "funding", "usage", "acquisition", "refund", "settlement", "payout", "guarantee", "sub_account_transfer", "fx")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ACQUISITION_FIELD_NUMBER: _ClassVar[int]
    REFUND_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    SUB_ACCOUNT_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    FX_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    memo: str
    metadata: _containers.ScalarMap[str, str]
    effective_time: _timestamp_pb2.Timestamp
    transfer: _flows_pb2.TransferFlow
    adjustment: _flows_pb2.AdjustmentFlow
    funding: _flows_pb2.FundingFlow
    usage: _flows_pb2.UsageFlow
    acquisition: _flows_pb2.AcquisitionFlow
    refund: _flows_pb2.RefundFlow
    settlement: _flows_pb2.SettlementFlow
    payout: _flows_pb2.PayoutFlow
    guarantee: _flows_pb2.GuaranteeFlow
    sub_account_transfer: _flows_pb2.SubAccountTransferFlow
    fx: _flows_pb2.FxFlow
    def __init__(self, request_id: _Optional[str] = ..., memo: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transfer: _Optional[_Union[_flows_pb2.TransferFlow, _Mapping]] = ..., adjustment: _Optional[_Union[_flows_pb2.AdjustmentFlow, _Mapping]] = ..., funding: _Optional[_Union[_flows_pb2.FundingFlow, _Mapping]] = ..., usage: _Optional[_Union[_flows_pb2.UsageFlow, _Mapping]] = ..., acquisition: _Optional[_Union[_flows_pb2.AcquisitionFlow, _Mapping]] = ..., refund: _Optional[_Union[_flows_pb2.RefundFlow, _Mapping]] = ..., settlement: _Optional[_Union[_flows_pb2.SettlementFlow, _Mapping]] = ..., payout: _Optional[_Union[_flows_pb2.PayoutFlow, _Mapping]] = ..., guarantee: _Optional[_Union[_flows_pb2.GuaranteeFlow, _Mapping]] = ..., sub_account_transfer: _Optional[_Union[_flows_pb2.SubAccountTransferFlow, _Mapping]] = ..., fx: _Optional[_Union[_flows_pb2.FxFlow, _Mapping]] = ...) -> None: ...

class PostResponse(_message.Message):
    __slots__ = ("vouchers", "replayed")
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    vouchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Voucher]
    replayed: bool
    def __init__(self, vouchers: _Optional[_Iterable[_Union[_types_pb2.Voucher, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class PostBatchRequest(_message.Message):
    __slots__ = ("requests", "atomic")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PostRequest]
    atomic: bool
    def __init__(self, requests: _Optional[_Iterable[_Union[PostRequest, _Mapping]]] = ..., atomic: _Optional[bool] = ...) -> None: ...

class PostError(_message.Message):
    __slots__ = ("code", "reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PostBatchResult(_message.Message):
    __slots__ = ("posted", "error")
    POSTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    posted: PostResponse
    error: PostError
    def __init__(self, posted: _Optional[_Union[PostResponse, _Mapping]] = ..., error: _Optional[_Union[PostError, _Mapping]] = ...) -> None: ...

class PostBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PostBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PostBatchResult, _Mapping]]] = ...) -> None: ...

class CreateHoldRequest(_message.Message):
    __slots__ = ("request_id", "account", "amount", "currency", "expire_time", "memo", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account: _types_pb2.AccountRef
    amount: int
    currency: str
    expire_time: _timestamp_pb2.Timestamp
    memo: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memo: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateHoldResponse(_message.Message):
    __slots__ = ("hold", "replayed")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    hold: _types_pb2.Hold
    replayed: bool
    def __init__(self, hold: _Optional[_Union[_types_pb2.Hold, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class CaptureHoldRequest(_message.Message):
    __slots__ = ("request_id", "hold_id", "amount", "destination", "final", "memo")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    hold_id: str
    amount: int
    destination: _types_pb2.AccountRef
    final: bool
    memo: str
    def __init__(self, request_id: _Optional[str] = ..., hold_id: _Optional[str] = ..., amount: _Optional[int] = ..., destination: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., final: _Optional[bool] = ..., memo: _Optional[str] = ...) -> None: ...

class CaptureHoldResponse(_message.Message):
    __slots__ = ("hold", "voucher", "replayed")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    hold: _types_pb2.Hold
    voucher: _types_pb2.Voucher
    replayed: bool
    def __init__(self, hold: _Optional[_Union[_types_pb2.Hold, _Mapping]] = ..., voucher: _Optional[_Union[_types_pb2.Voucher, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ReleaseHoldRequest(_message.Message):
    __slots__ = ("request_id", "hold_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    hold_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., hold_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseHoldResponse(_message.Message):
    __slots__ = ("hold", "replayed")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    hold: _types_pb2.Hold
    replayed: bool
    def __init__(self, hold: _Optional[_Union[_types_pb2.Hold, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetHoldRequest(_message.Message):
    __slots__ = ("hold_id",)
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    def __init__(self, hold_id: _Optional[str] = ...) -> None: ...

class GetHoldResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: _types_pb2.Hold
    def __init__(self, hold: _Optional[_Union[_types_pb2.Hold, _Mapping]] = ...) -> None: ...

class ListHoldsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "account_id", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    account_id: str
    status: _types_pb2.HoldStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., account_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.HoldStatus, str]] = ...) -> None: ...

class ListHoldsResponse(_message.Message):
    __slots__ = ("holds", "next_page_token")
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    holds: _containers.RepeatedCompositeFieldContainer[_types_pb2.Hold]
    next_page_token: str
    def __init__(self, holds: _Optional[_Iterable[_Union[_types_pb2.Hold, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamBalanceChangesRequest(_message.Message):
    __slots__ = ("account_ids", "from_sequence")
    ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    account_ids: _containers.RepeatedScalarFieldContainer[str]
    from_sequence: int
    def __init__(self, account_ids: _Optional[_Iterable[str]] = ..., from_sequence: _Optional[int] = ...) -> None: ...

class StreamBalanceChangesResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: _types_pb2.BalanceChange
    def __init__(self, change: _Optional[_Union[_types_pb2.BalanceChange, _Mapping]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("from_sequence", "types")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, from_sequence: _Optional[int] = ..., types: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _types_pb2.Event
    def __init__(self, event: _Optional[_Union[_types_pb2.Event, _Mapping]] = ...) -> None: ...

class ReverseVoucherRequest(_message.Message):
    __slots__ = ("request_id", "voucher_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    voucher_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., voucher_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReverseVoucherResponse(_message.Message):
    __slots__ = ("voucher", "replayed")
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    voucher: _types_pb2.Voucher
    replayed: bool
    def __init__(self, voucher: _Optional[_Union[_types_pb2.Voucher, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetVoucherRequest(_message.Message):
    __slots__ = ("voucher_id",)
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    voucher_id: str
    def __init__(self, voucher_id: _Optional[str] = ...) -> None: ...

class GetVoucherResponse(_message.Message):
    __slots__ = ("voucher",)
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    voucher: _types_pb2.Voucher
    def __init__(self, voucher: _Optional[_Union[_types_pb2.Voucher, _Mapping]] = ...) -> None: ...

class ListVouchersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "account_id", "flow_type")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    account_id: str
    flow_type: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., account_id: _Optional[str] = ..., flow_type: _Optional[str] = ...) -> None: ...

class ListVouchersResponse(_message.Message):
    __slots__ = ("vouchers", "next_page_token")
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    vouchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Voucher]
    next_page_token: str
    def __init__(self, vouchers: _Optional[_Iterable[_Union[_types_pb2.Voucher, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
