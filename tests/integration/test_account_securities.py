"""Credit accounts secured by a security deposit, on SQLite and PostgreSQL: the bound limit follows the
deposit, a deposit keeps what secures outstanding credit (postings and holds alike), refusals name their
reason, and many callers drawing and withdrawing at once never leave the deposit short."""

from __future__ import annotations

import pytest

from tally.domain.accounts import AccountType, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.commands import CreateHold
from tally.service.securities import SetAccountSecurity, get_security, set_security
from tests.integration.conftest import FUNDING, TENANT, Ledger, check_ledger, outcomes, ref

LINE = 10**9  # a bound credit account's own limit: the ceiling its deposit's cover stays within


def link(ledger: Ledger, credit: str, deposit: str, ratio_bps: int, bound: bool, request_id: str | None = None):
    cmd = SetAccountSecurity(TENANT, request_id or ledger.request_id("secure"), ref(credit), ref(deposit), ratio_bps,
                             bound)
    return set_security(cmd, ledger.uow, ledger.clock)


def refused(call) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        call()
    return caught.value


async def draw(ledger: Ledger, credit: str, amount: int):
    return await ledger.adjust([(credit, Side.DEBIT, amount), (FUNDING, Side.CREDIT, amount)])


async def withdraw(ledger: Ledger, deposit: str, amount: int):
    return await ledger.adjust([(deposit, Side.DEBIT, amount), (FUNDING, Side.CREDIT, amount)])


async def reason_of(awaitable) -> str:
    with pytest.raises(LedgerError) as caught:
        await awaitable
    return caught.value.reason


async def test_bound_limit_follows_the_deposit_and_the_deposit_keeps_what_secures_credit(ledger: Ledger):
    credit = ledger.open("c1", AccountType.CREDIT, credit_limit=LINE)
    deposit = ledger.open("d1", AccountType.SECURITY_DEPOSIT)
    await ledger.fund("d1", 10_000)
    report = link(ledger, "c1", "d1", 5_000, True, request_id="secure-1")
    (view,) = report.securities
    assert (view.security.credit_id, view.security.deposit_id, view.credit_limit) == (credit.id, deposit.id, 5_000)
    assert link(ledger, "c1", "d1", 5_000, True, request_id="secure-1").replayed

    await draw(ledger, "c1", 4_000)
    assert await reason_of(draw(ledger, "c1", 1_001)) == "INSUFFICIENT_FUNDS"
    # 4,000 drawn at 50% needs 8,000 of deposit: 2,000 may go, not one unit more, nor be held.
    report = get_security(ledger.uow, TENANT, ref("d1"))
    assert report.required_deposit == 8_000 and report.securities[0].outstanding == 4_000
    assert await reason_of(withdraw(ledger, "d1", 2_001)) == "DEPOSIT_SECURES_CREDIT"
    await withdraw(ledger, "d1", 2_000)
    hold = CreateHold(TENANT, ledger.request_id("hold"), ref("d1"), 1, "USD")
    assert await reason_of(ledger.posting.create_hold(hold)) == "DEPOSIT_SECURES_CREDIT"
    # The limit is the deposit's now: 8,000 x 50% = 4,000, all drawn.
    assert get_security(ledger.uow, TENANT, ref("c1")).securities[0].credit_limit == 4_000
    assert await reason_of(draw(ledger, "c1", 1)) == "INSUFFICIENT_FUNDS"
    await ledger.fund("d1", 2_000)  # a top-up raises it again
    await draw(ledger, "c1", 1_000)
    # Repaying credit frees deposit.
    await ledger.adjust([(FUNDING, Side.DEBIT, 5_000), ("c1", Side.CREDIT, 5_000)])
    await withdraw(ledger, "d1", 10_000)
    assert ledger.balance("d1") == 0 and ledger.balance("c1") == 0
    check_ledger(ledger.url)


async def test_an_unbound_link_keeps_the_credit_limit_and_still_secures(ledger: Ledger):
    ledger.open("c2", AccountType.CREDIT, credit_limit=1_000)
    ledger.open("d2", AccountType.SECURITY_DEPOSIT)
    await draw(ledger, "c2", 1_000)
    error = refused(lambda: link(ledger, "c2", "d2", 10_000, False))
    assert (error.kind, error.reason) == (ErrorKind.FAILED_PRECONDITION, "DEPOSIT_SECURES_CREDIT")
    await ledger.fund("d2", 1_000)
    (view,) = link(ledger, "c2", "d2", 10_000, False).securities
    assert (view.credit_limit, view.required_deposit) == (1_000, 1_000)
    assert await reason_of(withdraw(ledger, "d2", 1)) == "DEPOSIT_SECURES_CREDIT"
    assert await reason_of(draw(ledger, "c2", 1)) == "INSUFFICIENT_FUNDS"  # its own limit still binds


async def test_link_refusals(ledger: Ledger):
    ledger.open("c3", AccountType.CREDIT)
    ledger.open("d3", AccountType.SECURITY_DEPOSIT)
    ledger.open("d3-eur", AccountType.SECURITY_DEPOSIT, currency="EUR")
    ledger.open("plain")
    cases = [
        (("c3", "d3", 0), ErrorKind.INVALID_ARGUMENT, "RATIO_BPS_INVALID"),
        (("c3", "d3", 10_001), ErrorKind.INVALID_ARGUMENT, "RATIO_BPS_INVALID"),
        (("plain", "d3", 5_000), ErrorKind.FAILED_PRECONDITION, "ACCOUNT_NOT_CREDIT"),
        (("c3", "plain", 5_000), ErrorKind.FAILED_PRECONDITION, "ACCOUNT_NOT_SECURITY_DEPOSIT"),
        (("c3", "d3-eur", 5_000), ErrorKind.FAILED_PRECONDITION, "CURRENCY_MISMATCH"),
        (("c3", "nowhere", 5_000), ErrorKind.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
    ]
    for (credit, deposit, ratio), kind, reason in cases:
        error = refused(lambda c=credit, d=deposit, r=ratio: link(ledger, c, d, r, True))
        assert (error.kind, error.reason) == (kind, reason), (credit, deposit, ratio)
    assert get_security(ledger.uow, TENANT, ref("c3")).securities == ()
    assert get_security(ledger.uow, TENANT, ref("plain")).securities == ()  # linked to nothing


async def test_many_callers_drawing_and_withdrawing_never_leave_the_deposit_short(ledger: Ledger):
    ledger.open("c4", AccountType.CREDIT, credit_limit=LINE)
    ledger.open("d4", AccountType.SECURITY_DEPOSIT)
    await ledger.fund("d4", 100_000)
    link(ledger, "c4", "d4", 2_500, True)  # a deposit of 100,000 carries 25,000 of credit
    calls = [draw(ledger, "c4", 900) if i % 2 else withdraw(ledger, "d4", 4_000) for i in range(60)]
    results = await outcomes(*calls)
    accepted = [r for r in results if not isinstance(r, LedgerError)]
    reasons = {r.reason for r in results if isinstance(r, LedgerError)}
    assert accepted and reasons <= {"INSUFFICIENT_FUNDS", "DEPOSIT_SECURES_CREDIT", "CREDIT_LIMIT_EXCEEDED"}, reasons
    report = get_security(ledger.uow, TENANT, ref("d4"))
    deposit = ledger.queries.get_balance(TENANT, ref("d4"))
    assert deposit.current - deposit.locked >= report.required_deposit > 0
    assert -ledger.balance("c4") <= report.securities[0].credit_limit
    check_ledger(ledger.url)
