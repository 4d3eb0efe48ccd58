"""The typed syntax tree of rule expressions, and its evaluation.

There are three types: integers, strings and true/false. Names are facts values, params, lets and
`bank_unit`; calls are only the fixed functions in FUNCTIONS. Nothing here can reach an attribute, an
index or a Python builtin, so a rule file can read the facts, its params and what the LedgerView offers,
and nothing else.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

from tally.domain.errors import invalid, precondition
from tally.domain.money import fits_int64
from tally.rules.patterns import Pattern

INT, STR, BOOL, PATTERN = "integer", "string", "true/false", "account pattern"
VALUE, PARAM, LET, BUILTIN = "value", "param", "let", "builtin"  # where a name's value comes from
BPS_WHOLE = 10_000
_DECIMAL = re.compile(r"-?[0-9]+")

Result = int | str | bool | Pattern


class Scope(Protocol):
    """What an expression reads while it is evaluated for one flow."""

    def lookup(self, kind: str, name: str) -> int | str | bool: ...

    def balance(self, pattern: Pattern) -> int: ...

    def metadata(self, pattern: Pattern) -> dict[str, str]: ...


class Node:
    type: str
    pos: int  # 0-based offset of the node's first character in the expression text

    def evaluate(self, scope: Scope) -> Result:
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        return ()


def _fit(value: int, node: Node) -> int:
    if not fits_int64(value):
        raise invalid("AMOUNT_TOO_LARGE", f"the expression at column {node.pos + 1} leaves 64-bit integers",
                      column=node.pos + 1)
    return value


@dataclass(frozen=True)
class Num(Node):
    value: int
    pos: int
    type: ClassVar[str] = INT

    def evaluate(self, scope: Scope) -> int:
        return self.value


@dataclass(frozen=True)
class Str(Node):
    value: str
    pos: int
    type: ClassVar[str] = STR

    def evaluate(self, scope: Scope) -> str:
        return self.value


@dataclass(frozen=True)
class PatternRef(Node):
    """A quoted account pattern given to balance(), meta() or meta_int(); parsed at load time."""

    pattern: Pattern
    pos: int
    type: ClassVar[str] = PATTERN

    def evaluate(self, scope: Scope) -> Pattern:
        return self.pattern


@dataclass(frozen=True)
class Name(Node):
    name: str
    kind: str
    type: str
    pos: int

    def evaluate(self, scope: Scope) -> int | str | bool:
        return scope.lookup(self.kind, self.name)


@dataclass(frozen=True)
class Neg(Node):
    operand: Node
    pos: int
    type: ClassVar[str] = INT

    def evaluate(self, scope: Scope) -> int:
        return _fit(-self.operand.evaluate(scope), self)

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Sum(Node):
    terms: tuple[Node, ...]
    signs: tuple[int, ...]  # +1 or -1 for each term; the first is +1
    pos: int
    type: ClassVar[str] = INT

    def evaluate(self, scope: Scope) -> int:
        return _fit(sum(sign * term.evaluate(scope) for sign, term in zip(self.signs, self.terms, strict=True)), self)

    def children(self) -> tuple[Node, ...]:
        return self.terms


@dataclass(frozen=True)
class Product(Node):
    factors: tuple[Node, ...]
    pos: int
    type: ClassVar[str] = INT

    def evaluate(self, scope: Scope) -> int:
        result = 1
        for factor in self.factors:
            # Checked at every step so a long chain of large factors fails before it grows huge.
            result = _fit(result * factor.evaluate(scope), self)
        return result

    def children(self) -> tuple[Node, ...]:
        return self.factors


COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node
    pos: int
    type: ClassVar[str] = BOOL

    def evaluate(self, scope: Scope) -> bool:
        return COMPARISONS[self.op](self.left.evaluate(scope), self.right.evaluate(scope))

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"; evaluated left to right and stopping early, so a guard can test before it reads
    operands: tuple[Node, ...]
    pos: int
    type: ClassVar[str] = BOOL

    def evaluate(self, scope: Scope) -> bool:
        if self.op == "and":
            return all(operand.evaluate(scope) for operand in self.operands)
        return any(operand.evaluate(scope) for operand in self.operands)

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True)
class Not(Node):
    operand: Node
    pos: int
    type: ClassVar[str] = BOOL

    def evaluate(self, scope: Scope) -> bool:
        return not self.operand.evaluate(scope)

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]
    pos: int
    type: str

    def evaluate(self, scope: Scope) -> int | str:
        result = FUNCTIONS[self.function].apply(scope, *(arg.evaluate(scope) for arg in self.args))
        return _fit(result, self) if self.type == INT else result

    def children(self) -> tuple[Node, ...]:
        return self.args


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children():
        yield from walk(child)


def pattern_refs(node: Node) -> list[PatternRef]:
    """The account patterns an expression reads, in text order."""
    return [n for n in walk(node) if isinstance(n, PatternRef)]


# ------------------------------------------------------------------------------------------ functions


@dataclass(frozen=True)
class Function:
    args: tuple[str, ...]  # argument types; a variadic function repeats its one type
    result: str
    apply: Callable[..., int | str]
    variadic: bool = False


def _rate_args(x: int, rate: int) -> int:
    if x < 0 or rate < 0:
        raise invalid("RULE_AMOUNT_NEGATIVE", f"basis points of a negative amount or rate ({x}, {rate})")
    return x * rate


def _bps(scope: Scope, x: int, rate: int) -> int:
    return _rate_args(x, rate) // BPS_WHOLE


def _bps_up(scope: Scope, x: int, rate: int) -> int:
    return -(-_rate_args(x, rate) // BPS_WHOLE)


def _bps_round(scope: Scope, x: int, rate: int) -> int:
    return (_rate_args(x, rate) + BPS_WHOLE // 2) // BPS_WHOLE  # half up


def _round_down(scope: Scope, x: int, unit: int) -> int:
    if unit <= 0:
        raise invalid("RULE_UNIT_INVALID", f"round_down() needs a positive unit, got {unit}")
    return x - x % unit


def _meta(scope: Scope, pattern: Pattern, key: str) -> str:
    return scope.metadata(pattern).get(key, "")


def _meta_int(scope: Scope, pattern: Pattern, key: str, default: int) -> int:
    metadata = scope.metadata(pattern)
    if key not in metadata:
        return default
    text = metadata[key]
    # Strict decimal: int() would also take "1_000", " 7 " and non-ASCII digits.
    if not _DECIMAL.fullmatch(text) or not fits_int64(int(text)):
        raise precondition("ACCOUNT_METADATA_INVALID", f"metadata {key!r} of the account for {pattern.text!r} "
                           f"is not an integer", key=key, pattern=pattern.text)
    return int(text)


FUNCTIONS: dict[str, Function] = {
    "bps": Function((INT, INT), INT, _bps),
    "bps_up": Function((INT, INT), INT, _bps_up),
    "bps_round": Function((INT, INT), INT, _bps_round),
    "min": Function((INT,), INT, lambda scope, *xs: min(xs), variadic=True),
    "max": Function((INT,), INT, lambda scope, *xs: max(xs), variadic=True),
    "round_down": Function((INT, INT), INT, _round_down),
    "balance": Function((PATTERN,), INT, lambda scope, pattern: scope.balance(pattern)),
    "meta": Function((PATTERN, STR), STR, _meta),
    "meta_int": Function((PATTERN, STR, INT), INT, _meta_int),
}
BUILTIN_NAMES = frozenset({"bank_unit"})
KEYWORDS = frozenset({"and", "or", "not", "remainder"})
RESERVED = KEYWORDS | BUILTIN_NAMES | frozenset(FUNCTIONS) | {"true", "false"}
