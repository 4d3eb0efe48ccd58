"""Account patterns: parsing, filling from a flow's fields, matching codes, overlap, and template lookup."""

from __future__ import annotations

import pytest

from tally.domain.accounts import AccountType, FloorPolicy, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.rules import load_default_rule_set
from tally.rules.patterns import PatternError, Slot, overlaps, parse_pattern


def code(text: str):
    return parse_pattern(text, code=True)


def test_parts_names_and_shape():
    pattern = code("channel_clearing:{channel}:{currency}")
    assert pattern.parts == ("channel_clearing:", Slot("channel"), ":", Slot("currency"))
    assert pattern.names == ("channel", "currency")
    assert pattern.shape == ("channel_clearing:", None, ":", None)
    assert code("merchant:{party}:{currency}/settled").shape == code("merchant:{merchant}:{currency}/settled").shape
    assert code("bank_deposit:USD").names == ()


@pytest.mark.parametrize(("text", "message", "offset"), [
    ("a:{b", "'{' is never closed", 2),
    ("a:b}", "'}' without '{'", 3),
    ("a b", "character ' ' cannot be part of an account code", 1),
    ("a:{}", "placeholder {} must be a name (a letter, then letters, digits or _)", 2),
    ("a:{1x}", "placeholder {1x} must be a name (a letter, then letters, digits or _)", 2),
    ("a:{x}{y}", "two placeholders must be separated by literal text", 5),
    ("", "an account pattern cannot be empty", 0),
    (":{x}", "does not make a valid account code (start with a letter or digit, at most 128 characters of "
             "letters, digits and _.:/@-)", 0),
])
def test_bad_account_patterns(text, message, offset):
    with pytest.raises(PatternError) as caught:
        code(text)
    assert (caught.value.message, caught.value.offset) == (message, offset)


def test_memo_patterns_take_any_text_and_render_absent_fields_empty():
    memo = parse_pattern("usage by {consumer} (affiliate {affiliate})!", code=False)
    assert memo.render({"consumer": "c1"}) == "usage by c1 (affiliate )!"
    with pytest.raises(PatternError):
        parse_pattern("broken {", code=False)


def test_fill():
    pattern = code("channel_clearing:{channel}:{currency}")
    assert pattern.fill({"channel": "alipay", "currency": "USD", "other": "x"}) == "channel_clearing:alipay:USD"
    assert code("a:{x}").fill({"x": "user@example.com/1_2-3.4"}) == "a:user@example.com/1_2-3.4"


@pytest.mark.parametrize(("fields", "reason", "field"), [
    ({"currency": "USD"}, "FLOW_FIELD_MISSING", "channel"),
    ({"channel": "", "currency": "USD"}, "FLOW_FIELD_MISSING", "channel"),
    ({"channel": "a:b", "currency": "USD"}, "FLOW_FIELD_INVALID", "channel"),  # a colon would add a segment
    ({"channel": "a b", "currency": "USD"}, "FLOW_FIELD_INVALID", "channel"),
    ({"channel": "x" * 200, "currency": "USD"}, "ACCOUNT_CODE_INVALID", "account"),
])
def test_fill_errors(fields, reason, field):
    with pytest.raises(LedgerError) as caught:
        code("channel_clearing:{channel}:{currency}").fill(fields)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, reason)
    assert caught.value.metadata["field"] == field


def test_match():
    pattern = code("channel_clearing:{channel}:{currency}")
    assert pattern.match("channel_clearing:alipay:USD") == {"channel": "alipay", "currency": "USD"}
    assert pattern.match("channel_clearing:ali:pay:USD") is None  # values never hold a colon
    assert pattern.match("channel_clearing::USD") is None
    assert pattern.match("channel_clearing:alipay:USD:x") is None
    assert pattern.match("xchannel_clearing:alipay:USD") is None
    assert code("a.b:{x}").match("aXb:1") is None  # literal dots are literal


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("consumer:{consumer}", "consumer:{x}", True),
    ("a{x}", "{y}b", True),  # "ab" matches both
    ("a:{x}", "b:{x}", False),
    ("x:{a}:{b}", "x:{a}", False),
    ("bank:{c}", "bank:USD", True),
    ("bank:{c}", "bank:US:D", False),
    ("{a}", "x:{b}", False),
    ("{a}", "xyz", True),
    ("m_{a}", "m_settled:{b}", False),
    ("m{a}:x", "m{b}", False),
    ("m{a}:x", "{b}:{c}", True),
    ("merchant_settled:{m}", "merchant_settled_x:{m}", False),
    ("pre{a}post", "prepost", False),  # a placeholder is at least one character
    ("pre{a}post", "pre_post", True),
    # {currency} is three capital letters: a main account's pattern never matches its sub-accounts' codes.
    ("merchant:{m}:{currency}", "merchant:{m}:{currency}/pending", False),
    ("merchant:{m}:{x}", "merchant:{m}:{currency}/pending", True),
    ("bank:{currency}", "bank:USD", True),
    ("bank:{currency}", "bank:usd", False),
    ("bank:{currency}", "bank:US", False),
    ("{currency}x", "ABCx", True),
])
def test_overlap_is_exact(a, b, expected):
    assert overlaps(code(a), code(b)) is expected
    assert overlaps(code(b), code(a)) is expected


def test_template_for_on_the_default_rule_set():
    rules = load_default_rule_set()
    template, values = rules.template_for("merchant:m-42:USD/settled")
    assert (template.type, template.normal_side, template.floor) == (
        AccountType.DEPOSIT, Side.CREDIT, FloorPolicy.NON_NEGATIVE)
    assert values == {"merchant": "m-42", "currency": "USD"}
    template, values = rules.template_for("merchant:m-42:USD")  # the main account
    assert template.pattern.text == "merchant:{merchant}:{currency}"
    assert values == {"merchant": "m-42", "currency": "USD"}
    template, values = rules.template_for("processor_clearing:stripe:EUR")
    assert (template.type, template.normal_side, template.floor) == (
        AccountType.INTERNAL, Side.DEBIT, FloorPolicy.UNBOUNDED)
    assert values == {"processor": "stripe", "currency": "EUR"}
    template, _ = rules.template_for("merchant:m1:USD/guarantee_due")
    assert (template.normal_side, template.floor) == (Side.DEBIT, FloorPolicy.NON_NEGATIVE)
    assert rules.template_for("nope:1") is None
    assert rules.template_for("consumer:a:b") is None
    assert rules.template_for("consumer:a:usd") is None  # a currency is three capital letters
    assert rules.template_for("consumer:") is None
    assert rules.template_for("merchant_settled:m1") is None  # the codes of rule sets before 2026.12.1


def test_template_opens_a_new_account():
    rules = load_default_rule_set()
    template, _ = rules.template_for("platform_fee_income:USD")
    spec = template.new_account("platform_fee_income:USD", "USD")
    assert (spec.code, spec.type, spec.currency, spec.normal_side, spec.floor_policy) == (
        "platform_fee_income:USD", AccountType.INTERNAL, "USD", Side.CREDIT, FloorPolicy.UNBOUNDED)
