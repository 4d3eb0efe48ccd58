"""A hand-written tokenizer and recursive-descent parser for rule expressions.

    guard      := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary ("*" unary)*
    unary      := "-" unary | primary
    primary    := INTEGER | 'string' | NAME | NAME "(" [guard ("," guard)*] ")" | "(" guard ")"

Every node is typed while it is built, so an amount that is not an integer, a comparison outside a
guard or a string anywhere but a function argument or a comparison fails at load time, with the column.
`remainder` is not part of this grammar: it is recognised by `parse_amount` as a whole amount only.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tally.domain.money import fits_int64
from tally.rules import limits
from tally.rules.expr import (
    BOOL,
    COMPARISONS,
    FUNCTIONS,
    INT,
    KEYWORDS,
    PATTERN,
    STR,
    BoolOp,
    Call,
    Compare,
    Name,
    Neg,
    Node,
    Not,
    Num,
    PatternRef,
    Product,
    Str,
    Sum,
)
from tally.rules.patterns import PatternError, parse_pattern

REMAINDER = "remainder"

# Resolves a name to (kind, type), or None when the rule set does not know it.
Resolver = Callable[[str], tuple[str, str] | None]

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<int>[0-9]+(?:_[0-9]+)*)
  | (?P<name>[A-Za-z][A-Za-z0-9_]*)
  | (?P<str>'[^'\n]*')
  | (?P<op>==|!=|<=|>=|[<>+*(),-])
""", re.VERBOSE)
_HINTS = {
    '"': "strings use single quotes",
    "/": "there is no division: use bps(), bps_up(), bps_round() or round_down()",
    ".": "amounts are whole integers of atomic units; there are no fractions or attributes",
    "'": "string is never closed",
    "_": "names start with a letter",
    "=": "comparison is '=='",
    "!": "use 'not' or '!='",
}


class ExprError(ValueError):
    def __init__(self, message: str, pos: int, text: str) -> None:
        super().__init__(message)
        self.message, self.pos, self.text = message, pos, text

    @property
    def column(self) -> int:
        return self.pos + 1

    def __str__(self) -> str:
        return f'{self.message} at column {self.column} of "{self.text}"'


@dataclass(frozen=True)
class Token:
    kind: str  # int | name | str | op | end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            ch = text[pos]
            raise ExprError(_HINTS.get(ch, f"unexpected character {ch!r}"), pos, text)
        if found.lastgroup != "space":
            tokens.append(Token(found.lastgroup or "", found.group(), pos))
        pos = found.end()
        if found.lastgroup in ("int", "name") and pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
            raise ExprError(f"unexpected character {text[pos]!r}", pos, text)
    tokens.append(Token("end", "", len(text)))
    return tokens


def parse_expression(text: str, resolve: Resolver, *, want: str | None) -> Node:
    """Parses an integer expression (`want=INT`), a guard (`want=BOOL`) or either (`want=None`, for lets)."""
    return _Parser(text, resolve).parse(want)


def parse_amount(text: str, resolve: Resolver) -> Node | str:
    """A line's amount: an integer expression, or REMAINDER when it is the whole text."""
    if text.strip() == REMAINDER:
        return REMAINDER
    return parse_expression(text, resolve, want=INT)


