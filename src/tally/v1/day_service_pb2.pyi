import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tally.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DayState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DAY_STATE_UNSPECIFIED: _ClassVar[DayState]
    DAY_STATE_OPEN: _ClassVar[DayState]
    DAY_STATE_CLOSING: _ClassVar[DayState]
    DAY_STATE_CLOSED: _ClassVar[DayState]

class LedgerRowKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEDGER_ROW_KIND_UNSPECIFIED: _ClassVar[LedgerRowKind]
    LEDGER_ROW_KIND_SUMMARY: _ClassVar[LedgerRowKind]
    LEDGER_ROW_KIND_DETAIL: _ClassVar[LedgerRowKind]
DAY_STATE_UNSPECIFIED: DayState
DAY_STATE_OPEN: DayState
DAY_STATE_CLOSING: DayState
DAY_STATE_CLOSED: DayState
LEDGER_ROW_KIND_UNSPECIFIED: LedgerRowKind
LEDGER_ROW_KIND_SUMMARY: LedgerRowKind
LEDGER_ROW_KIND_DETAIL: LedgerRowKind

class DayCurrencyTotal(_message.Message):
    __slots__ = ("currency", "debit_total", "credit_total", "line_count")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    debit_total: int
    credit_total: int
    line_count: int
    def __init__(self, currency: _Optional[str] = ..., debit_total: _Optional[int] = ..., credit_total: _Optional[int] = ..., line_count: _Optional[int] = ...) -> None: ...

class DayFlowTotal(_message.Message):
    __slots__ = ("flow_type", "currency", "voucher_count", "amount_total")
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    flow_type: str
    currency: str
    voucher_count: int
    amount_total: int
    def __init__(self, flow_type: _Optional[str] = ..., currency: _Optional[str] = ..., voucher_count: _Optional[int] = ..., amount_total: _Optional[int] = ...) -> None: ...

