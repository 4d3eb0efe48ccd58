"""The default rule set driven through the domain's posting arithmetic, as the writer would: accounts are
opened from templates on first use, vouchers applied in order, floors enforced. Follows one merchant from
funding to payout, and refunds part of a usage flow with scale_reversal."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from tally.domain.accounts import Account, BalanceState, open_account
from tally.domain.facts import Facts
from tally.domain.money import DEFAULT_CURRENCIES, parse_currencies
from tally.domain.posting import apply_voucher, debit_balance
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft
from tally.rules import load_default_rule_set, scale_reversal

RULES = load_default_rule_set()
CURRENCIES = parse_currencies(DEFAULT_CURRENCIES)


class Ledger:
    """In-memory accounts and balances behind the LedgerView protocol."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.balances: dict[str, BalanceState] = {}

    def available(self, code: str) -> int | None:
        account = self.accounts.get(code)
        return None if account is None else self.balances[account.id].available(account.credit_limit)

    def metadata(self, code: str) -> dict[str, str] | None:
        account = self.accounts.get(code)
        return None if account is None else account.metadata

    def open(self, code: str, currency: str, metadata: dict[str, str] | None = None) -> Account:
        template, _ = RULES.template_for(code)
        spec = dataclasses.replace(template.new_account(code, currency), metadata=metadata or {})
        account = open_account(spec, account_id=f"id-{code}", tenant_id="t", now_us=0,
                               currencies=frozenset(CURRENCIES))
        self.accounts[code] = account
        self.balances[account.id] = BalanceState(account.id)
        return account

    def post(self, facts: Facts) -> tuple[VoucherDraft, ...]:
        for code in sorted(RULES.accounts_needed(facts)):
            if code not in self.accounts:  # opened on first use, as the writer does
                self.open(code, facts.currency)
        drafts = RULES.build(facts, self, CURRENCIES)
        for draft in drafts:
            self.apply(draft)
        return drafts

    def apply(self, draft: VoucherDraft) -> None:
        accounts = [self.accounts[line.account.code] if line.account.code else self._by_id(line.account.id)
                    for line in draft.lines]
        apply_voucher(draft, accounts, self.balances, "2026-11-01")

    def _by_id(self, account_id: str) -> Account:
        return next(a for a in self.accounts.values() if a.id == account_id)

    def current(self, code: str) -> int:
        return self.balances[self.accounts[code].id].current

    def check_double_entry(self) -> None:
        totals: dict[str, int] = defaultdict(int)
        for account in self.accounts.values():
            totals[account.currency] += debit_balance(account, self.balances[account.id].current)
        assert all(total == 0 for total in totals.values()), totals


def test_merchant_lifecycle():
    ledger = Ledger()
    ledger.post(Facts("funding", "USD", {"amount": 50_000_000}, {"consumer": "c1", "processor": "stripe"}))
    ledger.post(Facts("usage", "USD", {"amount": 10_000_000}, {"consumer": "c1", "merchant": "m1"}))
    assert ledger.current("consumer:c1:USD") == 40_000_000
    assert ledger.current("merchant:m1:USD/settled") == 9_750_000
    ledger.post(Facts("guarantee", "USD", {"amount": 3_000_000}, {"merchant": "m1"}))
    ledger.post(Facts("acquisition", "USD", {"amount": 20_000_000, "coupon_amount": 2_000_000,
                                             "coupon_merchant_share_bps": 0},
                      {"merchant": "m1", "channel": "alipay"}, {"coupon_issuer": "platform"}))
    assert ledger.current("merchant:m1:USD/pending") == 20_000_000 - 120_000
    assert ledger.current("channel_clearing:alipay:USD") == 18_000_000
    # Settles the pending funds; the guarantee due (3_000_000) is deducted in full.
    ledger.post(Facts("settlement", "USD", {"amount": 19_880_000}, {"merchant": "m1"}, {"kind": "merchant"}))
    assert ledger.current("merchant:m1:USD/pending") == 0
    assert ledger.current("merchant:m1:USD/guarantee_due") == 0
    assert ledger.current("merchant:m1:USD/guarantee") == 3_000_000
    assert ledger.current("merchant:m1:USD/settled") == 9_750_000 + 16_880_000
    # A second settlement deducts nothing more: nothing is due.
    ledger.post(Facts("acquisition", "USD", {"amount": 1_000_000, "coupon_amount": 0,
                                             "coupon_merchant_share_bps": 0},
                      {"merchant": "m1", "channel": "alipay"}, {"coupon_issuer": ""}))
    ledger.post(Facts("settlement", "USD", {"amount": 994_000}, {"merchant": "m1"}, {"kind": "merchant"}))
    assert ledger.current("merchant:m1:USD/guarantee") == 3_000_000
    # The channel pays a little less than it owes; then the bank receives it.
    ledger.post(Facts("settlement", "USD", {"amount": 19_000_000, "actual_amount": 18_999_000},
                      {"channel": "alipay"}, {"kind": "channel"}))
    assert ledger.current("shortfall:USD") == 1_000
    ledger.post(Facts("settlement", "USD", {"amount": 18_999_000, "actual_amount": 18_999_000},
                      {"channel": "alipay"}, {"kind": "bank"}))
    assert ledger.current("bank_deposit:USD") == 18_999_000
    # The processor settles the consumer's funding too: only money on the bank account can be paid out.
    both = {"amount": 50_000_000, "actual_amount": 50_000_000}
    ledger.post(Facts("settlement", "USD", both, {"processor": "stripe"}, {"kind": "processor"}))
    ledger.post(Facts("settlement", "USD", both, {"channel": "stripe"}, {"kind": "bank"}))
    assert ledger.current("processor_clearing:stripe:USD") == 0
    assert ledger.current("bank_deposit:USD") == 68_999_000
    # Payout: KYC and bank account on the settled account; the sub-cent residue stays.
    settled = ledger.accounts["merchant:m1:USD/settled"]
    ledger.accounts["merchant:m1:USD/settled"] = dataclasses.replace(settled, metadata={
        "kyc_status": "verified", "bank_account": "acct-1"})
    before = ledger.current("merchant:m1:USD/settled")
    ledger.post(Facts("payout", "USD", {"amount": before - 1}, {"merchant": "m1"}))
    assert ledger.current("merchant:m1:USD/settled") == (before - 1) % 10_000 + 1
    ledger.check_double_entry()


def test_partial_refund_of_usage_with_scale_reversal():
    ledger = Ledger()
    ledger.post(Facts("funding", "USD", {"amount": 5_000_000}, {"consumer": "c1", "processor": "stripe"}))
    (usage,) = ledger.post(Facts("usage", "USD", {"amount": 1_000_003},
                                 {"consumer": "c1", "merchant": "m1", "affiliate": "a1"}))
    original = [(ledger.accounts[line.account.code].id, line.side, line.amount, line.currency)
                for line in usage.lines]
    refund = scale_reversal(original, 333_333, 1_000_003)
    draft = VoucherDraft("refund", tuple(LineDraft(AccountRef(id=account), side, amount, currency)
                                         for account, side, amount, currency in refund))
    ledger.apply(draft)
    assert ledger.current("consumer:c1:USD") == 5_000_000 - 1_000_003 + 333_333
    ledger.check_double_entry()
