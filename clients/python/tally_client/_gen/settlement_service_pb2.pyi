import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tally_client._gen import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatementFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATEMENT_FORMAT_UNSPECIFIED: _ClassVar[StatementFormat]
    STATEMENT_FORMAT_CSV: _ClassVar[StatementFormat]
    STATEMENT_FORMAT_CAMT053: _ClassVar[StatementFormat]

class ReconciliationItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILIATION_ITEM_STATE_UNSPECIFIED: _ClassVar[ReconciliationItemState]
    RECONCILIATION_ITEM_STATE_MATCHED: _ClassVar[ReconciliationItemState]
    RECONCILIATION_ITEM_STATE_DIFFERENCE: _ClassVar[ReconciliationItemState]
    RECONCILIATION_ITEM_STATE_UNMATCHED_OURS: _ClassVar[ReconciliationItemState]
    RECONCILIATION_ITEM_STATE_UNMATCHED_THEIRS: _ClassVar[ReconciliationItemState]

class Resolution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_UNSPECIFIED: _ClassVar[Resolution]
    RESOLUTION_SHORT_FALL: _ClassVar[Resolution]
    RESOLUTION_LONG_FALL: _ClassVar[Resolution]
    RESOLUTION_SUPPLEMENTARY: _ClassVar[Resolution]

class BankAccountStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BANK_ACCOUNT_STATUS_UNSPECIFIED: _ClassVar[BankAccountStatus]
    BANK_ACCOUNT_STATUS_UNVERIFIED: _ClassVar[BankAccountStatus]
    BANK_ACCOUNT_STATUS_VERIFIED: _ClassVar[BankAccountStatus]
    BANK_ACCOUNT_STATUS_DISABLED: _ClassVar[BankAccountStatus]

class PayoutState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_STATE_UNSPECIFIED: _ClassVar[PayoutState]
    PAYOUT_STATE_REQUESTED: _ClassVar[PayoutState]
    PAYOUT_STATE_BATCHED: _ClassVar[PayoutState]
    PAYOUT_STATE_SENT: _ClassVar[PayoutState]
    PAYOUT_STATE_SETTLED: _ClassVar[PayoutState]
    PAYOUT_STATE_RETURNED: _ClassVar[PayoutState]
    PAYOUT_STATE_FAILED: _ClassVar[PayoutState]

class PayoutBatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_BATCH_STATE_UNSPECIFIED: _ClassVar[PayoutBatchState]
    PAYOUT_BATCH_STATE_BATCHED: _ClassVar[PayoutBatchState]
    PAYOUT_BATCH_STATE_SENT: _ClassVar[PayoutBatchState]
    PAYOUT_BATCH_STATE_SETTLED: _ClassVar[PayoutBatchState]

class PayoutExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_EXPORT_FORMAT_UNSPECIFIED: _ClassVar[PayoutExportFormat]
    PAYOUT_EXPORT_FORMAT_PAIN001: _ClassVar[PayoutExportFormat]
    PAYOUT_EXPORT_FORMAT_CSV: _ClassVar[PayoutExportFormat]
