"""Sub-accounts per business line on SQLite and PostgreSQL: MAIN/NAME accounts are the main account's
children, each with its own balance and floor; a sub-account transfer is one flow (one voucher); the main
account's roll-up sums its sub-accounts."""

from __future__ import annotations

import pytest

from tally.domain.accounts import AccountType, NewAccount
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.subaccounts import SubAccountTransferFlow
from tally.domain.vouchers import AccountRef
from tally.service import accounts as account_service
from tally.service.commands import CreateAccount, PostFlow
from tally.service.hierarchy import Hierarchy
from tests.integration.conftest import TENANT, Ledger, check_ledger, ref


def move(ledger: Ledger, main: str, source: str, destination: str, amount: int):
    flow = SubAccountTransferFlow(main, source, destination, amount, "USD")
    return ledger.posting.post(PostFlow(TENANT, ledger.request_id("move"), flow))


async def test_sub_accounts_have_their_own_balances_and_move_as_one_flow(ledger: Ledger):
    main = ledger.open("merchant_1")
    settled = ledger.open("merchant_1/settled")
    pending = ledger.open("merchant_1/pending")
    guarantee = ledger.open("merchant_1/guarantee", AccountType.SECURITY_DEPOSIT)
    assert {settled.parent_id, pending.parent_id, guarantee.parent_id} == {main.id}
    await ledger.fund("merchant_1/pending", 10_000)

    posted = await move(ledger, "merchant_1", "pending", "settled", 7_500)
    [voucher] = posted.vouchers
    assert voucher.flow_type == "sub_account_transfer" and voucher.metadata["main_account"] == "merchant_1"
    assert {ln.account_id for ln in voucher.lines} == {pending.id, settled.id}
    assert (ledger.balance("merchant_1/pending"), ledger.balance("merchant_1/settled")) == (2_500, 7_500)
    # Each sub-account keeps its own floor.
    with pytest.raises(LedgerError) as caught:
        await move(ledger, "merchant_1", "pending", "settled", 2_501)
    assert caught.value.reason == "INSUFFICIENT_FUNDS"
    # The main account's roll-up is its sub-accounts' sum.
    [found] = Hierarchy(ledger.uow, ledger.calendar, ledger.clock).get_rollups(TENANT, [ref("merchant_1")]).accounts
    [usd] = found.rollups
    assert (usd.own, usd.descendants, usd.total) == (0, 10_000, 10_000)
    check_ledger(ledger.url)


async def test_sub_account_refusals(ledger: Ledger):
    ledger.open("m2")
    ledger.open("other")
    ledger.open("m2/a")
    cmd = CreateAccount(TENANT, ledger.request_id("open"), NewAccount("m2/b", AccountType.DEPOSIT, "USD"),
                        AccountRef(code="other"))
    with pytest.raises(LedgerError) as caught:
        account_service.create_account(cmd, ledger.uow, ledger.currencies, ledger.clock)
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.INVALID_ARGUMENT, "SUB_ACCOUNT_PARENT_MISMATCH")
    with pytest.raises(LedgerError) as caught:
        ledger.open("m2/eur", currency="EUR")  # a sub-account shares its main account's currency
    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION
    cases = [(("m2", "a", "a"), "SAME_ACCOUNT_BOTH_SIDES"), (("m2", "a", "x:y"), "SUB_ACCOUNT_NAME_INVALID"),
             (("m2", "a", "missing"), "ACCOUNT_NOT_FOUND")]
    for (main, source, destination), reason in cases:
        with pytest.raises(LedgerError) as caught:
            await move(ledger, main, source, destination, 1)
        assert caught.value.reason == reason, (source, destination)
    # A code with a slash and no such main account is an ordinary account.
    assert ledger.open("nobody/x").parent_id is None
