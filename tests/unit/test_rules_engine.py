"""Building vouchers from facts: rule choice, guards, lets, remainder, zero lines, splits, errors, accounts_needed."""

from __future__ import annotations

import pytest

from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.facts import Facts, Share
from tally.domain.money import DEFAULT_CURRENCIES, parse_currencies
from tally.domain.vouchers import VoucherDraft
from tally.rules import VOUCHER_METADATA_KEY, Mode, parse_rule_set

CURRENCIES = parse_currencies(DEFAULT_CURRENCIES)
D, C = Side.DEBIT, Side.CREDIT

RULES = parse_rule_set("""
version = "e1"
[params]
fee_bps = 1000
[flows.pay]
parties = ["payer", "payee", "agent"]
values = ["amount", "extra"]
tags = ["kind", "note"]
[flows.back]
values = ["amount"]
[flows.double]
parties = ["payer", "payee"]
values = ["amount"]
[accounts."wallet:{owner}"]
type = "deposit"
[accounts."fees:{currency}"]
type = "internal"
normal_side = "credit"
[accounts."pool:{currency}"]
type = "internal"
normal_side = "debit"

[[rules]]
id = "pay.special"
flow = "pay"
when = { kind = "special" }
[rules.let]
unused = "extra * 2"
[[rules.requires]]
check = "balance('wallet:{payer}') >= amount"
reason = "NOT_ENOUGH"
message = "payer balance too low"
[[rules.requires]]
check = "meta('wallet:{payee}', 'open') != 'no'"
reason = "PAYEE_CLOSED"
kind = "invalid_argument"
[[rules.vouchers]]
name = "main"
memo = "special {kind} {amount} {currency} by {payer}{note}"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{payee}"
amount = "amount"
memo = "to {payee}"
[[rules.vouchers.lines]]
side = "debit"
account = "wallet:{payer}"
amount = "remainder"

[[rules]]
id = "pay.default"
flow = "pay"
[[rules.vouchers]]
name = "main"
[[rules.vouchers.lines]]
side = "debit"
account = "wallet:{payer}"
amount = "amount"
[[rules.vouchers.lines]]
side = "credit"
account = "fees:{currency}"
amount = "bps(amount, fee_bps)"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{agent}"
amount = "extra"
when = "agent"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{party}"
split = "shares"
split_default = "payee"
amount = "remainder"
[[rules.vouchers]]
name = "bonus"
[[rules.vouchers.lines]]
side = "debit"
account = "pool:{currency}"
amount = "extra"
when = "not agent"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{payee}"
amount = "remainder"

[[rules]]
id = "back"
flow = "back"
mode = "proportional_reversal"

[[rules]]
id = "double"
flow = "double"
[[rules.vouchers]]
name = "main"
[[rules.vouchers.lines]]
side = "debit"
account = "wallet:{payer}"
amount = "amount * 2 - amount"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{payee}"
amount = "remainder"
""")


class FakeView:
    """A LedgerView over dicts that records what was read."""

    def __init__(self, balances=None, metadata=None):
        self.balances, self.meta, self.reads = balances or {}, metadata or {}, set()

    def available(self, code):
        self.reads.add(code)
        return self.balances.get(code)

    def metadata(self, code):
        self.reads.add(code)
        return self.meta.get(code)


def pay(amount=1_000, extra=0, shares=(), currency="USD", **parties_and_tags) -> Facts:
    parties = {"payer": "alice", "payee": "bob"}
    tags = {}
    for key, value in parties_and_tags.items():
        (tags if key in ("kind", "note") else parties)[key] = value
    return Facts("pay", currency, {"amount": amount, "extra": extra}, parties, tags, tuple(shares))


def lines_of(draft: VoucherDraft) -> list[tuple[str, Side, int]]:
    return [(line.account.code, line.side, line.amount) for line in draft.lines]


def build(facts: Facts, view: FakeView | None = None):
    return RULES.build(facts, view or FakeView(), CURRENCIES)


def refused(facts: Facts, view: FakeView | None = None) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        build(facts, view)
    return caught.value


def test_default_rule_with_fee_and_remainder():
    (draft,) = build(pay(1_005))
    assert lines_of(draft) == [("wallet:alice", D, 1_005), ("fees:USD", C, 100), ("wallet:bob", C, 905)]
    assert (draft.flow_type, draft.rule_id, draft.rule_set_version, draft.memo) == ("pay", "pay.default", "e1", "")
    assert draft.metadata == {VOUCHER_METADATA_KEY: "main"}
    assert all(line.currency == "USD" for line in draft.lines)


def test_line_when_keeps_or_drops_a_line_and_the_remainder_follows():
    lines = RULES.rules[1].vouchers
    assert [str(line.when) for voucher in lines for line in voucher.lines if line.when] == ["agent", "not agent"]
    main, = build(pay(1_000, extra=50, agent="carol"))
    assert lines_of(main) == [("wallet:alice", D, 1_000), ("fees:USD", C, 100), ("wallet:carol", C, 50),
                              ("wallet:bob", C, 850)]
    # Without an agent the extra goes through the second voucher, funded by the pool.
    main, bonus = build(pay(1_000, extra=50))
    assert lines_of(main) == [("wallet:alice", D, 1_000), ("fees:USD", C, 100), ("wallet:bob", C, 900)]
    assert lines_of(bonus) == [("pool:USD", D, 50), ("wallet:bob", C, 50)]
    assert bonus.metadata == {VOUCHER_METADATA_KEY: "bonus"}


