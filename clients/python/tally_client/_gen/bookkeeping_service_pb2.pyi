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

class AuditFindingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_FINDING_KIND_UNSPECIFIED: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_VOUCHER_SEQUENCE: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_VOUCHER_LINK: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_VOUCHER_HASH: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_VOUCHER_UNBALANCED: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_LINE_ACCOUNT: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_ENTRY_NUMBER: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_BALANCE_AFTER: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_BALANCE_CURRENT: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_BALANCE_LAST_ENTRY: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_ENTRY_COUNT: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_LAST_DATE: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_PREVIOUS_DAY: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_LOCKED: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_BALANCE_MISSING: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_HEAD_VOUCHER: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_HEAD_HASH: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_HEAD_EVENT: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_EVENT_GAP: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_AUDIT_LOG_LINK: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_AUDIT_LOG_HASH: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_AUDIT_LOG_HEAD: _ClassVar[AuditFindingKind]
    AUDIT_FINDING_KIND_CHECKPOINT: _ClassVar[AuditFindingKind]
AUDIT_FINDING_KIND_UNSPECIFIED: AuditFindingKind
AUDIT_FINDING_KIND_VOUCHER_SEQUENCE: AuditFindingKind
AUDIT_FINDING_KIND_VOUCHER_LINK: AuditFindingKind
AUDIT_FINDING_KIND_VOUCHER_HASH: AuditFindingKind
AUDIT_FINDING_KIND_VOUCHER_UNBALANCED: AuditFindingKind
AUDIT_FINDING_KIND_LINE_ACCOUNT: AuditFindingKind
AUDIT_FINDING_KIND_ENTRY_NUMBER: AuditFindingKind
AUDIT_FINDING_KIND_BALANCE_AFTER: AuditFindingKind
AUDIT_FINDING_KIND_BALANCE_CURRENT: AuditFindingKind
AUDIT_FINDING_KIND_BALANCE_LAST_ENTRY: AuditFindingKind
AUDIT_FINDING_KIND_ENTRY_COUNT: AuditFindingKind
AUDIT_FINDING_KIND_LAST_DATE: AuditFindingKind
AUDIT_FINDING_KIND_PREVIOUS_DAY: AuditFindingKind
AUDIT_FINDING_KIND_LOCKED: AuditFindingKind
AUDIT_FINDING_KIND_BALANCE_MISSING: AuditFindingKind
AUDIT_FINDING_KIND_HEAD_VOUCHER: AuditFindingKind
AUDIT_FINDING_KIND_HEAD_HASH: AuditFindingKind
AUDIT_FINDING_KIND_HEAD_EVENT: AuditFindingKind
AUDIT_FINDING_KIND_EVENT_GAP: AuditFindingKind
AUDIT_FINDING_KIND_AUDIT_LOG_LINK: AuditFindingKind
AUDIT_FINDING_KIND_AUDIT_LOG_HASH: AuditFindingKind
AUDIT_FINDING_KIND_AUDIT_LOG_HEAD: AuditFindingKind
AUDIT_FINDING_KIND_CHECKPOINT: AuditFindingKind

class GetTrialBalanceRequest(_message.Message):
    __slots__ = ("subtree",)
    SUBTREE_FIELD_NUMBER: _ClassVar[int]
    subtree: _types_pb2.AccountRef
    def __init__(self, subtree: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ...) -> None: ...

class TrialBalanceTotal(_message.Message):
    __slots__ = ("currency", "debit_total", "credit_total", "difference", "account_count")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_COUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    debit_total: int
    credit_total: int
    difference: int
    account_count: int
    def __init__(self, currency: _Optional[str] = ..., debit_total: _Optional[int] = ..., credit_total: _Optional[int] = ..., difference: _Optional[int] = ..., account_count: _Optional[int] = ...) -> None: ...

class GetTrialBalanceResponse(_message.Message):
    __slots__ = ("totals", "balanced")
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    totals: _containers.RepeatedCompositeFieldContainer[TrialBalanceTotal]
    balanced: bool
    def __init__(self, totals: _Optional[_Iterable[_Union[TrialBalanceTotal, _Mapping]]] = ..., balanced: _Optional[bool] = ...) -> None: ...

class GetRuleSetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuleLine(_message.Message):
    __slots__ = ("side", "account", "amount", "when", "split")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    side: str
    account: str
    amount: str
    when: str
    split: str
    def __init__(self, side: _Optional[str] = ..., account: _Optional[str] = ..., amount: _Optional[str] = ..., when: _Optional[str] = ..., split: _Optional[str] = ...) -> None: ...

