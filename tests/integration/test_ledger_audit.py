"""The ledger audit against real databases (SQLite and PostgreSQL): balances proven from the journal.

Each test posts through the service, then changes rows directly with SQL as the database owner (what a
compromised service role or a careless operator could do: `as_owner`), and runs the audit. Every finding
must name the account or voucher, what was expected and what was found; accounts found inconsistent are
refused by the writer (ACCOUNT_INCONSISTENT) until an operator sets them active again; a checkpoint makes a
routine run read only what is new; a run stops when its caller does.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tally.domain.accounts import AccountStatus, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.vouchers import AccountRef
from tally.service.auth.audit import AuditLog
from tally.service.books import ledger_audit
from tally.service.books.ledger_audit import AuditCancelled, FindingKind, LedgerAudit
from tally.service.commands import CreateHold
from tally.service.posting.pipeline import now_us
from tally.storage.auth_repo import AuditRow
from tests.integration.conftest import FUNDING, TENANT, Ledger
from tests.integration.test_tamper import as_owner

INVENTED = 777_000_000


def audit(ledger: Ledger, **options) -> ledger_audit.AuditReport:
    return LedgerAudit(ledger.uow, now_us).run(TENANT, **options)


def by_kind(report, kind: FindingKind) -> list:
    return [f for f in report.findings if f.kind is kind]


def account_id(ledger: Ledger, code: str) -> str:
    return ledger.queries.get_account(TENANT, AccountRef(code=code))[0].id


async def two_funded_accounts(ledger: Ledger) -> tuple[str, str]:
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 10_000)
    await ledger.fund("bob", 5_000)
    await ledger.transfer("alice", "bob", 1_000)
    return account_id(ledger, "alice"), account_id(ledger, "bob")


async def test_an_untouched_ledger_checks_out_and_leaves_a_checkpoint(ledger: Ledger) -> None:
    await two_funded_accounts(ledger)
    report = audit(ledger)
    assert report.intact, report.findings
    assert report.full and report.checkpoint_saved and report.vouchers_read == 3 and report.lines_read == 6
    assert report.accounts_checked == 3 and report.events_checked > 0 and report.marked_inconsistent == []


async def test_the_issue_scenario_invented_money_is_found_and_refused_until_an_operator_acts(ledger: Ledger) -> None:
    """UPDATE balances SET current = current + 777000000 on two accounts: the trial balance and the hash chain
    do not notice, the audit does, names both accounts with expected and found, and the writer then refuses
    to spend the invented money."""
    alice, bob = await two_funded_accounts(ledger)
    assert audit(ledger).intact
    assert as_owner(ledger.url, "UPDATE balances SET current = current + :x WHERE account_id IN (:a, :b)",
                    x=INVENTED, a=alice, b=bob) == 2
    report = audit(ledger)
    assert not report.intact
    found = {(f.account_id, f.expected, f.found) for f in by_kind(report, FindingKind.BALANCE_CURRENT)}
    assert found == {(alice, "9000", str(9_000 + INVENTED)), (bob, "6000", str(6_000 + INVENTED))}
    assert report.kinds() == {FindingKind.BALANCE_CURRENT}
    assert sorted(report.marked_inconsistent) == sorted([alice, bob])
    assert not report.broken_voucher_id and not report.problem  # the hash chain itself is intact
    assert report.checkpoint_saved  # the journal checked out: the checkpoint moves on

    with pytest.raises(LedgerError) as refused:
        await ledger.transfer("alice", "bob", INVENTED)
    assert (refused.value.kind, refused.value.reason) == (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_INCONSISTENT")
    with pytest.raises(LedgerError) as held:
        await ledger.posting.create_hold(CreateHold(TENANT, ledger.request_id("hold"), AccountRef(code="alice"),
                                                    100, "USD"))
    assert held.value.reason == "ACCOUNT_INCONSISTENT"
    # The operator restores the row and sets the account active again: it posts, and the books check out.
    as_owner(ledger.url, "UPDATE balances SET current = current - :x WHERE account_id IN (:a, :b)",
             x=INVENTED, a=alice, b=bob)
    for code in ("alice", "bob"):
        assert ledger.set_status(code, AccountStatus.ACTIVE).status is AccountStatus.ACTIVE
    await ledger.transfer("alice", "bob", 500)
    after = audit(ledger)
    assert after.intact, after.findings
    assert not after.full and after.vouchers_read == 1  # routine: only the new transfer


async def test_an_operator_may_reactivate_without_repairing_and_the_next_audit_marks_it_again(ledger: Ledger) -> None:
    alice, _ = await two_funded_accounts(ledger)
    as_owner(ledger.url, "UPDATE balances SET current = current + 5 WHERE account_id = :a", a=alice)
    assert audit(ledger).marked_inconsistent == [alice]
    ledger.set_status("alice", AccountStatus.ACTIVE)
    await ledger.transfer("alice", "bob", 10)  # the operator's decision: it posts
    assert audit(ledger).marked_inconsistent == [alice]


async def test_marking_an_account_inconsistent_is_the_audits_alone(ledger: Ledger) -> None:
    ledger.open("alice")
    with pytest.raises(LedgerError) as refused:
        ledger.set_status("alice", AccountStatus.INCONSISTENT)
    assert refused.value.reason == "ACCOUNT_STATUS_RESERVED"


async def test_a_tampered_line_amount_is_named_with_its_voucher_and_account(ledger: Ledger) -> None:
    alice, bob = await two_funded_accounts(ledger)
    transfer = (await ledger.transfer("alice", "bob", 300)).vouchers[0]
    as_owner(ledger.url, "UPDATE voucher_lines SET amount = 3000 WHERE voucher_id = :v AND line_no = 2",
             v=transfer.id)
    report = audit(ledger)
    assert report.broken_voucher_id == transfer.id and report.problem == ledger_audit.CONTENT
    after = by_kind(report, FindingKind.BALANCE_AFTER)
    assert [(f.account_id, f.voucher_id, f.expected, f.found) for f in after] == [
        (bob, transfer.id, str(6_000 + 3_000), str(6_000 + 300))]
    current = by_kind(report, FindingKind.BALANCE_CURRENT)
    assert [(f.account_id, f.expected, f.found) for f in current] == [(bob, str(6_000 + 3_000), str(6_300))]
    assert by_kind(report, FindingKind.VOUCHER_UNBALANCED)[0].found == "-2700"
    assert report.marked_inconsistent == [bob]
    assert not report.checkpoint_saved or audit(ledger).from_sequence == 0  # a broken journal keeps no checkpoint


async def test_a_tampered_balance_after_is_named_once(ledger: Ledger) -> None:
    alice, _ = await two_funded_accounts(ledger)
    await ledger.transfer("alice", "bob", 100)
    as_owner(ledger.url, "UPDATE voucher_lines SET balance_after = balance_after + 40 WHERE account_id = :a "
                         "AND entry_number = 2", a=alice)
    report = audit(ledger)
    after = by_kind(report, FindingKind.BALANCE_AFTER)
    assert [(f.account_id, f.expected, f.found) for f in after][0] == (alice, "9000", "9040")
    assert by_kind(report, FindingKind.VOUCHER_HASH)  # balance_after is hashed too
    assert alice in report.marked_inconsistent


async def test_a_gap_in_an_accounts_entry_numbers_is_named(ledger: Ledger) -> None:
    alice, _ = await two_funded_accounts(ledger)
    as_owner(ledger.url, "UPDATE voucher_lines SET entry_number = 7 WHERE account_id = :a AND entry_number = 2",
             a=alice)
    as_owner(ledger.url, "UPDATE balances SET entry_count = 7 WHERE account_id = :a", a=alice)
    report = audit(ledger)
    numbers = by_kind(report, FindingKind.ENTRY_NUMBER)
    assert [(f.account_id, f.expected, f.found) for f in numbers] == [(alice, "2", "7")]


async def test_locked_must_equal_what_active_holds_reserve(ledger: Ledger) -> None:
    alice, _ = await two_funded_accounts(ledger)
    await ledger.posting.create_hold(CreateHold(TENANT, ledger.request_id("hold"), AccountRef(code="alice"), 700,
                                                "USD"))
    assert audit(ledger).intact
    as_owner(ledger.url, "UPDATE balances SET locked = 0 WHERE account_id = :a", a=alice)
    report = audit(ledger)
    assert [(f.kind, f.account_id, f.expected, f.found) for f in report.findings] == [
        (FindingKind.LOCKED, alice, "700", "0")]
    assert report.marked_inconsistent == [alice]


async def test_previous_day_and_last_date_are_checked(ledger: Ledger) -> None:
    alice, bob = await two_funded_accounts(ledger)
    as_owner(ledger.url, "UPDATE balances SET previous_day = 12345 WHERE account_id = :a", a=alice)
    as_owner(ledger.url, "UPDATE balances SET last_date = '2001-01-01' WHERE account_id = :b", b=bob)
    report = audit(ledger)
    assert {(f.kind, f.account_id, f.expected, f.found) for f in report.findings} == {
        (FindingKind.PREVIOUS_DAY, alice, "0", "12345"),
        (FindingKind.LAST_DATE, bob, by_kind(report, FindingKind.LAST_DATE)[0].expected, "2001-01-01")}


async def test_a_previous_day_balance_follows_the_days_of_the_journal(ledger: Ledger) -> None:
    """Lines of an earlier accounting date: previous_day is the balance at the end of the last one."""
    alice, _ = await two_funded_accounts(ledger)
    as_owner(ledger.url, "UPDATE voucher_lines SET accounting_date = '2001-01-01' WHERE account_id = :a "
                         "AND entry_number = 1", a=alice)
    as_owner(ledger.url, "UPDATE balances SET previous_day = 10000 WHERE account_id = :a", a=alice)
    report = audit(ledger)
    assert not by_kind(report, FindingKind.PREVIOUS_DAY)  # 10000 after the 2001 line: what the row says now
    assert by_kind(report, FindingKind.VOUCHER_HASH)  # the line's date copy no longer matches its voucher


async def test_a_gap_in_the_event_sequence_and_a_wrong_head_are_named(ledger: Ledger) -> None:
    await two_funded_accounts(ledger)
    last = ledger.uow.read({TENANT}, lambda c: c.execute(sa.text(
        "SELECT max(sequence) FROM events WHERE tenant_id = :t"), {"t": TENANT}).scalar_one())
    assert as_owner(ledger.url, "DELETE FROM events WHERE tenant_id = :t AND sequence IN (2, 3)", t=TENANT) == 2
    as_owner(ledger.url, "UPDATE ledger_heads SET event_sequence = event_sequence + 1 WHERE tenant_id = :t",
             t=TENANT)
    report = audit(ledger)
    gaps = by_kind(report, FindingKind.EVENT_GAP)
    assert [(f.sequence, f.expected, f.found) for f in gaps] == [(2, "events 2..3", "missing")]
    assert [(f.expected, f.found) for f in by_kind(report, FindingKind.HEAD_EVENT)] == [(str(last), str(last + 1))]


async def test_a_ledger_head_that_does_not_match_the_last_voucher_is_named(ledger: Ledger) -> None:
    await two_funded_accounts(ledger)
    as_owner(ledger.url, "UPDATE ledger_heads SET voucher_sequence = 2 WHERE tenant_id = :t", t=TENANT)
    report = audit(ledger)
    assert [(f.expected, f.found) for f in by_kind(report, FindingKind.HEAD_VOUCHER)] == [("3", "2")]
    assert report.problem.startswith("the head records voucher 2")


async def test_the_audit_log_is_a_hash_chain_the_audit_verifies(ledger: Ledger) -> None:
    log = AuditLog(ledger.uow, flush_ms=0)
    log.start()
    for n in range(4):
        await log.record(AuditRow(TENANT, "key:k1", "operator", "Post", f"flow:{n}", "ok", f"r{n}", "peer", n))
    await log.record(AuditRow("other", "key:k2", "admin", "Post", "", "ok", "x", "peer", 9))
    await log.stop()
    first = audit(ledger)
    assert first.intact and first.audit_rows_read == 4, first.findings
    ids = [r for (r,) in ledger.uow.read({TENANT}, lambda c: c.execute(sa.text(
        "SELECT id FROM audit_log WHERE tenant_id = :t ORDER BY id"), {"t": TENANT}).all())]

    as_owner(ledger.url, "UPDATE audit_log SET outcome = 'denied:ROLE_NOT_ALLOWED' WHERE id = :i", i=ids[1])
    report = audit(ledger, full=True)
    assert [(f.kind, f.sequence) for f in report.findings] == [(FindingKind.AUDIT_LOG_HASH, ids[1])]

    as_owner(ledger.url, "DELETE FROM audit_log WHERE id = :i", i=ids[2])  # a row removed in the middle
    assert (FindingKind.AUDIT_LOG_LINK, ids[3]) in {(f.kind, f.sequence) for f in audit(ledger, full=True).findings}

    as_owner(ledger.url, "DELETE FROM audit_log WHERE id = :i", i=ids[3])  # and the last one: the head shows it
    kinds = audit(ledger, full=True).kinds()
    assert FindingKind.AUDIT_LOG_HEAD in kinds


async def test_a_routine_run_reads_only_what_is_new_since_the_checkpoint(ledger: Ledger) -> None:
    await two_funded_accounts(ledger)
    first = audit(ledger)
    assert first.full and (first.vouchers_read, first.through_sequence) == (3, 3)
    again = audit(ledger)
    assert (again.full, again.from_sequence, again.vouchers_read, again.lines_read) == (False, 3, 0, 0)
    for amount in (1, 2, 3):
        await ledger.transfer("bob", "alice", amount)
    routine = audit(ledger)
    assert routine.intact, routine.findings
    assert (routine.full, routine.from_sequence, routine.through_sequence) == (False, 3, 6)
    assert (routine.vouchers_read, routine.lines_read) == (3, 6)  # the three new vouchers, nothing before
    assert routine.events_checked == 3
    full = audit(ledger, full=True)
    assert full.intact and full.full and full.vouchers_read == 6


async def test_a_routine_run_still_sees_a_balance_changed_before_the_checkpoint(ledger: Ledger) -> None:
    """Balance rows are compared on every run (one row per account), whatever the checkpoint."""
    alice, _ = await two_funded_accounts(ledger)
    assert audit(ledger).intact
    as_owner(ledger.url, "UPDATE balances SET current = current + 1 WHERE account_id = :a", a=alice)
    report = audit(ledger)
    assert not report.full and report.vouchers_read == 0
    assert [(f.kind, f.account_id) for f in report.findings] == [(FindingKind.BALANCE_CURRENT, alice)]


async def test_a_checkpoint_that_no_longer_matches_is_reported_and_the_run_starts_over(ledger: Ledger) -> None:
    alice, _ = await two_funded_accounts(ledger)
    assert audit(ledger).intact
    # Someone hides invented money by raising both the balance and the audit's own sums.
    as_owner(ledger.url, "UPDATE balances SET current = current + 50 WHERE account_id = :a", a=alice)
    as_owner(ledger.url, "UPDATE audit_account_sums SET line_sum = line_sum + 50, last_balance = last_balance + 50 "
                         "WHERE account_id = :a", a=alice)
    report = audit(ledger)
    assert report.full and report.vouchers_read == 3
    assert [f.kind for f in report.findings] == [FindingKind.CHECKPOINT, FindingKind.BALANCE_CURRENT]
    # A changed voucher before the checkpoint: the voucher the checkpoint ends at no longer has its hash.
    as_owner(ledger.url, "UPDATE balances SET current = current - 50 WHERE account_id = :a", a=alice)
    assert audit(ledger).intact
    as_owner(ledger.url, "UPDATE vouchers SET hash = :h WHERE tenant_id = :t AND sequence = 3",
             h=bytes.fromhex("f" * 64), t=TENANT)  # stored as its 32 bytes (migration 0019)
    as_owner(ledger.url, "UPDATE ledger_heads SET last_hash = :h WHERE tenant_id = :t", h="f" * 64, t=TENANT)
    kinds = audit(ledger).kinds()
    assert FindingKind.CHECKPOINT in kinds and FindingKind.VOUCHER_HASH in kinds


async def test_a_run_stops_between_pages_when_its_caller_goes_away(ledger: Ledger, monkeypatch) -> None:
    monkeypatch.setattr(ledger_audit, "PAGE_VOUCHERS", 2)
    await two_funded_accounts(ledger)
    for amount in range(1, 6):
        await ledger.adjust([(FUNDING, Side.DEBIT, amount), ("alice", Side.CREDIT, amount)])
    pages = []
    with pytest.raises(AuditCancelled):
        audit(ledger, should_stop=lambda: bool(pages), progress=pages.append)
    assert [(p.vouchers_read, p.through_sequence, p.last_sequence) for p in pages] == [(2, 2, 8)]  # one page only
    assert audit(ledger).full  # nothing was saved: the next run starts from the beginning