def test_zero_lines_are_dropped_and_an_empty_voucher_is_skipped():
    (draft,) = build(pay(9))  # fee 0: the fee line goes, and extra 0 leaves the bonus voucher empty
    assert lines_of(draft) == [("wallet:alice", D, 9), ("wallet:bob", C, 9)]


def test_a_flow_that_posts_nothing_is_refused():
    error = refused(pay(0))
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "FLOW_POSTS_NOTHING")


def test_negative_amounts_are_refused():
    error = refused(pay(1_000, extra=901, agent="carol"))  # remainder would be -1
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "RULE_AMOUNT_NEGATIVE")
    error = refused(pay(1_000, extra=-1))
    assert error.reason == "RULE_AMOUNT_NEGATIVE"
    error = refused(pay(-5))
    assert error.reason == "RULE_AMOUNT_NEGATIVE"


def test_splits_spread_the_line_over_the_share_table():
    shares = (Share("bob", 3_333), Share("dave", 3_333), Share("erin", 3_334))
    (draft, _) = build(pay(1_000, extra=1, shares=shares))
    assert lines_of(draft) == [("wallet:alice", D, 1_000), ("fees:USD", C, 100), ("wallet:bob", C, 300),
                               ("wallet:dave", C, 300), ("wallet:erin", C, 300)]
    (draft,) = build(pay(1_010, shares=shares))  # 909 over 3: one leftover unit to the largest remainder
    assert [amount for _, _, amount in lines_of(draft)[2:]] == [303, 303, 303]
    (draft,) = build(pay(1_011, shares=shares))  # 910: 303.3, 303.3, 303.4 -> the leftover goes to erin
    assert [amount for _, _, amount in lines_of(draft)[2:]] == [303, 303, 304]
    (draft,) = build(pay(12, shares=(Share("bob", 9_999), Share("dave", 1))))  # dave's part is 0: dropped
    assert lines_of(draft) == [("wallet:alice", D, 12), ("fees:USD", C, 1), ("wallet:bob", C, 11)]


@pytest.mark.parametrize("shares", [
    (Share("bob", 5_000),),
    (Share("bob", 5_000), Share("bob", 5_000)),
    (Share("bob", 10_000), Share("dave", 0)),
    tuple(Share(f"p{i}", 1) for i in range(33)),
])
def test_bad_share_tables(shares):
    error = refused(pay(100, shares=shares))
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "SHARES_INVALID")


def test_a_share_table_on_a_rule_without_splits_is_refused():
    facts = Facts("double", "USD", {"amount": 5}, {"payer": "a", "payee": "b"}, shares=(Share("x", 10_000),))
    with pytest.raises(LedgerError) as caught:
        build(facts)
    assert caught.value.reason == "SHARES_INVALID"


def test_a_share_to_the_payer_puts_one_account_on_both_sides():
    error = refused(pay(100, shares=(Share("alice", 10_000),)))
    assert error.reason == "SAME_ACCOUNT_BOTH_SIDES"


@pytest.mark.parametrize(("facts", "reason", "field"), [
    (Facts("pay", "USD", {"amount": 5}, {"payer": "alice"}), "FLOW_FIELD_MISSING", "payee"),  # split default
    (Facts("pay", "USD", {"amount": 5}, {"payee": "bob"}), "FLOW_FIELD_MISSING", "payer"),
    (Facts("pay", "USD", {"amount": 5}, {"payer": "", "payee": "bob"}), "FLOW_FIELD_MISSING", "payer"),
    (Facts("pay", "USD", {}, {"payer": "alice", "payee": "bob"}), "FLOW_FIELD_MISSING", "amount"),
    (Facts("pay", "USD", {"amount": 5}, {"payer": "a:b", "payee": "bob"}), "FLOW_FIELD_INVALID", "payer"),
    (Facts("pay", "USD", {"amount": "5"}, {"payer": "a", "payee": "bob"}), "FLOW_FIELD_INVALID", "amount"),
    (Facts("pay", "USD", {"amount": 2**63}, {"payer": "a", "payee": "bob"}), "AMOUNT_TOO_LARGE", "amount"),
])
def test_missing_or_malformed_fields(facts, reason, field):
    error = refused(facts)
    assert (error.kind, error.reason, error.metadata.get("field")) == (ErrorKind.INVALID_ARGUMENT, reason, field)


def test_an_absent_optional_party_on_a_dropped_line_is_fine():
    (draft, _) = build(pay(100, extra=3))  # no agent: the agent line is not kept, so {agent} is never filled
    assert "wallet:" not in [code for code, _, _ in lines_of(draft)]