class AccountingDay(_message.Message):
    __slots__ = ("accounting_date", "state", "after_sequence", "last_sequence", "voucher_count", "accounts_closed", "currency_totals", "flow_totals", "event_sequence", "close_started_time", "closed_time")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_TOTALS_FIELD_NUMBER: _ClassVar[int]
    FLOW_TOTALS_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TIME_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    state: DayState
    after_sequence: int
    last_sequence: int
    voucher_count: int
    accounts_closed: int
    currency_totals: _containers.RepeatedCompositeFieldContainer[DayCurrencyTotal]
    flow_totals: _containers.RepeatedCompositeFieldContainer[DayFlowTotal]
    event_sequence: int
    close_started_time: _timestamp_pb2.Timestamp
    closed_time: _timestamp_pb2.Timestamp
    def __init__(self, accounting_date: _Optional[str] = ..., state: _Optional[_Union[DayState, str]] = ..., after_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ..., voucher_count: _Optional[int] = ..., accounts_closed: _Optional[int] = ..., currency_totals: _Optional[_Iterable[_Union[DayCurrencyTotal, _Mapping]]] = ..., flow_totals: _Optional[_Iterable[_Union[DayFlowTotal, _Mapping]]] = ..., event_sequence: _Optional[int] = ..., close_started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CloseAccountingDayRequest(_message.Message):
    __slots__ = ("accounting_date", "request_id", "early")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EARLY_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    request_id: str
    early: bool
    def __init__(self, accounting_date: _Optional[str] = ..., request_id: _Optional[str] = ..., early: _Optional[bool] = ...) -> None: ...

class CloseAccountingDayResponse(_message.Message):
    __slots__ = ("day",)
    DAY_FIELD_NUMBER: _ClassVar[int]
    day: AccountingDay
    def __init__(self, day: _Optional[_Union[AccountingDay, _Mapping]] = ...) -> None: ...

class GetAccountingDayRequest(_message.Message):
    __slots__ = ("accounting_date",)
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    def __init__(self, accounting_date: _Optional[str] = ...) -> None: ...

class GetAccountingDayResponse(_message.Message):
    __slots__ = ("day",)
    DAY_FIELD_NUMBER: _ClassVar[int]
    day: AccountingDay
    def __init__(self, day: _Optional[_Union[AccountingDay, _Mapping]] = ...) -> None: ...

class ListAccountingDaysRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountingDaysResponse(_message.Message):
    __slots__ = ("days", "next_page_token")
    DAYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    days: _containers.RepeatedCompositeFieldContainer[AccountingDay]
    next_page_token: str
    def __init__(self, days: _Optional[_Iterable[_Union[AccountingDay, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClosingBalance(_message.Message):
    __slots__ = ("account_id", "currency", "balance", "entry_count")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    currency: str
    balance: int
    entry_count: int
    def __init__(self, account_id: _Optional[str] = ..., currency: _Optional[str] = ..., balance: _Optional[int] = ..., entry_count: _Optional[int] = ...) -> None: ...

class ListClosingBalancesRequest(_message.Message):
    __slots__ = ("accounting_date", "page_size", "page_token")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    page_size: int
    page_token: str
    def __init__(self, accounting_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListClosingBalancesResponse(_message.Message):
    __slots__ = ("balances", "next_page_token")
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[ClosingBalance]
    next_page_token: str
    def __init__(self, balances: _Optional[_Iterable[_Union[ClosingBalance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Statement(_message.Message):
    __slots__ = ("account_id", "currency", "start_date", "end_date", "opening_balance", "closing_balance", "debit_total", "credit_total", "entry_count", "issued")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    OPENING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    currency: str
    start_date: str
    end_date: str
    opening_balance: int
    closing_balance: int
    debit_total: int
    credit_total: int
    entry_count: int
    issued: bool
    def __init__(self, account_id: _Optional[str] = ..., currency: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., opening_balance: _Optional[int] = ..., closing_balance: _Optional[int] = ..., debit_total: _Optional[int] = ..., credit_total: _Optional[int] = ..., entry_count: _Optional[int] = ..., issued: _Optional[bool] = ...) -> None: ...

class ListStatementsRequest(_message.Message):
    __slots__ = ("account", "page_size", "page_token", "min_voucher_sequence")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    page_size: int
    page_token: str
    min_voucher_sequence: int
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_voucher_sequence: _Optional[int] = ...) -> None: ...

class ListStatementsResponse(_message.Message):
    __slots__ = ("statements", "next_page_token")
    STATEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statements: _containers.RepeatedCompositeFieldContainer[Statement]
    next_page_token: str
    def __init__(self, statements: _Optional[_Iterable[_Union[Statement, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStatementRequest(_message.Message):
    __slots__ = ("account", "date", "page_size", "page_token", "min_voucher_sequence")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    date: str
    page_size: int
    page_token: str
    min_voucher_sequence: int
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_voucher_sequence: _Optional[int] = ...) -> None: ...

class GetStatementResponse(_message.Message):
    __slots__ = ("statement", "entries", "next_page_token")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statement: Statement
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Entry]
    next_page_token: str
    def __init__(self, statement: _Optional[_Union[Statement, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[_types_pb2.Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SummaryLine(_message.Message):
    __slots__ = ("line_no", "account_id", "account_code", "side", "amount", "line_count")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    account_id: str
    account_code: str
    side: _types_pb2.Side
    amount: int
    line_count: int
    def __init__(self, line_no: _Optional[int] = ..., account_id: _Optional[str] = ..., account_code: _Optional[str] = ..., side: _Optional[_Union[_types_pb2.Side, str]] = ..., amount: _Optional[int] = ..., line_count: _Optional[int] = ...) -> None: ...

class SummaryVoucher(_message.Message):
    __slots__ = ("id", "accounting_date", "flow_type", "currency", "voucher_count", "lines", "account_prefixes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    id: str
    accounting_date: str
    flow_type: str
    currency: str
    voucher_count: int
    lines: _containers.RepeatedCompositeFieldContainer[SummaryLine]
    account_prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., accounting_date: _Optional[str] = ..., flow_type: _Optional[str] = ..., currency: _Optional[str] = ..., voucher_count: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[SummaryLine, _Mapping]]] = ..., account_prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSummariesRequest(_message.Message):
    __slots__ = ("accounting_date", "page_size", "page_token")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    page_size: int
    page_token: str
    def __init__(self, accounting_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSummariesResponse(_message.Message):
    __slots__ = ("summaries", "next_page_token")
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    summaries: _containers.RepeatedCompositeFieldContainer[SummaryVoucher]
    next_page_token: str
    def __init__(self, summaries: _Optional[_Iterable[_Union[SummaryVoucher, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSummaryDetailRequest(_message.Message):
    __slots__ = ("accounting_date", "flow_type", "currency", "page_size", "page_token")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    flow_type: str
    currency: str
    page_size: int
    page_token: str
    def __init__(self, accounting_date: _Optional[str] = ..., flow_type: _Optional[str] = ..., currency: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSummaryDetailResponse(_message.Message):
    __slots__ = ("vouchers", "next_page_token")
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    vouchers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Voucher]
    next_page_token: str
    def __init__(self, vouchers: _Optional[_Iterable[_Union[_types_pb2.Voucher, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LedgerExportRow(_message.Message):
    __slots__ = ("accounting_date", "kind", "voucher_id", "flow_type", "line_no", "account_id", "account_code", "side", "amount", "currency", "line_count", "memo")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    kind: LedgerRowKind
    voucher_id: str
    flow_type: str
    line_no: int
    account_id: str
    account_code: str
    side: _types_pb2.Side
    amount: int
    currency: str
    line_count: int
    memo: str
    def __init__(self, accounting_date: _Optional[str] = ..., kind: _Optional[_Union[LedgerRowKind, str]] = ..., voucher_id: _Optional[str] = ..., flow_type: _Optional[str] = ..., line_no: _Optional[int] = ..., account_id: _Optional[str] = ..., account_code: _Optional[str] = ..., side: _Optional[_Union[_types_pb2.Side, str]] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., line_count: _Optional[int] = ..., memo: _Optional[str] = ...) -> None: ...

class ExportGeneralLedgerRequest(_message.Message):
    __slots__ = ("accounting_date", "page_size", "page_token")
    ACCOUNTING_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounting_date: str
    page_size: int
    page_token: str
    def __init__(self, accounting_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ExportGeneralLedgerResponse(_message.Message):
    __slots__ = ("rows", "next_page_token")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[LedgerExportRow]
    next_page_token: str
    def __init__(self, rows: _Optional[_Iterable[_Union[LedgerExportRow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
