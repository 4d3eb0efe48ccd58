"""Pure rules of account structures: secured-credit arithmetic (property: a bound limit never needs more
deposit than backs it), merge vouchers for either sign of balance, merge checks, sub-account codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.domain.accounts import Account, AccountStatus, AccountType, BalanceState, Side
from tally.domain.errors import LedgerError
from tally.domain.merging import check_merge, move_draft
from tally.domain.security import RATIO_BPS_WHOLE, Security, bound_limit, effective_limit, required_deposit
from tally.domain.subaccounts import SubAccountTransferFlow, main_code_of, sub_code


def account(id_: str, type_: AccountType = AccountType.DEPOSIT, **kw) -> Account:
    return Account(id=id_, tenant_id="t", code=id_, type=type_, normal_side=Side.CREDIT, currency="USD", **kw)


@given(deposit=st.integers(min_value=0, max_value=2**62), ratio=st.integers(min_value=1, max_value=RATIO_BPS_WHOLE))
def test_drawing_the_whole_bound_limit_needs_no_more_deposit_than_there_is(deposit: int, ratio: int):
    security = Security("t", "c", "d", ratio, True)
    limit = bound_limit(security, BalanceState("d", current=deposit))
    drawn = BalanceState("c", current=-limit)
    assert required_deposit(security, drawn) <= deposit
    # One unit more would need more than the deposit holds (unless the limit is capped at int64 range).
    more = BalanceState("c", current=-limit - 1)
    assert required_deposit(security, more) > deposit or limit == 2**62


def test_effective_limit_stays_within_the_accounts_own():
    security = Security("t", "c", "d", 5_000, True)
    deposit = BalanceState("d", current=10_000)
    assert effective_limit(security, account("c", AccountType.CREDIT, credit_limit=3_000), deposit) == 3_000
    assert effective_limit(security, account("c", AccountType.CREDIT, credit_limit=10**9), deposit) == 5_000
    unbound = Security("t", "c", "d", 5_000, False)
    assert effective_limit(unbound, account("c", AccountType.CREDIT, credit_limit=7), deposit) == 7


@pytest.mark.parametrize(("current", "source_side"), [(500, Side.DEBIT), (-500, Side.CREDIT)])
def test_a_merge_voucher_empties_the_source_whatever_its_sign(current: int, source_side: Side):
    source, target = account("s", AccountType.CREDIT), account("t", AccountType.CREDIT)
    draft = move_draft(source, target, BalanceState("s", current=current), "")
    [out, into] = draft.lines
    assert (out.account.id, out.side, out.amount) == ("s", source_side, 500)
    assert (into.account.id, into.side, into.amount) == ("t", source_side.opposite(), 500)
    assert source_side.signed(500, Side.CREDIT) == -current  # the source ends at zero
    assert move_draft(source, target, BalanceState("s"), "") is None


@pytest.mark.parametrize(("source", "reason"), [
    (account("s", status=AccountStatus.FROZEN), "ACCOUNT_FROZEN"),
    (account("s", AccountType.SECURITY_DEPOSIT), "MERGE_TYPE_MISMATCH"),
    (account("s", metadata={"owner": "alice"}), "MERGE_OWNER_MISMATCH"),
])
def test_merge_checks(source: Account, reason: str):
    with pytest.raises(LedgerError) as caught:
        check_merge([source], account("t"), {})
    assert caught.value.reason == reason
    with pytest.raises(LedgerError) as caught:
        check_merge([account("s")], account("t"), {"s": 2})
    assert caught.value.reason == "MERGE_SOURCE_HAS_CHILDREN"


def test_sub_account_codes():
    assert main_code_of("merchant_1/settled") == "merchant_1"
    assert main_code_of("a/b/c") == "a/b"
    assert main_code_of("plain") is None and main_code_of("/x") is None and main_code_of("x/") is None
    assert sub_code("m", "pending") == "m/pending"
    for bad in ("", "a/b", "a:b", "x" * 65):
        with pytest.raises(LedgerError):
            sub_code("m", bad)
    [draft] = SubAccountTransferFlow("m", "pending", "settled", 5, "USD").vouchers("", {}, None)
    assert [(ln.account.code, ln.side) for ln in draft.lines] == [("m/pending", Side.DEBIT), ("m/settled", Side.CREDIT)]
