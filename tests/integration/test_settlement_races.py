"""Races on the settlement side, on SQLite and PostgreSQL: the same reconciliation item resolved, the same
statement imported, the same payout batch sent by several requests at once each post exactly one voucher;
the others are refused, and the books stay whole."""

from __future__ import annotations

import asyncio

from tally.domain.errors import LedgerError
from tally.domain.facts import Facts
from tally.domain.flows import RuleFlow
from tally.domain.reconciliation import ItemState, Resolution
from tally.domain.vouchers import AccountRef
from tally.service.commands import PostFlow
from tally.service.posting.pipeline import now_us
from tally.service.settlement.bank_details import BankDetails
from tally.service.settlement.payouts import PayoutConfig, Payouts
from tally.service.settlement.reconciliation import ImportStatement, Reconciliation, ResolveItem
from tally.service.settlement.statements import StatementFormat
from tests.integration.conftest import TENANT, check_ledger

CLEARING = AccountRef(code="channel_clearing:visa:USD")
RACERS = 6


async def post(ledger, facts: Facts) -> None:
    await ledger.posting.post(PostFlow(TENANT, ledger.request_id("flow"), RuleFlow(facts)))


async def test_concurrent_resolutions_of_one_item_post_one_voucher(ledger, database_url) -> None:
    values = {"amount": 3_000_000, "coupon_amount": 0, "coupon_merchant_share_bps": 0}
    await post(ledger, Facts("acquisition", "USD", values, {"merchant": "m1", "channel": "visa"}))
    recon = Reconciliation(ledger.uow, ledger.posting, ledger.posting.rules, ledger.settings.currencies, now_us)
    day = ledger.calendar.date_of(now_us())
    statement = f"reference,amount,date\nx,2.00,{day}\n".encode()

    def import_once(n: int):
        return recon.import_statement(ImportStatement(TENANT, f"imp-{n}", CLEARING, StatementFormat.CSV, statement,
                                                      "s-1", closing_balance=2_000_000))

    imports = await asyncio.gather(*(asyncio.to_thread(import_once, n) for n in range(RACERS)))
    assert sum(not i.replayed for i in imports) == 1 and len({i.statement.id for i in imports}) == 1
    items, _ = recon.list_items(TENANT, CLEARING, "s-1", None, 0, "")
    assert sorted(i.state.value for i in items) == ["unmatched_ours", "unmatched_theirs"]
    (ours,) = [i for i in items if i.state is ItemState.UNMATCHED_OURS]

    results = await asyncio.gather(*(recon.resolve(ResolveItem(TENANT, f"res-{n}", ours.id, Resolution.SHORT_FALL))
                                     for n in range(RACERS)), return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(done) == 1 and len(refused) == RACERS - 1, results
    assert {r.reason for r in refused} == {"ITEM_ALREADY_RESOLVED"}
    assert ledger.balance("shortfall:USD") == 3_000_000
    report = recon.report(TENANT, CLEARING, "s-1")
    assert report.proof.proven and report.proof.resolutions == -3_000_000
    # A later statement of the same period matches nothing an earlier one holds: the entry is taken.
    later = recon.import_statement(ImportStatement(TENANT, "imp-later", CLEARING, StatementFormat.CSV,
                                                   f"reference,amount,date\ny,3.00,{day}\n".encode(), "s-2"))
    assert {c.state.value: c.items for c in later.counts if c.items} == {"unmatched_theirs": 1}
    check_ledger(database_url)


async def test_concurrent_sends_of_one_batch_post_one_voucher(ledger, database_url) -> None:
    for facts in (Facts("funding", "USD", {"amount": 9_000_000}, {"consumer": "c1", "processor": "card"}),
                  Facts("settlement", "USD", {"amount": 9_000_000, "actual_amount": 9_000_000}, {"processor": "card"},
                        {"kind": "processor"}),
                  Facts("settlement", "USD", {"amount": 9_000_000, "actual_amount": 9_000_000}, {"channel": "card"},
                        {"kind": "bank"}),
                  Facts("usage", "USD", {"amount": 8_000_000}, {"consumer": "c1", "merchant": "m1"})):
        await post(ledger, facts)
    from tally.domain.accounts import AccountChange
    from tally.service import accounts as account_service
    from tally.service.commands import UpdateAccount

    account_service.update_account(UpdateAccount(TENANT, "kyc", AccountRef(code="merchant:m1:USD/settled"),
                                                 AccountChange(metadata={"kyc_status": "verified"})),
                                   ledger.uow, now_us)
    payouts = Payouts(ledger.uow, ledger.posting, ledger.posting.rules, ledger.settings.currencies, ledger.calendar,
                      now_us, PayoutConfig())
    bank, _ = payouts.link_bank_account(TENANT, "link", AccountRef(code="merchant:m1:USD/settled"), "USD",
                                        BankDetails("M One", "DE89370400440532013000", "COBADEFFXXX"), True)
    for n in range(3):
        await payouts.request(TENANT, f"p-{n}", bank.id, 1_000_000, "USD")
    (batch,) = (await payouts.create_batches(TENANT, "cut", "USD")).batches
    assert (await payouts.create_batches(TENANT, "cut", "USD")).batches == [batch]  # a retry: the same batch

    results = await asyncio.gather(*(payouts.send_batch(TENANT, f"send-{n}", batch.id) for n in range(RACERS)),
                                   return_exceptions=True)
    sent = [r for r in results if not isinstance(r, BaseException)]
    assert len(sent) == 1, results
    assert {r.reason for r in results if isinstance(r, LedgerError)} <= {"PAYOUT_BATCH_BUSY",
                                                                           "PAYOUT_BATCH_STATE_INVALID"}
    assert ledger.balance("bank_deposit:USD") == 9_000_000 - 3_000_000
    assert ledger.balance("payouts_pending:USD") == 0
    check_ledger(database_url)
