import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_TYPE_UNSPECIFIED: _ClassVar[AccountType]
    ACCOUNT_TYPE_DEPOSIT: _ClassVar[AccountType]
    ACCOUNT_TYPE_CREDIT: _ClassVar[AccountType]
    ACCOUNT_TYPE_SECURITY_DEPOSIT: _ClassVar[AccountType]
    ACCOUNT_TYPE_INTERNAL: _ClassVar[AccountType]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_DEBIT: _ClassVar[Side]
    SIDE_CREDIT: _ClassVar[Side]

class AccountStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_STATUS_UNSPECIFIED: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_ACTIVE: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_FROZEN: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_CLOSED: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_INCONSISTENT: _ClassVar[AccountStatus]

class FloorPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOOR_POLICY_UNSPECIFIED: _ClassVar[FloorPolicy]
    FLOOR_POLICY_NON_NEGATIVE: _ClassVar[FloorPolicy]
    FLOOR_POLICY_UNBOUNDED: _ClassVar[FloorPolicy]

class HoldStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_STATUS_UNSPECIFIED: _ClassVar[HoldStatus]
    HOLD_STATUS_ACTIVE: _ClassVar[HoldStatus]
    HOLD_STATUS_CAPTURED: _ClassVar[HoldStatus]
    HOLD_STATUS_RELEASED: _ClassVar[HoldStatus]
    HOLD_STATUS_EXPIRED: _ClassVar[HoldStatus]
ACCOUNT_TYPE_UNSPECIFIED: AccountType
ACCOUNT_TYPE_DEPOSIT: AccountType
ACCOUNT_TYPE_CREDIT: AccountType
ACCOUNT_TYPE_SECURITY_DEPOSIT: AccountType
ACCOUNT_TYPE_INTERNAL: AccountType
SIDE_UNSPECIFIED: Side
SIDE_DEBIT: Side
SIDE_CREDIT: Side
ACCOUNT_STATUS_UNSPECIFIED: AccountStatus
ACCOUNT_STATUS_ACTIVE: AccountStatus
ACCOUNT_STATUS_FROZEN: AccountStatus
ACCOUNT_STATUS_CLOSED: AccountStatus
ACCOUNT_STATUS_INCONSISTENT: AccountStatus
FLOOR_POLICY_UNSPECIFIED: FloorPolicy
FLOOR_POLICY_NON_NEGATIVE: FloorPolicy
FLOOR_POLICY_UNBOUNDED: FloorPolicy
HOLD_STATUS_UNSPECIFIED: HoldStatus
HOLD_STATUS_ACTIVE: HoldStatus
HOLD_STATUS_CAPTURED: HoldStatus
HOLD_STATUS_RELEASED: HoldStatus
HOLD_STATUS_EXPIRED: HoldStatus

