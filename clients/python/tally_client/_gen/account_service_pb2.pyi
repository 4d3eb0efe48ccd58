import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tally_client._gen import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MergeHoldPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERGE_HOLD_POLICY_UNSPECIFIED: _ClassVar[MergeHoldPolicy]
    MERGE_HOLD_POLICY_MOVE: _ClassVar[MergeHoldPolicy]
    MERGE_HOLD_POLICY_REFUSE: _ClassVar[MergeHoldPolicy]
MERGE_HOLD_POLICY_UNSPECIFIED: MergeHoldPolicy
MERGE_HOLD_POLICY_MOVE: MergeHoldPolicy
MERGE_HOLD_POLICY_REFUSE: MergeHoldPolicy

class CreateAccountRequest(_message.Message):
    __slots__ = ("request_id", "code", "name", "type", "normal_side", "currency", "parent", "credit_limit", "floor_policy", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NORMAL_SIDE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FLOOR_POLICY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    code: str
    name: str
    type: _types_pb2.AccountType
    normal_side: _types_pb2.Side
    currency: str
    parent: _types_pb2.AccountRef
    credit_limit: int
    floor_policy: _types_pb2.FloorPolicy
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., code: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[_types_pb2.AccountType, str]] = ..., normal_side: _Optional[_Union[_types_pb2.Side, str]] = ..., currency: _Optional[str] = ..., parent: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., credit_limit: _Optional[int] = ..., floor_policy: _Optional[_Union[_types_pb2.FloorPolicy, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account", "replayed")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.Account
    replayed: bool
    def __init__(self, account: _Optional[_Union[_types_pb2.Account, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account", "balance", "merged_into")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    MERGED_INTO_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.Account
    balance: _types_pb2.Balance
    merged_into: str
    def __init__(self, account: _Optional[_Union[_types_pb2.Account, _Mapping]] = ..., balance: _Optional[_Union[_types_pb2.Balance, _Mapping]] = ..., merged_into: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "type", "status", "currency", "parent_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    type: _types_pb2.AccountType
    status: _types_pb2.AccountStatus
    currency: str
    parent_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., type: _Optional[_Union[_types_pb2.AccountType, str]] = ..., status: _Optional[_Union[_types_pb2.AccountStatus, str]] = ..., currency: _Optional[str] = ..., parent_id: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[_types_pb2.Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateAccountRequest(_message.Message):
    __slots__ = ("request_id", "account", "account_update", "update_mask")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account: _types_pb2.AccountRef
    account_update: _types_pb2.Account
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, request_id: _Optional[str] = ..., account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., account_update: _Optional[_Union[_types_pb2.Account, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateAccountResponse(_message.Message):
    __slots__ = ("account", "replayed")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.Account
    replayed: bool
    def __init__(self, account: _Optional[_Union[_types_pb2.Account, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("account", "as_of_time", "as_of_date", "include_descendants", "min_voucher_sequence")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    MIN_VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    as_of_time: _timestamp_pb2.Timestamp
    as_of_date: str
    include_descendants: bool
    min_voucher_sequence: int
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of_date: _Optional[str] = ..., include_descendants: _Optional[bool] = ..., min_voucher_sequence: _Optional[int] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("balance", "rollups")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    ROLLUPS_FIELD_NUMBER: _ClassVar[int]
    balance: _types_pb2.Balance
    rollups: _containers.RepeatedCompositeFieldContainer[_types_pb2.RollUp]
    def __init__(self, balance: _Optional[_Union[_types_pb2.Balance, _Mapping]] = ..., rollups: _Optional[_Iterable[_Union[_types_pb2.RollUp, _Mapping]]] = ...) -> None: ...

class BatchGetBalancesRequest(_message.Message):
    __slots__ = ("accounts", "include_descendants")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_types_pb2.AccountRef]
    include_descendants: bool
    def __init__(self, accounts: _Optional[_Iterable[_Union[_types_pb2.AccountRef, _Mapping]]] = ..., include_descendants: _Optional[bool] = ...) -> None: ...

class BatchGetBalancesResponse(_message.Message):
    __slots__ = ("balances", "voucher_sequence", "event_sequence", "rollups")
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ROLLUPS_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_types_pb2.Balance]
    voucher_sequence: int
    event_sequence: int
    rollups: _containers.RepeatedCompositeFieldContainer[AccountRollUps]
    def __init__(self, balances: _Optional[_Iterable[_Union[_types_pb2.Balance, _Mapping]]] = ..., voucher_sequence: _Optional[int] = ..., event_sequence: _Optional[int] = ..., rollups: _Optional[_Iterable[_Union[AccountRollUps, _Mapping]]] = ...) -> None: ...

class AccountRollUps(_message.Message):
    __slots__ = ("account_id", "rollups")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLUPS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    rollups: _containers.RepeatedCompositeFieldContainer[_types_pb2.RollUp]
    def __init__(self, account_id: _Optional[str] = ..., rollups: _Optional[_Iterable[_Union[_types_pb2.RollUp, _Mapping]]] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("account", "page_size", "page_token", "start_date", "end_date", "min_voucher_sequence", "include_descendants")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    MIN_VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    page_size: int
    page_token: str
    start_date: str
    end_date: str
    min_voucher_sequence: int
    include_descendants: bool
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., min_voucher_sequence: _Optional[int] = ..., include_descendants: _Optional[bool] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token", "opening_balance")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OPENING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Entry]
    next_page_token: str
    opening_balance: int
    def __init__(self, entries: _Optional[_Iterable[_Union[_types_pb2.Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., opening_balance: _Optional[int] = ...) -> None: ...

class MergeAccountsRequest(_message.Message):
    __slots__ = ("request_id", "sources", "target", "hold_policy", "memo")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HOLD_POLICY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    sources: _containers.RepeatedCompositeFieldContainer[_types_pb2.AccountRef]
    target: _types_pb2.AccountRef
    hold_policy: MergeHoldPolicy
    memo: str
    def __init__(self, request_id: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_types_pb2.AccountRef, _Mapping]]] = ..., target: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., hold_policy: _Optional[_Union[MergeHoldPolicy, str]] = ..., memo: _Optional[str] = ...) -> None: ...

class MergeAccountsResponse(_message.Message):
    __slots__ = ("target", "merged", "replayed")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    target: _types_pb2.Account
    merged: _containers.RepeatedCompositeFieldContainer[MergedAccount]
    replayed: bool
    def __init__(self, target: _Optional[_Union[_types_pb2.Account, _Mapping]] = ..., merged: _Optional[_Iterable[_Union[MergedAccount, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class MergedAccount(_message.Message):
    __slots__ = ("source_account_id", "voucher_id", "amount", "moved_holds")
    SOURCE_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MOVED_HOLDS_FIELD_NUMBER: _ClassVar[int]
    source_account_id: str
    voucher_id: str
    amount: int
    moved_holds: _containers.RepeatedCompositeFieldContainer[MovedHold]
    def __init__(self, source_account_id: _Optional[str] = ..., voucher_id: _Optional[str] = ..., amount: _Optional[int] = ..., moved_holds: _Optional[_Iterable[_Union[MovedHold, _Mapping]]] = ...) -> None: ...

class MovedHold(_message.Message):
    __slots__ = ("source_hold_id", "target_hold_id", "amount")
    SOURCE_HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    source_hold_id: str
    target_hold_id: str
    amount: int
    def __init__(self, source_hold_id: _Optional[str] = ..., target_hold_id: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class SetAccountSecurityRequest(_message.Message):
    __slots__ = ("request_id", "credit_account", "deposit_account", "ratio_bps", "bind_credit_limit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    RATIO_BPS_FIELD_NUMBER: _ClassVar[int]
    BIND_CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    credit_account: _types_pb2.AccountRef
    deposit_account: _types_pb2.AccountRef
    ratio_bps: int
    bind_credit_limit: bool
    def __init__(self, request_id: _Optional[str] = ..., credit_account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., deposit_account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., ratio_bps: _Optional[int] = ..., bind_credit_limit: _Optional[bool] = ...) -> None: ...

class SetAccountSecurityResponse(_message.Message):
    __slots__ = ("security", "replayed")
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    security: AccountSecurity
    replayed: bool
    def __init__(self, security: _Optional[_Union[AccountSecurity, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetAccountSecurityRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ...) -> None: ...

class GetAccountSecurityResponse(_message.Message):
    __slots__ = ("securities", "required_deposit")
    SECURITIES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    securities: _containers.RepeatedCompositeFieldContainer[AccountSecurity]
    required_deposit: int
    def __init__(self, securities: _Optional[_Iterable[_Union[AccountSecurity, _Mapping]]] = ..., required_deposit: _Optional[int] = ...) -> None: ...

class AccountSecurity(_message.Message):
    __slots__ = ("credit_account_id", "deposit_account_id", "ratio_bps", "bind_credit_limit", "outstanding", "required_deposit", "credit_limit")
    CREDIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RATIO_BPS_FIELD_NUMBER: _ClassVar[int]
    BIND_CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    credit_account_id: str
    deposit_account_id: str
    ratio_bps: int
    bind_credit_limit: bool
    outstanding: int
    required_deposit: int
    credit_limit: int
    def __init__(self, credit_account_id: _Optional[str] = ..., deposit_account_id: _Optional[str] = ..., ratio_bps: _Optional[int] = ..., bind_credit_limit: _Optional[bool] = ..., outstanding: _Optional[int] = ..., required_deposit: _Optional[int] = ..., credit_limit: _Optional[int] = ...) -> None: ...
