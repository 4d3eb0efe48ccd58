"""The packaged default rule set: every flow balances for any amounts, nothing is lost or created, payouts
round down to the bank unit, guards give their documented reasons."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.accounts import AccountType, FloorPolicy, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.facts import Facts, Share
from tally.domain.money import DEFAULT_CURRENCIES, parse_currencies
from tally.domain.vouchers import VoucherDraft
from tally.rules import Mode, check_file, load_default_rule_set, parse_rule_set

RULES = load_default_rule_set()
CURRENCIES = parse_currencies(DEFAULT_CURRENCIES)
D, C = Side.DEBIT, Side.CREDIT
AMOUNTS = st.integers(min_value=1, max_value=10**15)
DEFAULT_TEXT = resources.files("tally.rules").joinpath("default.toml").read_text(encoding="utf-8")


class FakeView:
    def __init__(self, balances=None, metadata=None):
        self.balances, self.meta, self.reads = balances or {}, metadata or {}, set()

    def available(self, code):
        self.reads.add(code)
        return self.balances.get(code)

    def metadata(self, code):
        self.reads.add(code)
        return self.meta.get(code)


def bps(x: int, rate: int) -> int:
    return x * rate // 10_000


def build(facts: Facts, view: FakeView | None = None, rules=RULES) -> tuple[VoucherDraft, ...]:
    view = view or FakeView()
    drafts = rules.build(facts, view, CURRENCIES)
    check_invariants(rules, facts, drafts, view)
    return drafts


def check_invariants(rules, facts: Facts, drafts: tuple[VoucherDraft, ...], view: FakeView) -> None:
    """What must hold for any voucher of any flow: balanced per currency, positive amounts, every account
    has a template and was announced by accounts_needed."""
    needed = rules.accounts_needed(facts)
    for draft in drafts:
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for line in draft.lines:
            assert isinstance(line.amount, int) and line.amount > 0
            totals[line.currency][0 if line.side is D else 1] += line.amount
            assert rules.template_for(line.account.code) is not None
            assert line.account.code in needed
        assert all(debits == credits for debits, credits in totals.values())
        assert (draft.flow_type, draft.rule_set_version) == (facts.flow_type, "2026.12.1")
    assert view.reads <= needed


def amounts(draft: VoucherDraft) -> dict[tuple[str, Side], int]:
    out: dict[tuple[str, Side], int] = defaultdict(int)
    for line in draft.lines:
        out[(line.account.code, line.side)] += line.amount
    return out


def refused(facts: Facts, view: FakeView | None = None) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        RULES.build(facts, view or FakeView(), CURRENCIES)
    return caught.value


def test_loads_with_every_flow():
    assert check_file(resources.files("tally.rules").joinpath("default.toml")) == []
    assert RULES.flow_types == {"funding", "usage", "acquisition", "refund", "settlement", "guarantee", "payout",
                                "reconciliation", "payout_request", "payout_step"}
    assert RULES.version == "2026.12.1"


@pytest.mark.parametrize(("code", "account_type", "side", "floor"), [
    ("consumer:c:USD", AccountType.DEPOSIT, C, FloorPolicy.NON_NEGATIVE),
    ("affiliate:a:USD", AccountType.DEPOSIT, C, FloorPolicy.NON_NEGATIVE),
    ("merchant:m:USD/pending", AccountType.DEPOSIT, C, FloorPolicy.NON_NEGATIVE),
    ("merchant:m:USD/settled", AccountType.DEPOSIT, C, FloorPolicy.NON_NEGATIVE),
    ("merchant:m:USD/guarantee", AccountType.SECURITY_DEPOSIT, C, FloorPolicy.NON_NEGATIVE),
    ("merchant:m:USD/guarantee_due", AccountType.INTERNAL, D, FloorPolicy.NON_NEGATIVE),
    ("merchant:m:USD/guarantee_commitment", AccountType.INTERNAL, C, FloorPolicy.UNBOUNDED),
    ("processor_clearing:p:USD", AccountType.INTERNAL, D, FloorPolicy.UNBOUNDED),
    ("channel_clearing:ch:USD", AccountType.INTERNAL, D, FloorPolicy.UNBOUNDED),
    ("bank_receivable:ch:USD", AccountType.INTERNAL, D, FloorPolicy.UNBOUNDED),
    ("bank_deposit:USD", AccountType.INTERNAL, D, FloorPolicy.NON_NEGATIVE),  # a payout cannot overdraw it
    ("platform_fee_income:USD", AccountType.INTERNAL, C, FloorPolicy.UNBOUNDED),
    ("platform_marketing_expense:USD", AccountType.INTERNAL, D, FloorPolicy.UNBOUNDED),
    ("coupon_prepaid:USD", AccountType.INTERNAL, C, FloorPolicy.UNBOUNDED),
    ("tax_withheld:USD", AccountType.INTERNAL, C, FloorPolicy.UNBOUNDED),
    ("shortfall:USD", AccountType.INTERNAL, D, FloorPolicy.UNBOUNDED),
    ("longfall:USD", AccountType.INTERNAL, C, FloorPolicy.UNBOUNDED),
])
def test_account_templates(code, account_type, side, floor):
    template, _ = RULES.template_for(code)
    assert (template.type, template.normal_side, template.floor) == (account_type, side, floor)


# -------------------------------------------------------------------------------------- funding


@given(amount=AMOUNTS)
def test_funding(amount):
    (draft,) = build(Facts("funding", "USD", {"amount": amount}, {"consumer": "c1", "processor": "stripe"}))
    assert amounts(draft) == {("processor_clearing:stripe:USD", D): amount, ("consumer:c1:USD", C): amount}
    assert draft.memo == "funding via stripe"


def test_party_codes_carry_the_currency_and_a_merchant_s_are_sub_accounts_of_its_main_account():
    """Every account a flow names for a party is that currency's; a merchant's sub-accounts bring their main
    account along, so the writer can open them under it."""
    facts = Facts("usage", "EUR", {"amount": 100}, {"consumer": "c1", "merchant": "m1", "affiliate": "a1"})
    assert RULES.accounts_needed(facts) == {"consumer:c1:EUR", "affiliate:a1:EUR", "platform_fee_income:EUR",
                                            "tax_withheld:EUR", "merchant:m1:EUR/settled", "merchant:m1:EUR"}
    facts = Facts("settlement", "USD", {"amount": 100, "actual_amount": 100}, {"merchant": "m1"}, {"kind": "merchant"})
    assert RULES.accounts_needed(facts) == {"merchant:m1:USD", "platform_fee_income:USD"} | {
        f"merchant:m1:USD/{sub}" for sub in ("pending", "settled", "guarantee", "guarantee_due",
                                             "guarantee_commitment")}
    main, values = RULES.template_for("merchant:m1:USD")
    assert (main.type, values) == (AccountType.DEPOSIT, {"merchant": "m1", "currency": "USD"})


# ---------------------------------------------------------------------------------------- usage


@st.composite
def share_tables(draw) -> tuple[Share, ...]:
    count = draw(st.integers(min_value=1, max_value=32))
    cuts = sorted(draw(st.lists(st.integers(1, 9_999), min_size=count - 1, max_size=count - 1, unique=True)))
    bounds = [0, *cuts, 10_000]
    return tuple(Share(f"m{i}", high - low) for i, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False)))


@settings(max_examples=200)
@given(amount=AMOUNTS, affiliate=st.booleans(), shares=st.one_of(st.just(()), share_tables()))
def test_usage_conserves_the_amount(amount, affiliate, shares):
    parties = {"consumer": "c1", "merchant": "m0", "affiliate": "aff" if affiliate else ""}
    (draft,) = build(Facts("usage", "USD", {"amount": amount}, parties, shares=shares))
    got = amounts(draft)
    assert got.pop(("consumer:c1:USD", D)) == amount
    assert got.pop(("platform_fee_income:USD", C), 0) == bps(amount, 250)
    assert got.pop(("affiliate:aff:USD", C), 0) == (bps(amount, 500) if affiliate else 0)
    merchant_total = amount - bps(amount, 250) - (bps(amount, 500) if affiliate else 0)
    assert sum(got.values()) == merchant_total  # what is left is the merchants', to the unit
    table = shares or (Share("m0", 10_000),)
    for share in table:
        part = got.get((f"merchant:{share.party}:USD/settled", C), 0)
        assert abs(part - Fraction(merchant_total * share.share_bps, 10_000)) < 1
    assert all(side is C and code.startswith("merchant:") and code.endswith(":USD/settled") for code, side in got)


def test_usage_tax_withholding_is_a_param():
    text = DEFAULT_TEXT.replace("tax_withholding_bps = 0 ", "tax_withholding_bps = 1000 ", 1)
    assert text != DEFAULT_TEXT
    rules = parse_rule_set(text)
    (draft,) = build(Facts("usage", "USD", {"amount": 10_000}, {"consumer": "c", "merchant": "m"}), rules=rules)
    assert amounts(draft) == {("consumer:c:USD", D): 10_000, ("platform_fee_income:USD", C): 250,
                              ("tax_withheld:USD", C): 1_000, ("merchant:m:USD/settled", C): 8_750}


def test_usage_without_merchant_or_shares_is_refused():
    error = refused(Facts("usage", "USD", {"amount": 100}, {"consumer": "c"}))
    assert (error.reason, error.metadata["field"]) == ("FLOW_FIELD_MISSING", "merchant")


# ---------------------------------------------------------------------------------- acquisition


def acquisition(amount: int, coupon: int, issuer: str, merchant_share_bps: int = 0) -> Facts:
    return Facts("acquisition", "USD",
                 {"amount": amount, "coupon_amount": coupon, "coupon_merchant_share_bps": merchant_share_bps},
                 {"merchant": "m1", "channel": "alipay"}, {"coupon_issuer": issuer})


@settings(max_examples=300)
@given(data=st.data(), amount=AMOUNTS, issuer=st.sampled_from(["", "platform", "merchant", "shared", "purchased"]),
       merchant_share_bps=st.integers(0, 10_000))
def test_acquisition_conserves_the_order(data, amount, issuer, merchant_share_bps):
    coupon = 0 if issuer == "" else data.draw(st.integers(0, amount), label="coupon")
    facts = acquisition(amount, coupon, issuer, merchant_share_bps)
    merchant_borne = {"": 0, "platform": 0, "merchant": coupon, "purchased": 0,
                      "shared": bps(coupon, merchant_share_bps)}[issuer]
    if amount == merchant_borne and bps(amount, 60) == 0:  # a tiny order the merchant's coupon paid in full
        assert refused(facts).reason == "FLOW_POSTS_NOTHING"
        return
    drafts = build(facts)
    by_name = {draft.metadata["rule_voucher"]: amounts(draft) for draft in drafts}
    principal, fee = by_name.get("principal", {}), by_name.get("fee", {})
    channel = principal.get(("channel_clearing:alipay:USD", D), 0)
    marketing = principal.get(("platform_marketing_expense:USD", D), 0)
    prepaid = principal.get(("coupon_prepaid:USD", D), 0)
    merchant_due = principal.get(("merchant:m1:USD/pending", C), 0)
    assert channel == amount - coupon  # the channel pays only what the consumer paid
    assert merchant_due == amount - merchant_borne
    assert marketing == (coupon - merchant_borne if issuer in ("platform", "shared") else 0)
    assert prepaid == (coupon if issuer == "purchased" else 0)
    # Channel + whoever subsidised the coupon + what the merchant bore == the gross order.
    assert channel + marketing + prepaid + merchant_borne == amount
    assert len(principal) == sum(1 for value in (channel, marketing, prepaid, merchant_due) if value)
    assert fee == ({("merchant:m1:USD/pending", D): bps(amount, 60), ("platform_fee_income:USD", C): bps(amount, 60)}
                   if bps(amount, 60) else {})
    assert [d.rule_id for d in drafts] == [f"acquisition.{issuer}_coupon" if issuer else "acquisition.no_coupon"
                                           ] * len(drafts)


@pytest.mark.parametrize("issuer", ["platform", "merchant", "shared", "purchased"])
def test_acquisition_coupon_larger_than_the_order(issuer):
    error = refused(acquisition(1_000, 1_001, issuer, 5_000))
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "RULE_AMOUNT_NEGATIVE")


def test_acquisition_other_errors():
    error = refused(acquisition(1_000, 10, ""))
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "COUPON_ISSUER_MISSING")
    assert refused(acquisition(1_000, 10, "bogus")).reason == "RULE_NOT_FOUND"
    assert refused(acquisition(100_000, 10_000, "shared", 10_001)).reason == "RULE_AMOUNT_NEGATIVE"
    assert refused(acquisition(1_000, 10, "shared", -1)).reason == "RULE_AMOUNT_NEGATIVE"


def test_acquisition_example():
    principal, fee = build(acquisition(100_000, 10_000, "shared", 3_000))
    assert amounts(principal) == {("channel_clearing:alipay:USD", D): 90_000,
                                  ("platform_marketing_expense:USD", D): 7_000, ("merchant:m1:USD/pending", C): 97_000}
    assert amounts(fee) == {("merchant:m1:USD/pending", D): 600, ("platform_fee_income:USD", C): 600}


# ----------------------------------------------------------------------------------- settlement


@settings(max_examples=200)
@given(amount=AMOUNTS, due=st.one_of(st.none(), st.integers(0, 10**15)), fee_bps=st.integers(0, 10_000))
def test_merchant_settlement_deducts_the_guarantee_due(amount, due, fee_bps):
    rules = parse_rule_set(DEFAULT_TEXT.replace("settlement_fee_bps = 0 ", f"settlement_fee_bps = {fee_bps} ", 1))
    view = FakeView({} if due is None else {"merchant:m1:USD/guarantee_due": due})
    facts = Facts("settlement", "USD", {"amount": amount}, {"merchant": "m1"}, {"kind": "merchant"})
    (draft,) = build(facts, view, rules)
    got = amounts(draft)
    fee = bps(amount, fee_bps)
    deduction = min(amount - fee, due or 0)
    assert got.pop(("merchant:m1:USD/pending", D)) == amount
    assert got.pop(("platform_fee_income:USD", C), 0) == fee
    assert got.pop(("merchant:m1:USD/guarantee", C), 0) == deduction
    assert got.pop(("merchant:m1:USD/guarantee_commitment", D), 0) == deduction
    assert got.pop(("merchant:m1:USD/guarantee_due", C), 0) == deduction  # never more than is due
    assert got.pop(("merchant:m1:USD/settled", C), 0) == amount - fee - deduction
    assert got == {}


CLEARED = {"channel": ("bank_receivable:ch:EUR", "channel_clearing:ch:EUR"),
           "processor": ("bank_receivable:ch:EUR", "processor_clearing:ch:EUR"),
           "bank": ("bank_deposit:EUR", "bank_receivable:ch:EUR")}


@settings(max_examples=200)
@given(amount=st.integers(0, 10**15), actual=st.integers(0, 10**15),
       kind=st.sampled_from(["channel", "processor", "bank"]))
def test_channel_processor_and_bank_settlement_book_short_and_long_falls(amount, actual, kind):
    facts = Facts("settlement", "EUR", {"amount": amount, "actual_amount": actual},
                  {"channel": "ch"} if kind != "processor" else {"processor": "ch"}, {"kind": kind})
    debit_account, credit_account = CLEARED[kind]
    view = FakeView({credit_account: amount})  # exactly what is outstanding may be cleared
    if amount == actual == 0:
        assert refused(facts, view).reason == "FLOW_POSTS_NOTHING"
        return
    (draft,) = build(facts, view)
    got = amounts(draft)
    assert got.pop((debit_account, D), 0) == actual
    assert got.pop((credit_account, C), 0) == amount
    assert got.pop(("shortfall:EUR", D), 0) == max(0, amount - actual)
    assert got.pop(("longfall:EUR", C), 0) == max(0, actual - amount)
    assert got == {}


@pytest.mark.parametrize("kind", ["channel", "processor"])
@pytest.mark.parametrize("outstanding", [0, 999_999, -5])
def test_a_settlement_never_clears_more_than_is_outstanding(kind, outstanding):
    """The bug of issue 25: a channel settlement with nothing outstanding drove its clearing account below
    zero. The excess of what arrived over what is outstanding can only be a long fall."""
    party = {"channel": {"channel": "ch"}, "processor": {"processor": "ch"}}[kind]
    facts = Facts("settlement", "EUR", {"amount": 1_000_000, "actual_amount": 1_000_000}, party, {"kind": kind})
    view = FakeView({CLEARED[kind][1]: outstanding})
    error = refused(facts, view)
    assert (error.kind, error.reason) == (ErrorKind.FAILED_PRECONDITION, "SETTLEMENT_EXCEEDS_OUTSTANDING")
    # Clearing what is outstanding, with the rest of what arrived as a long fall, is allowed.
    if outstanding > 0:
        facts = Facts("settlement", "EUR", {"amount": outstanding, "actual_amount": 1_000_000}, party,
                      {"kind": kind})
        (draft,) = build(facts, view)
        assert amounts(draft)[(CLEARED[kind][1], C)] == outstanding
        assert amounts(draft)[("longfall:EUR", C)] == 1_000_000 - outstanding


@pytest.mark.parametrize("account, parties", [
    ("channel_clearing:ch:USD", {"channel": "ch"}), ("processor_clearing:ch:USD", {"processor": "ch"}),
    ("bank_receivable:ch:USD", {"channel": "ch"}), ("bank_deposit:USD", {})])
@pytest.mark.parametrize("fall", ["shortfall", "longfall"])
def test_reconciliation_falls_move_the_difference_off_or_onto_the_account(account, parties, fall):
    kind = account.split(":")[0]
    (draft,) = build(Facts("reconciliation", "USD", {"amount": 10_000}, parties, {"kind": fall, "account": kind}))
    expected = ({("shortfall:USD", D): 10_000, (account, C): 10_000} if fall == "shortfall"
                else {(account, D): 10_000, ("longfall:USD", C): 10_000})
    assert amounts(draft) == expected


def test_settlement_needs_a_known_kind():
    assert refused(Facts("settlement", "USD", {"amount": 1}, {"merchant": "m"})).reason == "RULE_NOT_FOUND"


# ------------------------------------------------------------------------------------ guarantee


@given(amount=AMOUNTS, settled=st.integers(-5, 10**9), due=st.integers(0, 10**9))
def test_guarantee_account_mode_collects_what_is_due_and_accrued(amount, settled, due):
    facts = Facts("guarantee", "USD", {"amount": amount}, {"merchant": "m1"}, {"mode": "account_collection"})
    view = FakeView({"merchant:m1:USD/settled": settled, "merchant:m1:USD/guarantee_deduction": due})
    collected = min(amount, max(0, settled), due)
    if collected == 0:
        assert refused(facts, view).reason == "FLOW_POSTS_NOTHING"
        return
    (draft,) = build(facts, view)
    assert amounts(draft) == {("merchant:m1:USD/settled", D): collected, ("merchant:m1:USD/guarantee", C): collected,
                              ("merchant:m1:USD/guarantee_commitment", D): collected,
                              ("merchant:m1:USD/guarantee_deduction", C): collected}


def test_guarantee_modes_side_by_side():
    (account,) = build(Facts("guarantee", "USD", {"amount": 7}, {"merchant": "m1"}, {"mode": "account"}))
    assert amounts(account) == {("merchant:m1:USD/guarantee_deduction", D): 7,
                                ("merchant:m1:USD/guarantee_commitment", C): 7}
    (order,) = build(Facts("guarantee", "USD", {"amount": 7}, {"merchant": "m1"}, {"mode": ""}))
    assert amounts(order) == {("merchant:m1:USD/guarantee_due", D): 7, ("merchant:m1:USD/guarantee_commitment", C): 7}
    assert refused(Facts("guarantee", "USD", {"amount": 7}, {"merchant": "m1"}, {"mode": "?"})).reason == \
        "RULE_NOT_FOUND"


@given(amount=AMOUNTS)
def test_guarantee(amount):
    (draft,) = build(Facts("guarantee", "USD", {"amount": amount}, {"merchant": "m1"}))
    assert amounts(draft) == {("merchant:m1:USD/guarantee_due", D): amount,
                              ("merchant:m1:USD/guarantee_commitment", C): amount}


# --------------------------------------------------------------------------------------- payout

VERIFIED = {"kyc_status": "verified", "bank_account": "DE89 3704"}


def payout(amount: int, currency: str = "USD") -> Facts:
    return Facts("payout", currency, {"amount": amount}, {"merchant": "m1"})


@settings(max_examples=200)
@given(amount=AMOUNTS, currency=st.sampled_from(["USD", "JPY"]))
def test_payout_rounds_down_to_the_bank_unit(amount, currency):
    unit = {"USD": 10_000, "JPY": 1_000}[currency]
    settled = f"merchant:m1:{currency}/settled"
    view = FakeView({settled: amount}, {settled: VERIFIED})
    if amount < unit:
        assert refused(payout(amount, currency), view).reason == "FLOW_POSTS_NOTHING"
        return
    (draft,) = build(payout(amount, currency), view)
    paid = amount - amount % unit
    assert amounts(draft) == {(settled, D): paid, (f"bank_deposit:{currency}", C): paid}
    assert amount - paid < unit  # the residue stays in the merchant's settled account


def test_payout_example_keeps_the_sub_cent_residue():
    view = FakeView({"merchant:m1:USD/settled": 5_000_000}, {"merchant:m1:USD/settled": VERIFIED})
    (draft,) = build(payout(1_234_567), view)
    assert amounts(draft) == {("merchant:m1:USD/settled", D): 1_230_000, ("bank_deposit:USD", C): 1_230_000}


@pytest.mark.parametrize(("balance", "metadata", "reason"), [
    (100, None, "KYC_NOT_VERIFIED"),
    (100, {"kyc_status": "pending", "bank_account": "x"}, "KYC_NOT_VERIFIED"),
    (100, {"kyc_status": "verified"}, "BANK_ACCOUNT_MISSING"),
    (100, {"kyc_status": "verified", "bank_account": ""}, "BANK_ACCOUNT_MISSING"),
    (99, {**VERIFIED, "payout_minimum": "100"}, "BELOW_PAYOUT_MINIMUM"),
    (None, {**VERIFIED, "payout_minimum": "1"}, "BELOW_PAYOUT_MINIMUM"),
    (100, {**VERIFIED, "payout_minimum": "1e2"}, "ACCOUNT_METADATA_INVALID"),
])
def test_payout_guards(balance, metadata, reason):
    view = FakeView({} if balance is None else {"merchant:m1:USD/settled": balance},
                    {} if metadata is None else {"merchant:m1:USD/settled": metadata})
    error = refused(payout(10_000), view)
    assert (error.kind, error.reason) == (ErrorKind.FAILED_PRECONDITION, reason)


def test_payout_minimum_param_and_metadata_override():
    rules = parse_rule_set(DEFAULT_TEXT.replace("payout_minimum = 0 ", "payout_minimum = 50_000 ", 1))
    view = FakeView({"merchant:m1:USD/settled": 40_000}, {"merchant:m1:USD/settled": VERIFIED})
    with pytest.raises(LedgerError) as caught:
        rules.build(payout(20_000), view, CURRENCIES)
    assert caught.value.reason == "BELOW_PAYOUT_MINIMUM"
    view = FakeView({"merchant:m1:USD/settled": 40_000},
                    {"merchant:m1:USD/settled": {**VERIFIED, "payout_minimum": "0"}})
    (draft,) = build(payout(20_000), view, rules)
    assert draft.lines[0].amount == 20_000


def test_payout_needs_the_merchant():
    error = refused(Facts("payout", "USD", {"amount": 10_000}))
    assert (error.kind, error.reason) == (ErrorKind.INVALID_ARGUMENT, "FLOW_FIELD_MISSING")


# --------------------------------------------------------------------------------------- refund


def test_refund_is_a_proportional_reversal():
    facts = Facts("refund", "USD", {"amount": 5})
    assert RULES.mode_for(facts) is Mode.PROPORTIONAL_REVERSAL
    assert RULES.accounts_needed(facts) == set()