class AccountRef(_message.Message):
    __slots__ = ("id", "code")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: str
    def __init__(self, id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id", "tenant_id", "code", "name", "type", "normal_side", "currency", "status", "parent_id", "credit_limit", "floor_policy", "metadata", "create_time", "update_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NORMAL_SIDE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FLOOR_POLICY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    code: str
    name: str
    type: AccountType
    normal_side: Side
    currency: str
    status: AccountStatus
    parent_id: str
    credit_limit: int
    floor_policy: FloorPolicy
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., code: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[AccountType, str]] = ..., normal_side: _Optional[_Union[Side, str]] = ..., currency: _Optional[str] = ..., status: _Optional[_Union[AccountStatus, str]] = ..., parent_id: _Optional[str] = ..., credit_limit: _Optional[int] = ..., floor_policy: _Optional[_Union[FloorPolicy, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("account_id", "currency", "current", "locked", "available", "credit_limit", "previous_day", "previous_day_date", "accounting_date", "entry_count", "previous_statement_balance", "previous_statement_date")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_DAY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_DAY_DATE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATEMENT_BALANCE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATEMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    currency: str
    current: int
    locked: int
    available: int
    credit_limit: int
    previous_day: int
    previous_day_date: str
    accounting_date: str
    entry_count: int
    previous_statement_balance: int
    previous_statement_date: str
    def __init__(self, account_id: _Optional[str] = ..., currency: _Optional[str] = ..., current: _Optional[int] = ..., locked: _Optional[int] = ..., available: _Optional[int] = ..., credit_limit: _Optional[int] = ..., previous_day: _Optional[int] = ..., previous_day_date: _Optional[str] = ..., accounting_date: _Optional[str] = ..., entry_count: _Optional[int] = ..., previous_statement_balance: _Optional[int] = ..., previous_statement_date: _Optional[str] = ...) -> None: ...

class LineInput(_message.Message):
    __slots__ = ("account", "side", "amount", "currency", "memo")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    account: AccountRef
    side: Side
    amount: int
    currency: str
    memo: str
    def __init__(self, account: _Optional[_Union[AccountRef, _Mapping]] = ..., side: _Optional[_Union[Side, str]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class VoucherLine(_message.Message):
    __slots__ = ("line_no", "account_id", "account_code", "side", "amount", "currency", "memo")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    account_id: str
    account_code: str
    side: Side
    amount: int
    currency: str
    memo: str
    def __init__(self, line_no: _Optional[int] = ..., account_id: _Optional[str] = ..., account_code: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class Voucher(_message.Message):
    __slots__ = ("id", "tenant_id", "sequence", "flow_type", "request_id", "rule_id", "rule_set_version", "accounting_date", "effective_time", "post_time", "lines", "memo", "metadata", "reverses_voucher_id", "reversed_by_voucher_id", "hash", "previous_hash")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REVERSES_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    REVERSED_BY_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    sequence: int
    flow_type: str
    request_id: str
    rule_id: str
    rule_set_version: str
    accounting_date: str
    effective_time: _timestamp_pb2.Timestamp
    post_time: _timestamp_pb2.Timestamp
    lines: _containers.RepeatedCompositeFieldContainer[VoucherLine]
    memo: str
    metadata: _containers.ScalarMap[str, str]
    reverses_voucher_id: str
    reversed_by_voucher_id: str
    hash: str
    previous_hash: str
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., sequence: _Optional[int] = ..., flow_type: _Optional[str] = ..., request_id: _Optional[str] = ..., rule_id: _Optional[str] = ..., rule_set_version: _Optional[str] = ..., accounting_date: _Optional[str] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[VoucherLine, _Mapping]]] = ..., memo: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., reverses_voucher_id: _Optional[str] = ..., reversed_by_voucher_id: _Optional[str] = ..., hash: _Optional[str] = ..., previous_hash: _Optional[str] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("entry_number", "voucher_id", "line_no", "account_id", "side", "amount", "currency", "balance_after", "flow_type", "memo", "accounting_date", "post_time", "account_code")
    ENTRY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CODE_FIELD_NUMBER: _ClassVar[int]
    entry_number: int
    voucher_id: str
    line_no: int
    account_id: str
    side: Side
    amount: int
    currency: str
    balance_after: int
    flow_type: str
    memo: str
    accounting_date: str
    post_time: _timestamp_pb2.Timestamp
    account_code: str
    def __init__(self, entry_number: _Optional[int] = ..., voucher_id: _Optional[str] = ..., line_no: _Optional[int] = ..., account_id: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., balance_after: _Optional[int] = ..., flow_type: _Optional[str] = ..., memo: _Optional[str] = ..., accounting_date: _Optional[str] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_code: _Optional[str] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("id", "tenant_id", "account_id", "currency", "amount", "captured", "remaining", "status", "expire_time", "create_time", "update_time", "request_id", "created_by", "memo", "metadata", "capture_voucher_ids")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_VOUCHER_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    account_id: str
    currency: str
    amount: int
    captured: int
    remaining: int
    status: HoldStatus
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    request_id: str
    created_by: str
    memo: str
    metadata: _containers.ScalarMap[str, str]
    capture_voucher_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., account_id: _Optional[str] = ..., currency: _Optional[str] = ..., amount: _Optional[int] = ..., captured: _Optional[int] = ..., remaining: _Optional[int] = ..., status: _Optional[_Union[HoldStatus, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., created_by: _Optional[str] = ..., memo: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., capture_voucher_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BalanceChange(_message.Message):
    __slots__ = ("sequence", "account_id", "currency", "current", "locked", "available", "current_delta", "locked_delta", "cause", "voucher_id", "hold_id", "time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_DELTA_FIELD_NUMBER: _ClassVar[int]
    LOCKED_DELTA_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    account_id: str
    currency: str
    current: int
    locked: int
    available: int
    current_delta: int
    locked_delta: int
    cause: str
    voucher_id: str
    hold_id: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., account_id: _Optional[str] = ..., currency: _Optional[str] = ..., current: _Optional[int] = ..., locked: _Optional[int] = ..., available: _Optional[int] = ..., current_delta: _Optional[int] = ..., locked_delta: _Optional[int] = ..., cause: _Optional[str] = ..., voucher_id: _Optional[str] = ..., hold_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "type", "account_id", "voucher_id", "hold_id", "payload_json", "time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: str
    account_id: str
    voucher_id: str
    hold_id: str
    payload_json: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[str] = ..., account_id: _Optional[str] = ..., voucher_id: _Optional[str] = ..., hold_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RollUp(_message.Message):
    __slots__ = ("currency", "own", "descendants", "total", "own_locked", "descendants_locked", "total_locked", "descendant_accounts")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OWN_FIELD_NUMBER: _ClassVar[int]
    DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    OWN_LOCKED_FIELD_NUMBER: _ClassVar[int]
    DESCENDANTS_LOCKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LOCKED_FIELD_NUMBER: _ClassVar[int]
    DESCENDANT_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    currency: str
    own: int
    descendants: int
    total: int
    own_locked: int
    descendants_locked: int
    total_locked: int
    descendant_accounts: int
    def __init__(self, currency: _Optional[str] = ..., own: _Optional[int] = ..., descendants: _Optional[int] = ..., total: _Optional[int] = ..., own_locked: _Optional[int] = ..., descendants_locked: _Optional[int] = ..., total_locked: _Optional[int] = ..., descendant_accounts: _Optional[int] = ...) -> None: ...
