"""Rule expressions: the tokenizer, the recursive-descent parser's grammar and types, and evaluation."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tally.rules
from tally.domain.errors import ErrorKind, LedgerError
from tally.rules import limits
from tally.rules.expr import BOOL, BUILTIN, INT, PARAM, VALUE, Node, pattern_refs, walk
from tally.rules.parser import REMAINDER, ExprError, parse_amount, parse_expression, tokenize
from tally.rules.patterns import Pattern

NAMES = {"amount": (VALUE, INT), "other": (VALUE, INT), "fee_bps": (PARAM, INT), "bank_unit": (BUILTIN, INT)}
INT64_MAX = 2**63 - 1


class FakeScope:
    def __init__(self, values=None, balances=None, metadata=None):
        self.values = {"amount": 1_000, "other": 7, **(values or {})}
        self.params = {"fee_bps": 250}
        self.balances = balances or {}
        self.meta = metadata or {}
        self.fields = {"merchant": "m1", "currency": "USD"}

    def lookup(self, kind, name):
        if kind == VALUE:
            return self.values[name]
        if kind == PARAM:
            return self.params[name]
        return 10_000

    def balance(self, pattern: Pattern) -> int:
        return self.balances.get(pattern.fill(self.fields), 0)

    def metadata(self, pattern: Pattern) -> dict[str, str]:
        return self.meta.get(pattern.fill(self.fields), {})


def parse(text: str, want: str | None = INT) -> Node:
    return parse_expression(text, NAMES.get, want=want)


def ev(text: str, want: str | None = INT, scope: FakeScope | None = None):
    return parse(text, want).evaluate(scope or FakeScope())


def parse_error(text: str, want: str | None = INT) -> ExprError:
    with pytest.raises(ExprError) as caught:
        parse(text, want)
    return caught.value


# ---------------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(("text", "expected"), [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("2 * 3 - 4 * 5", -14),
    ("10 - 3 - 2", 5),  # left-associative
    ("10 - (3 - 2)", 9),
    ("-2 * 3", -6),
    ("-(2 + 3)", -5),
    ("--5", 5),
    ("2 - -3", 5),
    ("2*-3", -6),
    ("1_000 + 1", 1_001),
    ("amount - other * 2", 986),
    ("((((amount))))", 1_000),
    ("bank_unit", 10_000),
    ("-amount", -1_000),
    (f"{INT64_MAX}", INT64_MAX),
])
def test_integer_precedence_and_parentheses(text, expected):
    assert ev(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("1 < 2 and 2 < 1 or 1 == 1", True),  # and binds tighter than or
    ("1 == 1 or 1 == 2 and 1 == 3", True),
    ("(1 == 1 or 1 == 2) and 1 == 3", False),
    ("not 1 == 2", True),
    ("not (1 == 1 and 1 == 2)", True),
    ("not not 1 == 1", True),
    ("1 + 1 == 2", True),  # arithmetic binds tighter than comparison
    ("amount >= 1000 and amount <= 1000 and amount != 999", True),
    ("amount > 1000 or amount < 1000", False),
    ("'a' == 'a'", True),
    ("'a' != 'a'", False),
])
def test_guard_precedence(text, expected):
    assert ev(text, BOOL) is expected


def test_and_or_stop_early_so_a_guard_can_test_before_it_reads():
    scope = FakeScope(metadata={"m:m1": {"n": "not a number"}})
    assert ev("1 == 2 and meta_int('m:{merchant}', 'n', 0) == 0", BOOL, scope) is False
    assert ev("1 == 1 or meta_int('m:{merchant}', 'n', 0) == 0", BOOL, scope) is True
    with pytest.raises(LedgerError):
        ev("1 == 1 and meta_int('m:{merchant}', 'n', 0) == 0", BOOL, scope)


# -------------------------------------------------------------------------------------- functions


@pytest.mark.parametrize(("text", "expected"), [
    ("bps(1999, 250)", 49),  # 49.975 down
    ("bps_up(1999, 250)", 50),
    ("bps_round(1999, 250)", 50),
    ("bps(2000, 250)", 50),
    ("bps_up(2000, 250)", 50),  # exact: no extra unit
    ("bps_round(1, 5000)", 1),  # exactly half rounds up
    ("bps_round(1, 4999)", 0),
    ("bps_up(1, 1)", 1),
    ("bps(1, 9999)", 0),
    ("bps(0, 250)", 0),
    ("bps(amount, fee_bps)", 25),
    (f"bps({INT64_MAX}, 10000)", INT64_MAX),  # the product may pass 64 bits; the result does not
    ("min(3, 1, 2)", 1),
    ("max(3, 1, 2)", 3),
    ("min(amount, 5)", 5),
    ("max(0, 5 - 9)", 0),
    ("round_down(1234567, 10000)", 1_230_000),
    ("round_down(10000, 10000)", 10_000),
    ("round_down(9999, 10000)", 0),
    ("round_down(-5, 10)", -10),  # toward minus infinity, like x - x % unit
    ("round_down(amount, bank_unit)", 0),
])
def test_integer_functions(text, expected):
    assert ev(text) == expected


def test_balance_reads_the_view_and_is_zero_for_an_absent_account():
    scope = FakeScope(balances={"wallet:m1": 1234})
    assert ev("balance('wallet:{merchant}')", scope=scope) == 1234
    assert ev("balance('other:{merchant}')", scope=scope) == 0
    assert ev("balance('fees:{currency}') + 1", scope=scope) == 1


def test_meta_and_meta_int():
    scope = FakeScope(metadata={"w:m1": {"kyc": "verified", "min": "500", "neg": "-7"}})
    assert ev("meta('w:{merchant}', 'kyc')", None, scope) == "verified"
    assert ev("meta('w:{merchant}', 'absent')", None, scope) == ""
    assert ev("meta('nope:{merchant}', 'kyc')", None, scope) == ""
    assert ev("meta('w:{merchant}', 'kyc') == 'verified'", BOOL, scope) is True
    assert ev("meta_int('w:{merchant}', 'min', 0)", scope=scope) == 500
    assert ev("meta_int('w:{merchant}', 'neg', 0)", scope=scope) == -7
    assert ev("meta_int('w:{merchant}', 'absent', fee_bps)", scope=scope) == 250
    assert ev("meta_int('nope:{merchant}', 'min', 3)", scope=scope) == 3


@pytest.mark.parametrize("stored", ["1.5", "1_000", " 7", "", "abc", "٣", "+5", "99999999999999999999"])
def test_meta_int_of_a_non_integer_is_a_precondition_failure(stored):
    scope = FakeScope(metadata={"w:m1": {"min": stored}})
    with pytest.raises(LedgerError) as caught:
        ev("meta_int('w:{merchant}', 'min', 0)", scope=scope)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_METADATA_INVALID")


@pytest.mark.parametrize(("text", "reason"), [
    ("bps(-1, 250)", "RULE_AMOUNT_NEGATIVE"),
    ("bps(amount, -1)", "RULE_AMOUNT_NEGATIVE"),
    ("bps_up(-1, 1)", "RULE_AMOUNT_NEGATIVE"),
    ("round_down(amount, 0)", "RULE_UNIT_INVALID"),
    ("round_down(amount, -5)", "RULE_UNIT_INVALID"),
    (f"{INT64_MAX} + 1", "AMOUNT_TOO_LARGE"),
    (f"-{INT64_MAX} - 2", "AMOUNT_TOO_LARGE"),
    ("amount * amount * amount * amount * amount * amount * amount", "AMOUNT_TOO_LARGE"),
    (f"-(0 - {INT64_MAX} - 1)", "AMOUNT_TOO_LARGE"),
    (f"bps_up({INT64_MAX}, 10001)", "AMOUNT_TOO_LARGE"),
])
def test_evaluation_errors_are_invalid_argument(text, reason):
    with pytest.raises(LedgerError) as caught:
        ev(text)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, reason)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("text", "want", "message", "column"), [
    ("amount +", INT, "expected a number, a name or '(', got end of expression", 9),
    ("fee + 1", INT, "unknown name 'fee'", 1),
    ("amount + fee", INT, "unknown name 'fee'", 10),
    ("foo(1)", INT, "unknown function 'foo'", 1),
    ("__import__('os')", INT, "names start with a letter", 1),
    ("amount.__class__", INT, "amounts are whole integers of atomic units; there are no fractions or attributes", 7),
    ("amount / 2", INT, "there is no division: use bps(), bps_up(), bps_round() or round_down()", 8),
    ("1.5", INT, "amounts are whole integers of atomic units; there are no fractions or attributes", 2),
    ('"x" == "x"', BOOL, "strings use single quotes", 1),
    ("'abc", BOOL, "string is never closed", 1),
    ("amount = 1", BOOL, "comparison is '=='", 8),
    ("!amount", BOOL, "use 'not' or '!='", 1),
    ("1abc", INT, "unexpected character 'a'", 2),
    ("amount == 1", INT, "expected an integer amount, got a true/false check", 1),
    ("amount", BOOL, "expected a true/false check, got an integer", 1),
    ("'abc'", BOOL, "expected a true/false check, got a string", 1),
    ("meta('a:{merchant}', 'k')", INT, "expected an integer amount, got a string", 1),
    ("'a' + 1", INT, "'+' needs an integer, got a string", 1),
    ("1 + 'a'", INT, "'+' needs an integer, got a string", 5),
    ("2 * (1 == 1)", INT, "'*' needs an integer, got a true/false check", 6),
    ("-'a'", INT, "unary '-' needs an integer, got a string", 2),
    ("not amount", BOOL, "'not' needs a true/false check, got an integer", 5),
    ("amount and 1 == 1", BOOL, "'and' needs a true/false check, got an integer", 1),
    ("1 < 2 < 3", BOOL, "comparisons cannot be chained; join them with 'and'", 7),
    ("amount == 'x'", BOOL, "'==' cannot compare an integer with a string", 8),
    ("'a' < 'b'", BOOL, "'<' cannot compare a string with a string", 5),
    ("bps(amount)", INT, "bps() takes 2 arguments, got 1", 1),
    ("bps(amount, 1, 2)", INT, "bps() takes 2 arguments, got 3", 1),
    ("min(amount)", INT, "min() takes at least 2 arguments, got 1", 1),
    ("max()", INT, "max() takes at least 2 arguments, got 0", 1),
    ("bps('x', 1)", INT, "argument 1 of bps() needs an integer, got a string", 5),
    ("balance(amount)", INT,
     "argument 1 of balance() must be a quoted account pattern such as 'merchant:{merchant}:{currency}/settled'", 9),
    ("balance('a:{b c}')", INT, "account pattern: placeholder {b c} must be a name "
                                "(a letter, then letters, digits or _)", 12),
    ("balance('a b')", INT, "account pattern: character ' ' cannot be part of an account code", 11),
    ("meta_int('a:{merchant}', 'k', 'x')", INT, "argument 3 of meta_int() needs an integer, got a string", 31),
    ("remainder + 1", INT, "'remainder' can only be the whole amount of a line", 1),
    ("amount amount", INT, "unexpected 'amount'", 8),
    ("(1 + 2", INT, "expected ')', got end of expression", 7),
    ("min(1, 2", INT, "expected ')', got end of expression", 9),
    ("and", BOOL, "unexpected 'and'", 1),
    ("", INT, "empty expression", 1),
    ("   ", INT, "empty expression", 1),
    ("9223372036854775808", INT, "integer is beyond 64 bits", 1),
    ("1 +* 2", INT, "expected a number, a name or '(', got '*'", 4),
])
def test_parse_errors_name_the_problem_and_the_column(text, want, message, column):
    error = parse_error(text, want)
    assert (error.message, error.column) == (message, column)
    assert str(error) == f'{message} at column {column} of "{text}"'


def test_nesting_and_length_are_bounded():
    depth = limits.EXPRESSION_DEPTH_MAX
    assert ev("(" * depth + "1" + ")" * depth) == 1
    error = parse_error("(" * (depth + 1) + "1" + ")" * (depth + 1))
    assert error.message == f"nested deeper than {depth} levels" and error.column == depth + 1
    assert parse_error("-" * (depth + 1) + "1").message == f"nested deeper than {depth} levels"
    assert parse_error("not " * (depth + 1) + "1 == 1", BOOL).message == f"nested deeper than {depth} levels"
    long_text = " + ".join(["1"] * 200)
    assert len(long_text) > limits.EXPRESSION_LENGTH_MAX
    assert parse_error(long_text).message == f"longer than {limits.EXPRESSION_LENGTH_MAX} characters"
    # A long flat sum is one node, not a deep tree: no depth limit and no deep recursion.
    assert ev(" + ".join(["1"] * 120)) == 120


def test_remainder_only_as_a_whole_amount():
    assert parse_amount("remainder", NAMES.get) == REMAINDER
    assert parse_amount("  remainder ", NAMES.get) == REMAINDER
    assert parse_amount("amount", NAMES.get).evaluate(FakeScope()) == 1_000
    with pytest.raises(ExprError):
        parse_amount("(remainder)", NAMES.get)


def test_tokens_and_pattern_references():
    assert [t.kind for t in tokenize("bps(amount, 10_000) >= 'x'")] == [
        "name", "op", "name", "op", "int", "op", "op", "str", "end"]
    node = parse("balance('a:{merchant}') + meta_int('b:{currency}', 'k', 0)")
    assert [ref.pattern.text for ref in pattern_refs(node)] == ["a:{merchant}", "b:{currency}"]
    assert [ref.pos for ref in pattern_refs(node)] == [8, 35]


def test_the_tree_is_made_of_expression_nodes_only():
    node = parse("max(0, bps(amount, fee_bps) - -other * 2)")
    assert all(isinstance(n, Node) and type(n).__module__ == "tally.rules.expr" for n in walk(node))


# ------------------------------------------------------------------------------- package hygiene


def _rules_sources() -> list[Path]:
    return sorted(Path(tally.rules.__file__).parent.glob("*.py"))


def test_rules_package_imports_only_the_standard_library_and_the_domain():
    for path in _rules_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            for module in modules:
                top = module.split(".")[0]
                allowed = (module.startswith(("tally.domain", "tally.rules")) or module == "tally.rules"
                           or top in sys.stdlib_module_names)
                assert allowed, f"{path.name} imports {module}"


def test_rules_package_never_evaluates_python():
    forbidden = {"eval", "exec", "compile", "__import__", "literal_eval"}
    for path in _rules_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                assert node.id not in forbidden, f"{path.name}:{node.lineno} uses {node.id}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in forbidden - {"compile"}, f"{path.name}:{node.lineno} uses {node.attr}"


TOKENS = st.sampled_from(["amount", "other", "fee_bps", "bank_unit", "1", "0", "10_000", "+", "-", "*", "(", ")",
                          ",", "==", "!=", "<", ">=", "and", "or", "not", "remainder", "'w:{merchant}'", "'k'",
                          "bps", "min", "max", "meta", "meta_int", "balance", "round_down", "bps_round", " ", "/",
                          ".", "_", '"', "'"])


@settings(max_examples=1_000)
@given(tokens=st.lists(TOKENS, max_size=40), want=st.sampled_from([INT, BOOL, None]))
def test_any_text_parses_or_fails_with_a_position(tokens, want):
    text = " ".join(tokens)
    try:
        node = parse(text, want)
    except ExprError as exc:
        assert 0 <= exc.pos <= len(text)
        return
    try:
        value = node.evaluate(FakeScope())
    except LedgerError:
        return
    assert type(value) is {INT: int, BOOL: bool, None: type(value)}[want]
    assert not isinstance(value, int) or isinstance(value, bool) or -(2**63) <= value < 2**63