def test_overflow_in_an_expression():
    facts = Facts("double", "USD", {"amount": 2**62 - 1}, {"payer": "a", "payee": "b"})
    assert lines_of(build(facts)[0]) == [("wallet:a", D, 2**62 - 1), ("wallet:b", C, 2**62 - 1)]
    # Every step must fit 64 bits, even when the final result would: amount * 2 does not here.
    facts = Facts("double", "USD", {"amount": 2**62}, {"payer": "a", "payee": "b"})
    error = refused(facts)
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "AMOUNT_TOO_LARGE")


def test_unknown_currency_flow_and_rule():
    assert refused(pay(100, currency="XYZ")).reason == "CURRENCY_UNKNOWN"
    assert refused(Facts("nope", "USD")).reason == "FLOW_TYPE_UNKNOWN"


def test_first_matching_rule_wins_and_guards_run_first():
    view = FakeView({"wallet:alice": 1_000})
    (draft,) = build(pay(1_000, kind="special", note="!"), view)
    assert draft.rule_id == "pay.special"
    assert lines_of(draft) == [("wallet:bob", C, 1_000), ("wallet:alice", D, 1_000)]
    assert draft.memo == "special special 1000 USD by alice!"
    assert [line.memo for line in draft.lines] == ["to bob", ""]
    error = refused(pay(1_001, kind="special"), view)
    assert (error.kind, error.reason, error.message) == (ErrorKind.FAILED_PRECONDITION, "NOT_ENOUGH",
                                                         "payer balance too low")
    assert error.metadata == {"rule": "pay.special"}
    closed = FakeView({"wallet:alice": 1_000}, {"wallet:bob": {"open": "no"}})
    error = refused(pay(1_000, kind="special"), closed)
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "PAYEE_CLOSED")
    assert "meta('wallet:{payee}', 'open') != 'no'" in error.message
    # Any other kind falls through to the default rule.
    assert build(pay(1_000, kind="other"))[0].rule_id == "pay.default"


def test_an_unused_let_is_never_evaluated():
    facts = Facts("pay", "USD", {"amount": 10}, {"payer": "alice", "payee": "bob"}, {"kind": "special"})
    (draft,) = build(facts, FakeView({"wallet:alice": 10}))  # no `extra`: the let that reads it is unused
    assert draft.rule_id == "pay.special"


def test_proportional_reversal_rules_are_applied_by_the_service():
    facts = Facts("back", "USD", {"amount": 5})
    assert RULES.mode_for(facts) is Mode.PROPORTIONAL_REVERSAL
    assert RULES.accounts_needed(facts) == set()
    error = refused(facts)
    assert error.reason == "RULE_MODE_MISMATCH"
    assert RULES.mode_for(pay()) is Mode.VOUCHERS


def test_accounts_needed_lists_posted_and_read_accounts_before_evaluation():
    shares = (Share("bob", 5_000), Share("dave", 5_000))
    assert RULES.accounts_needed(pay(100, shares=shares)) == {
        "wallet:alice", "fees:USD", "wallet:bob", "wallet:dave", "pool:USD"}
    assert RULES.accounts_needed(pay(100, agent="carol")) == {
        "wallet:alice", "fees:USD", "wallet:carol", "wallet:bob"}  # the pool line is not kept with an agent
    assert RULES.accounts_needed(pay(100, kind="special")) == {"wallet:alice", "wallet:bob"}
    with pytest.raises(LedgerError) as caught:
        RULES.accounts_needed(Facts("pay", "USD", {"amount": 5}, {"payee": "bob"}))
    assert caught.value.reason == "FLOW_FIELD_MISSING"


def test_accounts_needed_covers_everything_build_touches():
    view = FakeView({"wallet:alice": 10**6})
    for facts in (pay(1_000, kind="special"), pay(1_000, extra=5), pay(1_000, extra=5, agent="c"),
                  pay(1_000, shares=(Share("x", 1), Share("y", 9_999)))):
        drafts = build(facts, view)
        touched = {line.account.code for draft in drafts for line in draft.lines} | view.reads
        assert touched <= RULES.accounts_needed(facts)


def test_bank_unit_follows_the_currency():
    rules = parse_rule_set("""
version = "b"
[flows.p]
parties = ["a"]
values = ["amount"]
[accounts."w:{a}"]
type = "deposit"
[accounts."bank:{currency}"]
type = "internal"
normal_side = "debit"
[[rules]]
id = "p"
flow = "p"
[[rules.vouchers]]
name = "v"
[[rules.vouchers.lines]]
side = "debit"
account = "w:{a}"
amount = "round_down(amount, bank_unit)"
[[rules.vouchers.lines]]
side = "credit"
account = "bank:{currency}"
amount = "remainder"
""")
    for currency, expected in (("USD", 1_230_000), ("JPY", 1_234_000)):
        (draft,) = rules.build(Facts("p", currency, {"amount": 1_234_567}, {"a": "x"}), FakeView(), CURRENCIES)
        assert [line.amount for line in draft.lines] == [expected, expected]
