"""What a loaded rule set is made of. Built by the loader, read by the engine; immutable."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tally.domain.accounts import AccountType, FloorPolicy, NewAccount, Side
from tally.domain.controls import Controls
from tally.domain.errors import ErrorKind
from tally.rules.expr import Node
from tally.rules.patterns import Pattern


class Mode(enum.Enum):
    VOUCHERS = "vouchers"  # the rule's vouchers are built from the facts
    PROPORTIONAL_REVERSAL = "proportional_reversal"  # the service reverses original vouchers in part (refunds)


@dataclass(frozen=True)
class FlowSpec:
    """The names a flow type carries: integer values, parties and tags (disjoint)."""

    name: str
    values: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        """Names an account pattern may use: parties, tags and the flow's currency."""
        return frozenset(self.parties) | frozenset(self.tags) | {"currency"}


@dataclass(frozen=True)
class AccountTemplate:
    """How an account whose code matches `pattern` is opened on first use."""

    pattern: Pattern
    type: AccountType
    normal_side: Side
    floor: FloorPolicy
    controls: Controls | None = None  # spending controls of every account it opens (the API's override them)

    def new_account(self, code: str, currency: str, name: str = "") -> NewAccount:
        return NewAccount(code=code, type=self.type, currency=currency, normal_side=self.normal_side,
                          name=name, floor_policy=self.floor)


@dataclass(frozen=True)
class Presence:
    """A line's `when`: keep the line only if `name` is present (non-empty party or tag, non-zero value)."""

    name: str
    negate: bool = False

    def __str__(self) -> str:
        return f"not {self.name}" if self.negate else self.name


@dataclass(frozen=True)
class LineRule:
    side: Side
    account: Pattern
    amount: Node | str  # an integer expression, or parser.REMAINDER (the only str)
    when: Presence | None = None
    split: bool = False  # distribute the amount over the flow's share table, `{party}` naming each share
    split_default: str = ""  # with no share table: the party that takes the whole amount
    memo: Pattern | None = None
    amount_text: str = ""  # the expression as written, for inspection

    @property
    def is_remainder(self) -> bool:
        return isinstance(self.amount, str)


@dataclass(frozen=True)
class VoucherRule:
    name: str
    lines: tuple[LineRule, ...]
    memo: Pattern | None = None


@dataclass(frozen=True)
class Guard:
    check: Node
    text: str
    reason: str
    kind: ErrorKind = ErrorKind.FAILED_PRECONDITION
    message: str = ""


@dataclass(frozen=True)
class Rule:
    id: str
    flow: FlowSpec
    when: dict[str, str] = field(default_factory=dict)  # tag -> required value; a missing tag is ""
    mode: Mode = Mode.VOUCHERS
    params: dict[str, int] = field(default_factory=dict)  # the file's params with this rule's overrides
    lets: tuple[tuple[str, Node], ...] = ()
    let_texts: dict[str, str] = field(default_factory=dict)  # each let's expression as written
    requires: tuple[Guard, ...] = ()
    vouchers: tuple[VoucherRule, ...] = ()
    description: str = ""

    def matches(self, tags: dict[str, str]) -> bool:
        return all(tags.get(tag, "") == value for tag, value in self.when.items())

    @property
    def splits(self) -> bool:
        return any(line.split for voucher in self.vouchers for line in voucher.lines)
