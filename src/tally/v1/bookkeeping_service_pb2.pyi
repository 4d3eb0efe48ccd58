from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetTrialBalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

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
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyChainResponse(_message.Message):
    __slots__ = ("intact", "vouchers_checked", "first_broken_voucher_id", "first_broken_sequence", "problem", "head_hash")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_VOUCHER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    vouchers_checked: int
    first_broken_voucher_id: str
    first_broken_sequence: int
    problem: str
    head_hash: str
    def __init__(self, intact: _Optional[bool] = ..., vouchers_checked: _Optional[int] = ..., first_broken_voucher_id: _Optional[str] = ..., first_broken_sequence: _Optional[int] = ..., problem: _Optional[str] = ..., head_hash: _Optional[str] = ...) -> None: ...
