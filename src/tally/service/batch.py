"""The batch writer: applies many submissions in one write transaction.

Accounts and balance rows of the whole batch are loaded (and locked, in account-id order) once; each
submission is then applied in memory on its own, accepted or refused without touching its neighbours;
what was accepted is written with a handful of multi-row statements. A hot account is read and written
once per batch however many vouchers touch it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, BalanceState
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import LedgerError, precondition
from tally.domain.ids import new_id
from tally.domain.posting import apply_voucher, resolve
from tally.domain.vouchers import Voucher, VoucherDraft, voucher_hash
from tally.service.idempotency import fingerprint, reused_request_id
from tally.storage import accounts_repo, journal_repo, ledger_repo
from tally.storage.ledger_repo import Event, IdempotencyRecord, LedgerHead


@dataclass
class Submission:
    tenant_id: str
    request_id: str
    operation: str
    body: dict
    drafts: tuple[VoucherDraft, ...]
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.operation, self.body)


@dataclass(frozen=True)
class Posted:
    vouchers: tuple[Voucher, ...]
    replayed: bool = False


Outcome = Posted | LedgerError


def write_batch(conn: Connection, subs: list[Submission], now_us: int,
                calendar: AccountingCalendar) -> list[Outcome]:
    batch = _Batch(conn, subs, now_us, calendar)
    outcomes = [batch.apply(sub) for sub in subs]
    batch.write()
    return outcomes


class _Batch:
    def __init__(self, conn: Connection, subs: list[Submission], now_us: int,
                 calendar: AccountingCalendar) -> None:
        self.conn, self.now_us = conn, now_us
        self.heads = ledger_repo.load_heads(conn, {s.tenant_id for s in subs})
        for head in self.heads.values():
            head.accounting_date = max(calendar.date_of(now_us), head.accounting_date)
        self.records = ledger_repo.load_records(conn, [(s.tenant_id, s.request_id) for s in subs])
        self.by_id: dict[str, dict[str, Account]] = {}
        self.by_code: dict[str, dict[str, Account]] = {}
        self.balances: dict[str, BalanceState] = {}
        self._load_accounts(subs)
        self.reversed = journal_repo.reversed_originals(
            conn, [d.reverses_id for s in subs for d in s.drafts if d.reverses_id])
        self.new_vouchers: list[Voucher] = []
        self.new_records: list[IdempotencyRecord] = []
        self.events: list[Event] = []
        self.touched: set[str] = set()

    def _load_accounts(self, subs: list[Submission]) -> None:
        refs = defaultdict(list)
        for sub in subs:
            refs[sub.tenant_id] += [line.account for d in sub.drafts for line in d.lines]
        for tenant_id, tenant_refs in refs.items():
            by_id, by_code = accounts_repo.find_accounts(self.conn, tenant_id, tenant_refs)
            self.by_id[tenant_id], self.by_code[tenant_id] = by_id, by_code
            ids = {a.id for a in by_id.values()} | {a.id for a in by_code.values()}
            self.balances.update(accounts_repo.load_balances(self.conn, tenant_id, ids, for_update=True))

    def apply(self, sub: Submission) -> Outcome:
        key = (sub.tenant_id, sub.request_id)
        record = self.records.get(key)
        if record is not None:
            return self._replay(sub, record)
        saved = dict(self.balances)
        try:
            vouchers = [self._apply_draft(sub, draft) for draft in sub.drafts]
        except LedgerError as error:
            self.balances = saved  # the submission is refused whole
            return error
        posted = self._seal(sub, vouchers)
        self.records[key] = IdempotencyRecord(sub.tenant_id, sub.request_id, sub.operation, sub.fingerprint,
                                              sub.body, {"voucher_ids": [v.id for v in posted]}, self.now_us)
        self.new_records.append(self.records[key])
        return Posted(tuple(posted))

    def _replay(self, sub: Submission, record: IdempotencyRecord) -> Outcome:
        if record.operation != sub.operation or record.fingerprint != sub.fingerprint:
            return reused_request_id(sub.request_id, sub.operation, record.operation, record.body, sub.body)
        ids = record.result["voucher_ids"]
        fresh = {v.id: v for v in self.new_vouchers if v.id in ids}
        stored = journal_repo.get_vouchers(self.conn, sub.tenant_id, [i for i in ids if i not in fresh])
        found = fresh | {v.id: v for v in stored}
        return Posted(tuple(found[i] for i in ids), replayed=True)

    def _apply_draft(self, sub: Submission, draft: VoucherDraft) -> Voucher:
        if draft.reverses_id and draft.reverses_id in self.reversed:
            raise precondition("VOUCHER_ALREADY_REVERSED", f"voucher {draft.reverses_id} is already reversed",
                               voucher_id=draft.reverses_id)
        accounts = [resolve(line.account, self.by_id[sub.tenant_id], self.by_code[sub.tenant_id])
                    for line in draft.lines]
        date = self.heads[sub.tenant_id].accounting_date
        applied = apply_voucher(draft, accounts, self.balances, date)
        return Voucher(
            id=new_id(), tenant_id=sub.tenant_id, sequence=0, flow_type=draft.flow_type,
            request_id=sub.request_id, accounting_date=date,
            effective_us=draft.effective_us if draft.effective_us is not None else self.now_us,
            posted_us=self.now_us, lines=applied.lines, memo=draft.memo, metadata=dict(draft.metadata),
            reverses_id=draft.reverses_id, rule_id=draft.rule_id, rule_set_version=draft.rule_set_version,
        )

    def _seal(self, sub: Submission, vouchers: list[Voucher]) -> list[Voucher]:
        """Numbers and chains the vouchers of an accepted submission, and records their events."""
        head = self.heads[sub.tenant_id]
        sealed = []
        for voucher in vouchers:
            head.voucher_sequence += 1
            numbered = replace(voucher, sequence=head.voucher_sequence, previous_hash=head.last_hash)
            numbered = replace(numbered, hash=voucher_hash(numbered, head.last_hash))
            head.last_hash = numbered.hash
            sealed.append(numbered)
            self.touched.update(line.account_id for line in numbered.lines)
            if numbered.reverses_id:
                self.reversed.add(numbered.reverses_id)
            self._record_events(head, numbered)
        self.new_vouchers += sealed
        return sealed

    def _record_events(self, head: LedgerHead, voucher: Voucher) -> None:
        head.event_sequence += 1
        self.events.append(Event(head.tenant_id, head.event_sequence, "ledger.entry.posted",
                                 posted_payload(voucher), self.now_us, voucher_id=voucher.id))
        if voucher.reverses_id:
            head.event_sequence += 1
            self.events.append(Event(head.tenant_id, head.event_sequence, "voucher.reversed",
                                     {"voucher_id": voucher.reverses_id, "reversal_id": voucher.id},
                                     self.now_us, voucher_id=voucher.reverses_id))

    def write(self) -> None:
        if not self.new_vouchers:
            return
        journal_repo.insert_vouchers(self.conn, self.new_vouchers)
        accounts_repo.save_balances(self.conn, [self.balances[a] for a in sorted(self.touched)], self.now_us)
        ledger_repo.insert_records(self.conn, self.new_records)
        ledger_repo.insert_events(self.conn, self.events)
        ledger_repo.save_heads(self.conn, self.heads.values())


def posted_payload(voucher: Voucher) -> dict:
    return {
        "voucher_id": voucher.id, "sequence": voucher.sequence, "flow_type": voucher.flow_type,
        "request_id": voucher.request_id, "accounting_date": voucher.accounting_date,
        "lines": [{"account_id": ln.account_id, "side": ln.side.value, "amount": ln.amount,
                   "currency": ln.currency, "entry_number": ln.entry_number, "balance_after": ln.balance_after}
                  for ln in voucher.lines],
    }
