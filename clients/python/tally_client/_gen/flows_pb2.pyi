from tally_client._gen import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CouponIssuer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUPON_ISSUER_UNSPECIFIED: _ClassVar[CouponIssuer]
    COUPON_ISSUER_PLATFORM: _ClassVar[CouponIssuer]
    COUPON_ISSUER_MERCHANT: _ClassVar[CouponIssuer]
    COUPON_ISSUER_SHARED: _ClassVar[CouponIssuer]
    COUPON_ISSUER_PURCHASED: _ClassVar[CouponIssuer]

class SettlementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTLEMENT_KIND_UNSPECIFIED: _ClassVar[SettlementKind]
    SETTLEMENT_KIND_MERCHANT: _ClassVar[SettlementKind]
    SETTLEMENT_KIND_CHANNEL: _ClassVar[SettlementKind]
    SETTLEMENT_KIND_BANK: _ClassVar[SettlementKind]
    SETTLEMENT_KIND_PROCESSOR: _ClassVar[SettlementKind]

class GuaranteeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARANTEE_MODE_UNSPECIFIED: _ClassVar[GuaranteeMode]
    GUARANTEE_MODE_SETTLEMENT_ORDER: _ClassVar[GuaranteeMode]
    GUARANTEE_MODE_ACCOUNT: _ClassVar[GuaranteeMode]
    GUARANTEE_MODE_ACCOUNT_COLLECTION: _ClassVar[GuaranteeMode]
COUPON_ISSUER_UNSPECIFIED: CouponIssuer
COUPON_ISSUER_PLATFORM: CouponIssuer
COUPON_ISSUER_MERCHANT: CouponIssuer
COUPON_ISSUER_SHARED: CouponIssuer
COUPON_ISSUER_PURCHASED: CouponIssuer
SETTLEMENT_KIND_UNSPECIFIED: SettlementKind
SETTLEMENT_KIND_MERCHANT: SettlementKind
SETTLEMENT_KIND_CHANNEL: SettlementKind
SETTLEMENT_KIND_BANK: SettlementKind
SETTLEMENT_KIND_PROCESSOR: SettlementKind
GUARANTEE_MODE_UNSPECIFIED: GuaranteeMode
GUARANTEE_MODE_SETTLEMENT_ORDER: GuaranteeMode
GUARANTEE_MODE_ACCOUNT: GuaranteeMode
GUARANTEE_MODE_ACCOUNT_COLLECTION: GuaranteeMode

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

class FundingFlow(_message.Message):
    __slots__ = ("consumer", "processor", "amount", "currency", "external_ref")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    processor: str
    amount: int
    currency: str
    external_ref: str
    def __init__(self, consumer: _Optional[str] = ..., processor: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., external_ref: _Optional[str] = ...) -> None: ...

class RevenueShare(_message.Message):
    __slots__ = ("party", "share_bps")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    party: str
    share_bps: int
    def __init__(self, party: _Optional[str] = ..., share_bps: _Optional[int] = ...) -> None: ...

class UsageFlow(_message.Message):
    __slots__ = ("consumer", "merchant", "amount", "currency", "affiliate", "shares", "meter", "hold_id")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AFFILIATE_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    merchant: str
    amount: int
    currency: str
    affiliate: str
    shares: _containers.RepeatedCompositeFieldContainer[RevenueShare]
    meter: str
    hold_id: str
    def __init__(self, consumer: _Optional[str] = ..., merchant: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., affiliate: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[RevenueShare, _Mapping]]] = ..., meter: _Optional[str] = ..., hold_id: _Optional[str] = ...) -> None: ...

class Coupon(_message.Message):
    __slots__ = ("issuer", "amount", "merchant_share_bps", "coupon_id")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    issuer: CouponIssuer
    amount: int
    merchant_share_bps: int
    coupon_id: str
    def __init__(self, issuer: _Optional[_Union[CouponIssuer, str]] = ..., amount: _Optional[int] = ..., merchant_share_bps: _Optional[int] = ..., coupon_id: _Optional[str] = ...) -> None: ...

class AcquisitionFlow(_message.Message):
    __slots__ = ("merchant", "channel", "amount", "currency", "coupon", "order_ref")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    ORDER_REF_FIELD_NUMBER: _ClassVar[int]
    merchant: str
    channel: str
    amount: int
    currency: str
    coupon: Coupon
    order_ref: str
    def __init__(self, merchant: _Optional[str] = ..., channel: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., coupon: _Optional[_Union[Coupon, _Mapping]] = ..., order_ref: _Optional[str] = ...) -> None: ...

class RefundFlow(_message.Message):
    __slots__ = ("original_request_id", "amount", "currency", "reason")
    ORIGINAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    original_request_id: str
    amount: int
    currency: str
    reason: str
    def __init__(self, original_request_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SettlementFlow(_message.Message):
    __slots__ = ("kind", "merchant", "channel", "amount", "actual_amount", "currency", "batch_ref", "processor")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BATCH_REF_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    kind: SettlementKind
    merchant: str
    channel: str
    amount: int
    actual_amount: int
    currency: str
    batch_ref: str
    processor: str
    def __init__(self, kind: _Optional[_Union[SettlementKind, str]] = ..., merchant: _Optional[str] = ..., channel: _Optional[str] = ..., amount: _Optional[int] = ..., actual_amount: _Optional[int] = ..., currency: _Optional[str] = ..., batch_ref: _Optional[str] = ..., processor: _Optional[str] = ...) -> None: ...

class PayoutFlow(_message.Message):
    __slots__ = ("merchant", "amount", "currency")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    merchant: str
    amount: int
    currency: str
    def __init__(self, merchant: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class GuaranteeFlow(_message.Message):
    __slots__ = ("merchant", "amount", "currency", "mode")
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    merchant: str
    amount: int
    currency: str
    mode: GuaranteeMode
    def __init__(self, merchant: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., mode: _Optional[_Union[GuaranteeMode, str]] = ...) -> None: ...

class SubAccountTransferFlow(_message.Message):
    __slots__ = ("account", "from_sub", "to_sub", "amount", "currency", "memo")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    FROM_SUB_FIELD_NUMBER: _ClassVar[int]
    TO_SUB_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    account: str
    from_sub: str
    to_sub: str
    amount: int
    currency: str
    memo: str
    def __init__(self, account: _Optional[str] = ..., from_sub: _Optional[str] = ..., to_sub: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class FxFlow(_message.Message):
    __slots__ = ("to", "amount", "from_currency", "to_currency", "rate_numerator", "rate_denominator", "memo")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FROM_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TO_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    RATE_NUMERATOR_FIELD_NUMBER: _ClassVar[int]
    RATE_DENOMINATOR_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    to: _types_pb2.AccountRef
    amount: int
    from_currency: str
    to_currency: str
    rate_numerator: int
    rate_denominator: int
    memo: str
    def __init__(self, to: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., amount: _Optional[int] = ..., from_currency: _Optional[str] = ..., to_currency: _Optional[str] = ..., rate_numerator: _Optional[int] = ..., rate_denominator: _Optional[int] = ..., memo: _Optional[str] = ..., **kwargs) -> None: ...