class RuleVoucher(_message.Message):
    __slots__ = ("name", "memo", "lines")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    name: str
    memo: str
    lines: _containers.RepeatedCompositeFieldContainer[RuleLine]
    def __init__(self, name: _Optional[str] = ..., memo: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[RuleLine, _Mapping]]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("id", "flow", "when", "mode", "vouchers", "requires")
    class WhenEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    id: str
    flow: str
    when: _containers.ScalarMap[str, str]
    mode: str
    vouchers: _containers.RepeatedCompositeFieldContainer[RuleVoucher]
    requires: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., flow: _Optional[str] = ..., when: _Optional[_Mapping[str, str]] = ..., mode: _Optional[str] = ..., vouchers: _Optional[_Iterable[_Union[RuleVoucher, _Mapping]]] = ..., requires: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRuleSetResponse(_message.Message):
    __slots__ = ("version", "flow_types", "rules", "source")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    flow_types: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    source: str
    def __init__(self, version: _Optional[str] = ..., flow_types: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class ValidateRuleSetRequest(_message.Message):
    __slots__ = ("content",)
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content: str
    def __init__(self, content: _Optional[str] = ...) -> None: ...

class ValidateRuleSetResponse(_message.Message):
    __slots__ = ("valid", "problems", "version")
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, valid: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...

class VerifyChainRequest(_message.Message):
    __slots__ = ("full",)
    FULL_FIELD_NUMBER: _ClassVar[int]
    full: bool
    def __init__(self, full: _Optional[bool] = ...) -> None: ...

class VerifyChainResponse(_message.Message):
    __slots__ = ("intact", "vouchers_checked", "first_broken_voucher_id", "first_broken_sequence", "problem", "head_hash", "findings", "findings_omitted", "full", "from_sequence", "through_sequence", "vouchers_read", "lines_read", "events_checked", "audit_rows_read", "accounts_checked", "marked_inconsistent_account_ids", "checkpoint_saved", "duration_ms")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    THROUGH_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_READ_FIELD_NUMBER: _ClassVar[int]
    LINES_READ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MARKED_INCONSISTENT_ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SAVED_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    vouchers_checked: int
    first_broken_voucher_id: str
    first_broken_sequence: int
    problem: str
    head_hash: str
    findings: _containers.RepeatedCompositeFieldContainer[AuditFinding]
    findings_omitted: int
    full: bool
    from_sequence: int
    through_sequence: int
    vouchers_read: int
    lines_read: int
    events_checked: int
    audit_rows_read: int
    accounts_checked: int
    marked_inconsistent_account_ids: _containers.RepeatedScalarFieldContainer[str]
    checkpoint_saved: bool
    duration_ms: int
    def __init__(self, intact: _Optional[bool] = ..., vouchers_checked: _Optional[int] = ..., first_broken_voucher_id: _Optional[str] = ..., first_broken_sequence: _Optional[int] = ..., problem: _Optional[str] = ..., head_hash: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[AuditFinding, _Mapping]]] = ..., findings_omitted: _Optional[int] = ..., full: _Optional[bool] = ..., from_sequence: _Optional[int] = ..., through_sequence: _Optional[int] = ..., vouchers_read: _Optional[int] = ..., lines_read: _Optional[int] = ..., events_checked: _Optional[int] = ..., audit_rows_read: _Optional[int] = ..., accounts_checked: _Optional[int] = ..., marked_inconsistent_account_ids: _Optional[_Iterable[str]] = ..., checkpoint_saved: _Optional[bool] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class AuditFinding(_message.Message):
    __slots__ = ("kind", "message", "account_id", "voucher_id", "sequence", "expected", "found")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    kind: AuditFindingKind
    message: str
    account_id: str
    voucher_id: str
    sequence: int
    expected: str
    found: str
    def __init__(self, kind: _Optional[_Union[AuditFindingKind, str]] = ..., message: _Optional[str] = ..., account_id: _Optional[str] = ..., voucher_id: _Optional[str] = ..., sequence: _Optional[int] = ..., expected: _Optional[str] = ..., found: _Optional[str] = ...) -> None: ...

class AuditLedgerRequest(_message.Message):
    __slots__ = ("full",)
    FULL_FIELD_NUMBER: _ClassVar[int]
    full: bool
    def __init__(self, full: _Optional[bool] = ...) -> None: ...

class AuditProgress(_message.Message):
    __slots__ = ("vouchers_read", "through_sequence", "last_sequence")
    VOUCHERS_READ_FIELD_NUMBER: _ClassVar[int]
    THROUGH_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    vouchers_read: int
    through_sequence: int
    last_sequence: int
    def __init__(self, vouchers_read: _Optional[int] = ..., through_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class AuditLedgerResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: AuditProgress
    result: VerifyChainResponse
    def __init__(self, progress: _Optional[_Union[AuditProgress, _Mapping]] = ..., result: _Optional[_Union[VerifyChainResponse, _Mapping]] = ...) -> None: ...

class ListAuditLogRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "actor", "action", "outcome", "start_time", "end_time")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    actor: str
    action: str
    outcome: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditLogEntry(_message.Message):
    __slots__ = ("id", "actor", "role", "action", "target", "outcome", "request_id", "peer", "time", "previous_hash", "hash")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    id: int
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    request_id: str
    peer: str
    time: _timestamp_pb2.Timestamp
    previous_hash: str
    hash: str
    def __init__(self, id: _Optional[int] = ..., actor: _Optional[str] = ..., role: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., request_id: _Optional[str] = ..., peer: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditLogResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditLogEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditLogEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