class _Parser:
    def __init__(self, text: str, resolve: Resolver) -> None:
        self.text, self.resolve = text, resolve
        self.tokens: list[Token] = []
        self.index = 0
        self.depth = 0

    def parse(self, want: str | None) -> Node:
        if len(self.text) > limits.EXPRESSION_LENGTH_MAX:
            raise self.error(f"longer than {limits.EXPRESSION_LENGTH_MAX} characters", 0)
        if not self.text.strip():
            raise self.error("empty expression", 0)
        self.tokens = tokenize(self.text)
        node = self.or_()
        if self.peek.kind != "end":
            raise self.error(f"unexpected {self.describe(self.peek)}", self.peek.pos)
        if want is not None and node.type != want:
            what = "an integer amount" if want == INT else "a true/false check"
            raise self.error(f"expected {what}, got {_article(node.type)}", node.pos)
        return node

    # --------------------------------------------------------------------------------- plumbing

    @property
    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, *texts: str) -> Token | None:
        token = self.peek
        if token.kind in ("op", "name") and token.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise self.error(f"expected '{text}', got {self.describe(self.peek)}", self.peek.pos)
        return token

    def error(self, message: str, pos: int) -> ExprError:
        return ExprError(message, pos, self.text)

    def describe(self, token: Token) -> str:
        return "end of expression" if token.kind == "end" else f"'{token.text}'"

    @contextlib.contextmanager
    def nested(self, pos: int) -> Iterator[None]:
        self.depth += 1
        if self.depth > limits.EXPRESSION_DEPTH_MAX:
            raise self.error(f"nested deeper than {limits.EXPRESSION_DEPTH_MAX} levels", pos)
        try:
            yield
        finally:
            self.depth -= 1

    def require(self, node: Node, type_: str, what: str) -> Node:
        if node.type != type_:
            raise self.error(f"{what} needs {_article(type_)}, got {_article(node.type)}", node.pos)
        return node

    # ------------------------------------------------------------------------------------ grammar

    def or_(self) -> Node:
        return self.chain("or", self.and_)

    def and_(self) -> Node:
        return self.chain("and", self.not_)

    def chain(self, keyword: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        operands = [first]
        while self.accept(keyword):
            operands.append(operand())
        if len(operands) == 1:
            return first
        for node in operands:
            self.require(node, BOOL, f"'{keyword}'")
        return BoolOp(keyword, tuple(operands), first.pos)

    def not_(self) -> Node:
        token = self.accept("not")
        if token is None:
            return self.comparison()
        with self.nested(token.pos):
            return Not(self.require(self.not_(), BOOL, "'not'"), token.pos)

    def comparison(self) -> Node:
        left = self.sum()
        token = self.accept(*COMPARISONS)
        if token is None:
            return left
        right = self.sum()
        if self.peek.text in COMPARISONS and self.peek.kind == "op":
            raise self.error("comparisons cannot be chained; join them with 'and'", self.peek.pos)
        self.check_comparable(token, left, right)
        return Compare(token.text, left, right, left.pos)

    def check_comparable(self, token: Token, left: Node, right: Node) -> None:
        if left.type == right.type == INT:
            return
        if left.type == right.type == STR and token.text in ("==", "!="):
            return
        raise self.error(f"'{token.text}' cannot compare {_article(left.type)} with {_article(right.type)}",
                         token.pos)

    def sum(self) -> Node:
        first = self.product()
        terms, signs = [first], [1]
        while (token := self.accept("+", "-")) is not None:
            terms.append(self.require(self.product(), INT, f"'{token.text}'"))
            signs.append(1 if token.text == "+" else -1)
        if len(terms) == 1:
            return first
        self.require(first, INT, f"'{'+' if signs[1] == 1 else '-'}'")
        return Sum(tuple(terms), tuple(signs), first.pos)

    def product(self) -> Node:
        first = self.unary()
        factors = [first]
        while self.accept("*"):
            factors.append(self.require(self.unary(), INT, "'*'"))
        if len(factors) == 1:
            return first
        self.require(first, INT, "'*'")
        return Product(tuple(factors), first.pos)

    def unary(self) -> Node:
        token = self.accept("-")
        if token is None:
            return self.primary()
        with self.nested(token.pos):
            operand = self.require(self.unary(), INT, "unary '-'")
        if isinstance(operand, Num):
            return Num(-operand.value, token.pos)
        return Neg(operand, token.pos)

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "int":
            return self.integer(token)
        if token.kind == "str":
            return Str(token.text[1:-1], token.pos)
        if token.kind == "name":
            return self.name(token)
        if token.text == "(":
            with self.nested(token.pos):
                node = self.or_()
            self.expect(")")
            return node
        raise self.error(f"expected a number, a name or '(', got {self.describe(token)}", token.pos)

    def integer(self, token: Token) -> Num:
        value = int(token.text.replace("_", ""))
        if not fits_int64(value):
            raise self.error("integer is beyond 64 bits", token.pos)
        return Num(value, token.pos)

    def name(self, token: Token) -> Node:
        if token.text == REMAINDER:
            raise self.error("'remainder' can only be the whole amount of a line", token.pos)
        if token.text in KEYWORDS:
            raise self.error(f"unexpected '{token.text}'", token.pos)
        if self.peek.text == "(" and self.peek.kind == "op":
            return self.call(token)
        resolved = self.resolve(token.text)
        if resolved is None:
            raise self.error(f"unknown name '{token.text}'", token.pos)
        kind, type_ = resolved
        return Name(token.text, kind, type_, token.pos)

    def call(self, token: Token) -> Call:
        function = FUNCTIONS.get(token.text)
        if function is None:
            raise self.error(f"unknown function '{token.text}'", token.pos)
        self.expect("(")
        args: list[Node] = []
        with self.nested(token.pos):
            if not self.accept(")"):
                args.append(self.argument(token, len(args)))
                while self.accept(","):
                    args.append(self.argument(token, len(args)))
                self.expect(")")
        self.check_arity(token, len(args))
        return Call(token.text, tuple(args), token.pos, function.result)

    def argument(self, token: Token, index: int) -> Node:
        function = FUNCTIONS[token.text]
        want = function.args[0] if function.variadic else function.args[min(index, len(function.args) - 1)]
        node = self.or_()
        what = f"argument {index + 1} of {token.text}()"
        if want != PATTERN:
            return self.require(node, want, what)
        if not isinstance(node, Str):
            raise self.error(f"{what} must be a quoted account pattern such as "
                             "'merchant:{merchant}:{currency}/settled'", node.pos)
        try:
            return PatternRef(parse_pattern(node.value, code=True), node.pos)
        except PatternError as exc:
            raise self.error(f"account pattern: {exc.message}", node.pos + 1 + exc.offset) from None

    def check_arity(self, token: Token, count: int) -> None:
        function = FUNCTIONS[token.text]
        if function.variadic and count < 2:
            raise self.error(f"{token.text}() takes at least 2 arguments, got {count}", token.pos)
        if not function.variadic and count != len(function.args):
            raise self.error(f"{token.text}() takes {len(function.args)} arguments, got {count}", token.pos)


def _article(type_: str) -> str:
    return {INT: "an integer", STR: "a string", BOOL: "a true/false check", PATTERN: "an account pattern"}[type_]