STATEMENT_FORMAT_UNSPECIFIED: StatementFormat
STATEMENT_FORMAT_CSV: StatementFormat
STATEMENT_FORMAT_CAMT053: StatementFormat
RECONCILIATION_ITEM_STATE_UNSPECIFIED: ReconciliationItemState
RECONCILIATION_ITEM_STATE_MATCHED: ReconciliationItemState
RECONCILIATION_ITEM_STATE_DIFFERENCE: ReconciliationItemState
RECONCILIATION_ITEM_STATE_UNMATCHED_OURS: ReconciliationItemState
RECONCILIATION_ITEM_STATE_UNMATCHED_THEIRS: ReconciliationItemState
RESOLUTION_UNSPECIFIED: Resolution
RESOLUTION_SHORT_FALL: Resolution
RESOLUTION_LONG_FALL: Resolution
RESOLUTION_SUPPLEMENTARY: Resolution
BANK_ACCOUNT_STATUS_UNSPECIFIED: BankAccountStatus
BANK_ACCOUNT_STATUS_UNVERIFIED: BankAccountStatus
BANK_ACCOUNT_STATUS_VERIFIED: BankAccountStatus
BANK_ACCOUNT_STATUS_DISABLED: BankAccountStatus
PAYOUT_STATE_UNSPECIFIED: PayoutState
PAYOUT_STATE_REQUESTED: PayoutState
PAYOUT_STATE_BATCHED: PayoutState
PAYOUT_STATE_SENT: PayoutState
PAYOUT_STATE_SETTLED: PayoutState
PAYOUT_STATE_RETURNED: PayoutState
PAYOUT_STATE_FAILED: PayoutState
PAYOUT_BATCH_STATE_UNSPECIFIED: PayoutBatchState
PAYOUT_BATCH_STATE_BATCHED: PayoutBatchState
PAYOUT_BATCH_STATE_SENT: PayoutBatchState
PAYOUT_BATCH_STATE_SETTLED: PayoutBatchState
PAYOUT_EXPORT_FORMAT_UNSPECIFIED: PayoutExportFormat
PAYOUT_EXPORT_FORMAT_PAIN001: PayoutExportFormat
PAYOUT_EXPORT_FORMAT_CSV: PayoutExportFormat

class CsvColumns(_message.Message):
    __slots__ = ("reference_column", "amount_column", "value_date_column", "line_id_column", "description_column")
    REFERENCE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VALUE_DATE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_COLUMN_FIELD_NUMBER: _ClassVar[int]
    reference_column: str
    amount_column: str
    value_date_column: str
    line_id_column: str
    description_column: str
    def __init__(self, reference_column: _Optional[str] = ..., amount_column: _Optional[str] = ..., value_date_column: _Optional[str] = ..., line_id_column: _Optional[str] = ..., description_column: _Optional[str] = ...) -> None: ...

class ImportStatementRequest(_message.Message):
    __slots__ = ("request_id", "account", "format", "statement_file", "statement_id", "csv_columns", "closing_balance", "date_window_days", "csv_layout")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FILE_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CSV_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    DATE_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    CSV_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account: _types_pb2.AccountRef
    format: StatementFormat
    statement_file: bytes
    statement_id: str
    csv_columns: CsvColumns
    closing_balance: int
    date_window_days: int
    csv_layout: str
    def __init__(self, request_id: _Optional[str] = ..., account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., format: _Optional[_Union[StatementFormat, str]] = ..., statement_file: _Optional[bytes] = ..., statement_id: _Optional[str] = ..., csv_columns: _Optional[_Union[CsvColumns, _Mapping]] = ..., closing_balance: _Optional[int] = ..., date_window_days: _Optional[int] = ..., csv_layout: _Optional[str] = ...) -> None: ...

class ImportedStatement(_message.Message):
    __slots__ = ("statement_id", "account", "format", "currency", "start_date", "end_date", "line_count", "closing_balance", "ledger_balance", "import_time", "digest")
    STATEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    LEDGER_BALANCE_FIELD_NUMBER: _ClassVar[int]
    IMPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    statement_id: str
    account: str
    format: StatementFormat
    currency: str
    start_date: str
    end_date: str
    line_count: int
    closing_balance: int
    ledger_balance: int
    import_time: _timestamp_pb2.Timestamp
    digest: str
    def __init__(self, statement_id: _Optional[str] = ..., account: _Optional[str] = ..., format: _Optional[_Union[StatementFormat, str]] = ..., currency: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., line_count: _Optional[int] = ..., closing_balance: _Optional[int] = ..., ledger_balance: _Optional[int] = ..., import_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., digest: _Optional[str] = ...) -> None: ...

class StatementLine(_message.Message):
    __slots__ = ("line_no", "reference", "amount", "value_date", "line_id", "description")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    VALUE_DATE_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    reference: str
    amount: int
    value_date: str
    line_id: str
    description: str
    def __init__(self, line_no: _Optional[int] = ..., reference: _Optional[str] = ..., amount: _Optional[int] = ..., value_date: _Optional[str] = ..., line_id: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ReconciliationItem(_message.Message):
    __slots__ = ("id", "state", "rule", "entries", "lines", "ours", "theirs", "difference", "open_amount", "resolution", "resolution_voucher_id", "resolved_by", "resolve_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    OPEN_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: ReconciliationItemState
    rule: str
    entries: _containers.RepeatedScalarFieldContainer[str]
    lines: _containers.RepeatedCompositeFieldContainer[StatementLine]
    ours: int
    theirs: int
    difference: int
    open_amount: int
    resolution: Resolution
    resolution_voucher_id: str
    resolved_by: str
    resolve_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[ReconciliationItemState, str]] = ..., rule: _Optional[str] = ..., entries: _Optional[_Iterable[str]] = ..., lines: _Optional[_Iterable[_Union[StatementLine, _Mapping]]] = ..., ours: _Optional[int] = ..., theirs: _Optional[int] = ..., difference: _Optional[int] = ..., open_amount: _Optional[int] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., resolution_voucher_id: _Optional[str] = ..., resolved_by: _Optional[str] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ImportStatementResponse(_message.Message):
    __slots__ = ("statement", "counts", "replayed")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    statement: ImportedStatement
    counts: _containers.RepeatedCompositeFieldContainer[ReconciliationStateCount]
    replayed: bool
    def __init__(self, statement: _Optional[_Union[ImportedStatement, _Mapping]] = ..., counts: _Optional[_Iterable[_Union[ReconciliationStateCount, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ReconciliationStateCount(_message.Message):
    __slots__ = ("state", "items", "ours", "theirs", "open_items")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    state: ReconciliationItemState
    items: int
    ours: int
    theirs: int
    open_items: int
    def __init__(self, state: _Optional[_Union[ReconciliationItemState, str]] = ..., items: _Optional[int] = ..., ours: _Optional[int] = ..., theirs: _Optional[int] = ..., open_items: _Optional[int] = ...) -> None: ...

class FundProof(_message.Message):
    __slots__ = ("ledger_balance", "resolutions", "closing_balance", "open_items", "proven")
    LEDGER_BALANCE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    OPEN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    PROVEN_FIELD_NUMBER: _ClassVar[int]
    ledger_balance: int
    resolutions: int
    closing_balance: int
    open_items: int
    proven: bool
    def __init__(self, ledger_balance: _Optional[int] = ..., resolutions: _Optional[int] = ..., closing_balance: _Optional[int] = ..., open_items: _Optional[int] = ..., proven: _Optional[bool] = ...) -> None: ...

class GetReconciliationRequest(_message.Message):
    __slots__ = ("account", "statement_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    statement_id: str
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., statement_id: _Optional[str] = ...) -> None: ...

class GetReconciliationResponse(_message.Message):
    __slots__ = ("statement", "counts", "open_items", "fund_proof", "open_items_truncated")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    FUND_PROOF_FIELD_NUMBER: _ClassVar[int]
    OPEN_ITEMS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    statement: ImportedStatement
    counts: _containers.RepeatedCompositeFieldContainer[ReconciliationStateCount]
    open_items: _containers.RepeatedCompositeFieldContainer[ReconciliationItem]
    fund_proof: FundProof
    open_items_truncated: bool
    def __init__(self, statement: _Optional[_Union[ImportedStatement, _Mapping]] = ..., counts: _Optional[_Iterable[_Union[ReconciliationStateCount, _Mapping]]] = ..., open_items: _Optional[_Iterable[_Union[ReconciliationItem, _Mapping]]] = ..., fund_proof: _Optional[_Union[FundProof, _Mapping]] = ..., open_items_truncated: _Optional[bool] = ...) -> None: ...

class ListReconciliationItemsRequest(_message.Message):
    __slots__ = ("account", "statement_id", "state", "page_size", "page_token")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    statement_id: str
    state: ReconciliationItemState
    page_size: int
    page_token: str
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., statement_id: _Optional[str] = ..., state: _Optional[_Union[ReconciliationItemState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReconciliationItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReconciliationItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[ReconciliationItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResolveItemRequest(_message.Message):
    __slots__ = ("request_id", "item_id", "resolution", "party", "memo")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    item_id: str
    resolution: Resolution
    party: str
    memo: str
    def __init__(self, request_id: _Optional[str] = ..., item_id: _Optional[str] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., party: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class ResolveItemResponse(_message.Message):
    __slots__ = ("item", "voucher_ids", "replayed")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    item: ReconciliationItem
    voucher_ids: _containers.RepeatedScalarFieldContainer[str]
    replayed: bool
    def __init__(self, item: _Optional[_Union[ReconciliationItem, _Mapping]] = ..., voucher_ids: _Optional[_Iterable[str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class BankAccount(_message.Message):
    __slots__ = ("id", "merchant", "currency", "holder_name", "iban", "bic", "aba_routing", "account_number", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    IBAN_FIELD_NUMBER: _ClassVar[int]
    BIC_FIELD_NUMBER: _ClassVar[int]
    ABA_ROUTING_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    merchant: str
    currency: str
    holder_name: str
    iban: str
    bic: str
    aba_routing: str
    account_number: str
    status: BankAccountStatus
    def __init__(self, id: _Optional[str] = ..., merchant: _Optional[str] = ..., currency: _Optional[str] = ..., holder_name: _Optional[str] = ..., iban: _Optional[str] = ..., bic: _Optional[str] = ..., aba_routing: _Optional[str] = ..., account_number: _Optional[str] = ..., status: _Optional[_Union[BankAccountStatus, str]] = ...) -> None: ...

class Payout(_message.Message):
    __slots__ = ("id", "request_id", "merchant", "bank_account_id", "currency", "amount", "state", "batch_id", "reason", "voucher_ids", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    BANK_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    merchant: str
    bank_account_id: str
    currency: str
    amount: int
    state: PayoutState
    batch_id: str
    reason: str
    voucher_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., merchant: _Optional[str] = ..., bank_account_id: _Optional[str] = ..., currency: _Optional[str] = ..., amount: _Optional[int] = ..., state: _Optional[_Union[PayoutState, str]] = ..., batch_id: _Optional[str] = ..., reason: _Optional[str] = ..., voucher_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PayoutBatch(_message.Message):
    __slots__ = ("id", "bank_account_id", "currency", "state", "payout_count", "total", "cutoff_time", "send_voucher_id", "sent_date", "expected_settlement_date")
    ID_FIELD_NUMBER: _ClassVar[int]
    BANK_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_TIME_FIELD_NUMBER: _ClassVar[int]
    SEND_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_DATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SETTLEMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    bank_account_id: str
    currency: str
    state: PayoutBatchState
    payout_count: int
    total: int
    cutoff_time: _timestamp_pb2.Timestamp
    send_voucher_id: str
    sent_date: str
    expected_settlement_date: str
    def __init__(self, id: _Optional[str] = ..., bank_account_id: _Optional[str] = ..., currency: _Optional[str] = ..., state: _Optional[_Union[PayoutBatchState, str]] = ..., payout_count: _Optional[int] = ..., total: _Optional[int] = ..., cutoff_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., send_voucher_id: _Optional[str] = ..., sent_date: _Optional[str] = ..., expected_settlement_date: _Optional[str] = ...) -> None: ...

class LinkBankAccountRequest(_message.Message):
    __slots__ = ("request_id", "merchant_account", "currency", "holder_name", "iban", "bic", "aba_routing", "account_number", "verified")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    IBAN_FIELD_NUMBER: _ClassVar[int]
    BIC_FIELD_NUMBER: _ClassVar[int]
    ABA_ROUTING_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    merchant_account: _types_pb2.AccountRef
    currency: str
    holder_name: str
    iban: str
    bic: str
    aba_routing: str
    account_number: str
    verified: bool
    def __init__(self, request_id: _Optional[str] = ..., merchant_account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., currency: _Optional[str] = ..., holder_name: _Optional[str] = ..., iban: _Optional[str] = ..., bic: _Optional[str] = ..., aba_routing: _Optional[str] = ..., account_number: _Optional[str] = ..., verified: _Optional[bool] = ...) -> None: ...

class LinkBankAccountResponse(_message.Message):
    __slots__ = ("bank_account", "replayed")
    BANK_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    bank_account: BankAccount
    replayed: bool
    def __init__(self, bank_account: _Optional[_Union[BankAccount, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class UpdateBankAccountStatusRequest(_message.Message):
    __slots__ = ("request_id", "bank_account_id", "status")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BANK_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bank_account_id: str
    status: BankAccountStatus
    def __init__(self, request_id: _Optional[str] = ..., bank_account_id: _Optional[str] = ..., status: _Optional[_Union[BankAccountStatus, str]] = ...) -> None: ...

class UpdateBankAccountStatusResponse(_message.Message):
    __slots__ = ("bank_account",)
    BANK_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    bank_account: BankAccount
    def __init__(self, bank_account: _Optional[_Union[BankAccount, _Mapping]] = ...) -> None: ...

class RequestPayoutRequest(_message.Message):
    __slots__ = ("request_id", "bank_account_id", "amount", "currency")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BANK_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bank_account_id: str
    amount: int
    currency: str
    def __init__(self, request_id: _Optional[str] = ..., bank_account_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class RequestPayoutResponse(_message.Message):
    __slots__ = ("payout", "replayed")
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    payout: Payout
    replayed: bool
    def __init__(self, payout: _Optional[_Union[Payout, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class CreatePayoutBatchesRequest(_message.Message):
    __slots__ = ("request_id", "currency")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    currency: str
    def __init__(self, request_id: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class CreatePayoutBatchesResponse(_message.Message):
    __slots__ = ("batches", "failed_payouts")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    FAILED_PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[PayoutBatch]
    failed_payouts: _containers.RepeatedCompositeFieldContainer[Payout]
    def __init__(self, batches: _Optional[_Iterable[_Union[PayoutBatch, _Mapping]]] = ..., failed_payouts: _Optional[_Iterable[_Union[Payout, _Mapping]]] = ...) -> None: ...

class ExportPayoutBatchRequest(_message.Message):
    __slots__ = ("batch_id", "format")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    format: PayoutExportFormat
    def __init__(self, batch_id: _Optional[str] = ..., format: _Optional[_Union[PayoutExportFormat, str]] = ...) -> None: ...

class ExportPayoutBatchResponse(_message.Message):
    __slots__ = ("content", "file_name")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    file_name: str
    def __init__(self, content: _Optional[bytes] = ..., file_name: _Optional[str] = ...) -> None: ...

class SendPayoutBatchRequest(_message.Message):
    __slots__ = ("request_id", "batch_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    batch_id: str
    def __init__(self, request_id: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

class SendPayoutBatchResponse(_message.Message):
    __slots__ = ("batch", "replayed")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    batch: PayoutBatch
    replayed: bool
    def __init__(self, batch: _Optional[_Union[PayoutBatch, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class SettlePayoutBatchRequest(_message.Message):
    __slots__ = ("request_id", "batch_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    batch_id: str
    def __init__(self, request_id: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

class SettlePayoutBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: PayoutBatch
    def __init__(self, batch: _Optional[_Union[PayoutBatch, _Mapping]] = ...) -> None: ...

class ReturnPayoutRequest(_message.Message):
    __slots__ = ("request_id", "payout_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payout_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., payout_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReturnPayoutResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: Payout
    def __init__(self, payout: _Optional[_Union[Payout, _Mapping]] = ...) -> None: ...

class GetPayoutBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class GetPayoutBatchResponse(_message.Message):
    __slots__ = ("batch", "payouts")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    batch: PayoutBatch
    payouts: _containers.RepeatedCompositeFieldContainer[Payout]
    def __init__(self, batch: _Optional[_Union[PayoutBatch, _Mapping]] = ..., payouts: _Optional[_Iterable[_Union[Payout, _Mapping]]] = ...) -> None: ...

class ListPayoutsRequest(_message.Message):
    __slots__ = ("state", "batch_id", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: PayoutState
    batch_id: str
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[PayoutState, str]] = ..., batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPayoutsResponse(_message.Message):
    __slots__ = ("payouts", "next_page_token")
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payouts: _containers.RepeatedCompositeFieldContainer[Payout]
    next_page_token: str
    def __init__(self, payouts: _Optional[_Iterable[_Union[Payout, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
