"""The batch writer: applies many submissions in one write transaction.

Accounts and balance rows of the whole batch are loaded once (under the write gate); each
submission is then applied in memory on its own, accepted or refused without touching its neighbours;
what was accepted is written with a handful of multi-row statements. A hot account is read and written
once per batch however many vouchers touch it.

A submission carries its vouchers ready-made (transfer, adjustment, reversal) or a `build` function that
the rule engine provides: it runs here, against the batch's view of the ledger, so rules may consult
balances and account metadata under the same locks the posting holds. Accounts a rule names are opened
from their templates on first use, and written only if an accepted voucher touches them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from itertools import groupby

from sqlalchemy import Connection

from tally.domain import limits
from tally.domain.accounts import Account, AccountStatus, BalanceState, Side
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import ErrorKind, LedgerError, precondition
from tally.domain.facts import LedgerView
from tally.domain.hierarchy import check_child, check_depth
from tally.domain.holds import Hold, HoldStatus
from tally.domain.ids import new_id
from tally.domain.posted_events import POSTED, stored_payload
from tally.domain.posting import apply_voucher, resolve
from tally.domain.subaccounts import main_code_of
from tally.domain.vouchers import AccountRef, Voucher, VoucherDraft, seal
from tally.service.controls import ControlBook
from tally.service.posting.account_links import AccountLinks
from tally.service.posting.controls import NO_CONTROLS
from tally.service.posting.events import account_payload, hold_events
from tally.service.posting.hold_book import HoldAction, HoldBook, HoldChange, HoldOp
from tally.service.posting.idempotency import (
    FINAL_REFUSALS,
    canonical,
    canonical_json,
    fingerprint_json,
    refusal_from,
    refusal_result,
    reused_request_id,
)
from tally.service.posting.memory import UnrecordedRefusal, WriterMemory
from tally.service.posting.undo import Revertible
from tally.storage import accounts_repo, epochs, hierarchy_repo, journal_repo, journal_write, ledger_repo
from tally.storage.batch_reads import Opening, read_accounts, read_opening
from tally.storage.engine import deferring, pipelined
from tally.storage.journal_write import JournalRows
from tally.storage.ledger_repo import Event, IdempotencyRecord, LedgerHead


@dataclass(frozen=True, slots=True)
class Cap:
    """`amount` more of the running total `key`, which may never pass `limit`."""

    key: str
    amount: int
    limit: int
    reason: str  # the FAILED_PRECONDITION reason when the limit would be passed


Builder = Callable[[LedgerView], tuple[VoucherDraft, ...]]
# Makes the account a template describes for (tenant, code, currency, now), or None when no template fits.
Opener = Callable[[str, str, str, int], Account | None]


@dataclass(slots=True)
class Submission:
    tenant_id: str
    request_id: str
    operation: str
    body: dict
    drafts: tuple[VoucherDraft, ...] = ()
    build: Builder | None = None
    codes: dict[str, str] = field(default_factory=dict)  # account code -> currency the build may name
    caps: tuple[Cap, ...] = ()
    hold_ops: tuple[HoldOp, ...] = ()  # applied before the vouchers, all or nothing with them
    group: int = 0  # non-zero: posted all or nothing with the adjacent submissions of the same group
    actor: str = ""  # who asked: kept with the idempotency record, in the same transaction
    body_json: str = field(init=False)  # the body's canonical JSON: fingerprinted, and stored as it is
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.body_json = canonical_json(self.body)
        self.fingerprint = fingerprint_json(self.operation, self.body_json)


@dataclass(frozen=True, slots=True)
class Posted:
    vouchers: tuple[Voucher, ...]
    replayed: bool = False
    holds: tuple[Hold, ...] = ()  # the holds the submission changed, as it left them


Outcome = Posted | LedgerError


def no_templates(_tenant: str, _code: str, _currency: str, _now: int) -> Account | None:
    return None


# Rows of accepted submissions are sent every this many submissions, while the next ones are applied.
CHUNK_SUBMISSIONS = 100


def write_batch(conn: Connection, subs: list[Submission], now_us: int, calendar: AccountingCalendar,
                opener: Opener = no_templates, controls: ControlBook | None = None,
                memory: WriterMemory | None = None) -> list[Outcome]:
    """Applies the submissions in order and writes what they changed. In a large batch the append-only rows
    (journal, records, events) go out chunk by chunk: on PostgreSQL the server inserts one chunk while the
    next is being applied, where sending them all at the end made each side wait for the other. The last
    rows and what the batch changed as a whole are deferred: they go out with the COMMIT.
    With a `memory`, the batch starts from what its writer remembers when it can, and tells it what it
    leaves (kept once the transaction commits: `WriterMemory.settle`)."""
    batch = _Batch(conn, subs, now_us, calendar, opener, controls, memory)
    outcomes: list[Outcome] = []
    # Pipeline mode only when chunks will go out (a batch of CHUNK_SUBMISSIONS or more): leaving it costs a
    # round trip.
    with pipelined(conn) if len(subs) >= CHUNK_SUBMISSIONS else nullcontext():
        applied = 0
        for run in runs(subs):
            outcomes += batch.apply_group(run)
            applied += len(run)
            if applied >= CHUNK_SUBMISSIONS:
                batch.send_rows()
                applied = 0
    with deferring(conn):
        batch.write()
    if memory is not None:
        batch.teach(memory)
    return outcomes


def runs(subs: list[Submission]) -> list[list[Submission]]:
    """The units a batch applies: each submission alone, or an atomic group whole."""
    return [list(run) for _, run in groupby(subs, key=lambda sub: sub.group or object())]


def refused_with(index: int, error: LedgerError) -> LedgerError:
    return LedgerError(ErrorKind.ABORTED, "BATCH_ITEM_REFUSED",
                       f"not posted: item {index} of the atomic batch was refused ({error.reason})",
                       item=index, item_reason=error.reason)


class _Batch:
    def __init__(self, conn: Connection, subs: list[Submission], now_us: int, calendar: AccountingCalendar,
                 opener: Opener, controls: ControlBook | None = None, memory: WriterMemory | None = None) -> None:
        self.conn, self.now_us = conn, now_us
        ops: dict[str, list[HoldOp]] = defaultdict(list)
        for sub in subs:
            ops[sub.tenant_id] += sub.hold_ops
        self.hold_book = HoldBook(conn, ops)  # first: the accounts of its holds are read with the others
        tenant_ids = {s.tenant_id for s in subs}
        opening = memory.recall(tenant_ids) if memory is not None else None
        if opening is not None:
            # First: fails the transaction when somebody wrote since, before anything else is read.
            epochs.check(conn, opening.epochs)
        self.controls = controls.open_batch(conn, tenant_ids) if controls else NO_CONTROLS  # spending controls
        refs = self._refs(subs)
        for tenant_id, extra in self.controls.extra_refs().items():
            refs[tenant_id] += extra
        if opening is None:
            opening = read_opening(conn, tenant_ids, [(s.tenant_id, s.request_id) for s in subs], refs)
        elif unknown := memory.recall_accounts(opening, refs):
            opening.add_accounts(*read_accounts(conn, unknown))
        self.opening = opening
        self.heads = opening.heads
        self.heads_read = {t: replace(head) for t, head in self.heads.items()}  # what a batch writing nothing leaves
        # Posting times never go back within a tenant (a clock stepped back posts at the last time instead), so
        # the last entry at or before a time is one index look-up away.
        self.now_us = max(now_us, *(head.posted_us for head in self.heads.values()))
        for head in self.heads.values():
            head.posted_us = self.now_us
            head.accounting_date = max(calendar.date_of(self.now_us), head.accounting_date)
        self.records = opening.records
        self.replayable = _stored_vouchers(conn, self.records.values())  # read now: no reads while writing
        self.by_id: dict[str, dict[str, Account]] = defaultdict(dict)
        self.by_code: dict[str, dict[str, Account]] = defaultdict(dict)
        self.balances: Revertible = Revertible(opening.balances)  # account id -> BalanceState
        self.unsaved: dict[str, Account] = {}  # opened from templates, written once a voucher uses them
        self.unopened: dict[tuple[str, str], LedgerError] = {}  # (tenant, code) a template could not open
        self.stored_children: dict[str, int] = {}  # parent id -> its children in the database
        self.claimed: Revertible = Revertible()  # opened accounts an accepted voucher uses -> True
        self.children_claimed: Revertible = Revertible()  # parent id -> its claimed opened children
        self.touched_holds: set[str] = set()
        self._add_accounts(subs, opening, opener)
        self.controls.load_sweep_accounts(conn, self.by_id, self.by_code, self.balances)  # the rule set's sweeps
        self.links = AccountLinks(conn, self.by_id, self.by_code, self.balances)  # merged codes, secured credit
        self.controls.load_usage(conn, self.by_id, self.now_us)
        self.reversed = journal_repo.reversed_originals(
            conn, [d.reverses_id for s in subs for d in s.drafts if d.reverses_id])
        self.caps_used = Revertible(ledger_repo.load_caps(conn, [(s.tenant_id, c.key) for s in subs for c in s.caps]))
        self.caps_limit: Revertible = Revertible()  # (tenant, cap key) -> limit
        self.caps_stored = set(self.caps_used)
        self.new_vouchers: list[Voucher] = []
        self.new_accounts: list[Account] = []
        self.new_records: list[IdempotencyRecord] = []
        self.events: list[Event] = []
        self.sent = _Sent()
        self.touched: set[str] = set()
        self.written_balances: dict[str, BalanceState] = {}  # by account id, as `write` sent them

    def _refs(self, subs: list[Submission]) -> dict[str, list[AccountRef]]:
        """Every account the batch names, by tenant: in its drafts, its rules' codes and its holds."""
        refs: dict[str, list[AccountRef]] = defaultdict(list)
        for sub in subs:
            refs[sub.tenant_id] += [line.account for d in sub.drafts for line in d.lines]
            refs[sub.tenant_id] += [AccountRef(code=code) for code in sub.codes]
            refs[sub.tenant_id] += [op.account for op in sub.hold_ops if op.account is not None]
        for tenant_id, ids in self.hold_book.account_ids().items():
            refs[tenant_id] += [AccountRef(id=i) for i in ids]
        return refs

    def _add_accounts(self, subs: list[Submission], opening: Opening, opener: Opener) -> None:
        """The accounts found, and those the rules' codes name that a template opens."""
        for found in opening.accounts.values():
            for account in (*found.by_id.values(), *found.by_code.values()):
                self._add(account)
        codes: dict[str, dict[str, str]] = defaultdict(dict)
        for sub in subs:
            codes[sub.tenant_id].update(sub.codes)
        for tenant_id, tenant_codes in codes.items():
            for code, currency in tenant_codes.items():
                try:
                    self._open(tenant_id, code, currency, opener)
                except LedgerError as error:  # refuses the flows that need the account, not the batch
                    self.unopened[(tenant_id, code)] = error

    def _open(self, tenant_id: str, code: str, currency: str, opener: Opener) -> Account | None:
        """The account of `code`, opened from its template when there is none yet; a sub-account (`MAIN/NAME`)
        opened so becomes its main account's child, the main opened too when its template does (issue 21)."""
        found = self.by_code[tenant_id].get(code)
        if found is not None:
            return found
        opened = opener(tenant_id, code, currency, self.now_us)
        if opened is None:
            return None
        main_code = main_code_of(code)
        main = self._open(tenant_id, main_code, currency, opener) if main_code else None
        if main is not None and main.currency == opened.currency and main.status is not AccountStatus.CLOSED:
            self._check_room(tenant_id, main)
            opened.parent_id = main.id  # unshared yet: set in place
        self._add(opened)
        self.unsaved[opened.id] = opened
        self.balances[opened.id] = BalanceState(opened.id)
        return opened

    def _check_room(self, tenant_id: str, parent: Account) -> None:
        """The bounds CreateAccount keeps, for a sub-account a template opens under its main account: the
        hierarchy's depth now, and the parent's children read now for `_claim`, which counts only children
        an accepted voucher uses. Read only here, when a template opens an account."""
        check_depth(self._depth(tenant_id, parent))
        if parent.id not in self.unsaved and parent.id not in self.stored_children:
            self.stored_children[parent.id] = hierarchy_repo.count_children(self.conn, tenant_id, parent.id)

    def _claim(self, tenant_id: str, vouchers: list[Voucher]) -> None:
        """Counts the opened accounts the vouchers use (and their opened parents) among their parents'
        children, refusing the submission past CreateAccount's bound. Reverted with a refused submission, so
        an account a refused flow opened, which is never written, takes no parent's room."""
        for voucher in vouchers:
            for line in voucher.lines:
                account = self.unsaved.get(line.account_id)
                while account is not None and account.id not in self.claimed:
                    self.claimed[account.id] = True
                    parent_id = account.parent_id
                    if parent_id is None:
                        break
                    claimed = self.children_claimed.get(parent_id, 0)
                    siblings = self.stored_children.get(parent_id, 0) + claimed
                    check_child(self.by_id[tenant_id][parent_id], account, siblings)
                    self.children_claimed[parent_id] = claimed + 1
                    account = self.unsaved.get(parent_id)

    def _depth(self, tenant_id: str, account: Account) -> int:
        """The accounts in `account`'s chain of parents, itself included."""
        if account.id not in self.unsaved:
            return accounts_repo.parent_depth(self.conn, tenant_id, account.id, limits.ACCOUNT_DEPTH_MAX)
        # An opened account's parent is its main account, found or opened before it.
        return 1 + (self._depth(tenant_id, self.by_id[tenant_id][account.parent_id]) if account.parent_id else 0)

    def _add(self, account: Account) -> None:
        self.by_id[account.tenant_id][account.id] = account
        self.by_code[account.tenant_id][account.code] = account

    def apply_group(self, subs: list[Submission]) -> list[Outcome]:
        """Applies one submission, or an atomic group: refused whole when any member is refused."""
        self._checkpoint()
        evaluated = []
        for index, sub in enumerate(subs):
            result = self._evaluate(sub)
            if isinstance(result, LedgerError):
                self._revert()
                self._record_refusal(sub, result)
                self._check_unrecorded(subs)
                return [result if i == index else refused_with(index, result) for i in range(len(subs))]
            evaluated.append(result)
        return [self._accept(sub, result) for sub, result in zip(subs, evaluated, strict=True)]

    def _checkpoint(self) -> None:
        for state in self._revertible():
            state.checkpoint()

    def _revert(self) -> None:
        """Takes back what the submissions since the checkpoint changed in the batch's state."""
        for state in self._revertible():
            state.revert()

    def _revertible(self) -> tuple:
        return (self.balances, self.caps_used, self.caps_limit, self.hold_book, self.controls.used, self.claimed,
                self.children_claimed)

    def _evaluate(self, sub: Submission) -> Posted | _Accepted | LedgerError:
        """A replayed answer, what to post, or the refusal; state moves only for what is accepted."""
        record = self.records.get((sub.tenant_id, sub.request_id))
        if record is not None:
            return self._replay(sub, record)
        if self.unopened and (refused := self._unopened(sub)):
            return refused
        try:
            resolver = self._resolver(sub.tenant_id)
            changes = [self.hold_book.apply(op, sub.tenant_id, resolver, self.balances, self.now_us)
                       for op in sub.hold_ops]
            drafts = sub.drafts or (sub.build(_View(self, sub.tenant_id)) if sub.build else ())
            vouchers = [self._apply_draft(sub, draft) for draft in drafts]
            _check_spent_from_holds(changes, vouchers)
            self.links.check(sub.tenant_id, vouchers, changes, self.balances)
            vouchers = self._controlled(sub, vouchers)
            if self.unsaved:
                self._claim(sub.tenant_id, vouchers)
            self._use_caps(sub)
        except LedgerError as error:
            return error
        return _Accepted(vouchers, changes)

    def _unopened(self, sub: Submission) -> LedgerError | None:
        """Why an account the submission's rule names could not be opened, if one could not."""
        for code in sub.codes:
            error = self.unopened.get((sub.tenant_id, code))
            if error is not None:
                return error
        return None

    def _resolver(self, tenant_id: str) -> Callable[[AccountRef], Account]:
        return lambda ref: resolve(ref, self.by_id[tenant_id], self.by_code[tenant_id])

    def _accept(self, sub: Submission, result: Posted | _Accepted) -> Posted:
        if isinstance(result, Posted):
            return result
        holds = self._record_holds(sub.tenant_id, result)
        posted = self._seal(sub, result.vouchers, _spent_hold(sub))
        self._keep_record(sub, {"voucher_ids": [v.id for v in posted], "holds": [canonical(h) for h in holds]})
        return Posted(tuple(posted), holds=holds)

    def _record_refusal(self, sub: Submission, error: LedgerError) -> None:
        """A refusal decided against the ledger is the request's final answer, as an acceptance is: a
        resend replays it instead of trying again, so a request a caller saw refused can never be posted
        later by a retry of it. Conflicts and outages decide nothing and are not recorded; neither is a
        reused request_id, which already has its record."""
        if error.kind not in FINAL_REFUSALS or (sub.tenant_id, sub.request_id) in self.records:
            return
        self._keep_record(sub, refusal_result(error))

    def _check_unrecorded(self, refused: list[Submission]) -> None:
        """A batch started from memory read no idempotency record: a request seen before fails the insert of
        its new record, and so the transaction. A refusal that writes no record would go unnoticed, so such a
        batch is written again from reads instead."""
        if self.opening.remembered and any((s.tenant_id, s.request_id) not in self.records for s in refused):
            raise UnrecordedRefusal()

    def _keep_record(self, sub: Submission, result: dict) -> None:
        """The submission's final answer, kept as its idempotency record (with who asked)."""
        record = IdempotencyRecord(sub.tenant_id, sub.request_id, sub.operation, sub.fingerprint, sub.body, result,
                                   self.now_us, body_json=sub.body_json, actor=sub.actor)
        self.records[(record.tenant_id, record.request_id)] = record
        self.new_records.append(record)

    def _record_holds(self, tenant_id: str, accepted: _Accepted) -> tuple[Hold, ...]:
        """The holds' events, ahead of the vouchers' own. Each carries its account's balance as it steps from
        where the submission found it (current before the vouchers post, locked moved by each hold event in
        turn), so that every balance snapshot of a stream is the one before it plus its delta. A capture's
        events name the voucher that spends the hold."""
        if not accepted.changes:
            return ()
        head = self.heads[tenant_id]
        voucher_ids = [v.id for v in accepted.vouchers]
        events = [(change, type_, payload) for change in accepted.changes for type_, payload in hold_events(change)]
        locked = {change.hold.account_id: self.balances[change.hold.account_id].locked for change, _, _ in events}
        for change, _, payload in events:
            locked[change.hold.account_id] -= payload["locked_delta"]
        final: dict[str, Hold] = {}
        for change in accepted.changes:
            hold = change.hold
            if change.op.action in _SPENDING:
                hold = self.hold_book.record_vouchers(hold.id, voucher_ids)
            final[hold.id] = hold
            self.touched_holds.add(hold.id)
        moved = _signed_totals(accepted.vouchers, self.by_id[tenant_id])
        for change, type_, payload in events:
            hold = change.hold
            locked_delta = payload.pop("locked_delta")
            locked[hold.account_id] += locked_delta
            account = self.by_id[tenant_id][hold.account_id]
            current = self.balances[hold.account_id].current - moved.get(hold.account_id, 0)
            payload["balances"] = {hold.account_id: {
                "currency": account.currency, "current": current, "locked": locked[hold.account_id],
                "available": current - locked[hold.account_id] + account.credit_limit, "current_delta": 0,
                "locked_delta": locked_delta}}
            voucher_id = voucher_ids[0] if change.op.action in _SPENDING and voucher_ids else None
            if voucher_id:
                payload["voucher_id"] = voucher_id
            self._event(head, type_, payload, hold_id=hold.id, account_id=hold.account_id, voucher_id=voucher_id)
        return tuple(final.values())

    def _replay(self, sub: Submission, record: IdempotencyRecord) -> Outcome:
        if record.operation != sub.operation or record.fingerprint != sub.fingerprint:
            return reused_request_id(sub.request_id, sub.operation, record.operation, record.body, sub.body)
        if "error" in record.result:
            return refusal_from(record.result["error"])
        ids = record.result["voucher_ids"]
        found = {v.id: v for v in self.new_vouchers if v.id in ids} | self.replayable
        holds = tuple(hold_from(data) for data in record.result.get("holds", ()))
        return Posted(tuple(found[i] for i in ids), replayed=True, holds=holds)

    def _apply_draft(self, sub: Submission, draft: VoucherDraft) -> Voucher:
        if draft.reverses_id and draft.reverses_id in self.reversed:
            raise precondition("VOUCHER_ALREADY_REVERSED", f"voucher {draft.reverses_id} is already reversed",
                               voucher_id=draft.reverses_id)
        by_id, by_code = self.by_id[sub.tenant_id], self.by_code[sub.tenant_id]
        accounts = [resolve(line.account, by_id, by_code) for line in draft.lines]
        date = self.heads[sub.tenant_id].accounting_date
        applied = apply_voucher(draft, accounts, self.balances, date)
        # By position, in Voucher's field order (keywords cost more): sequence and hash come when it is sealed.
        return Voucher(
            new_id(), sub.tenant_id, 0, draft.flow_type, sub.request_id, date,
            draft.effective_us if draft.effective_us is not None else self.now_us, self.now_us, applied.lines,
            draft.memo, _with_hold(draft.metadata, sub), draft.reverses_id, None, draft.rule_id,
            draft.rule_set_version,
        )

    def _controlled(self, sub: Submission, vouchers: list[Voucher]) -> list[Voucher]:
        """Spending controls checked (and marked on the vouchers), then the sweeps they call for."""
        accounts = self.by_id[sub.tenant_id]
        vouchers = self.controls.check(sub.tenant_id, vouchers, accounts, self.now_us)
        return vouchers + self.controls.sweep(sub.tenant_id, vouchers, accounts, self.balances,
                                              lambda draft: self._apply_draft(sub, draft), self.links)

    def _use_caps(self, sub: Submission) -> None:
        for cap in sub.caps:
            key = (sub.tenant_id, cap.key)
            used = self.caps_used.get(key, 0) + cap.amount
            if used > cap.limit:
                raise precondition(cap.reason, f"{cap.key}: {used} would pass the limit {cap.limit}",
                                   cap=cap.key, used=used - cap.amount, limit=cap.limit)
            self.caps_used[key] = used
            self.caps_limit.setdefault(key, cap.limit)

    def _seal(self, sub: Submission, vouchers: list[Voucher], hold_id: str | None) -> list[Voucher]:
        """Numbers and chains the vouchers of an accepted submission, and records their events."""
        head = self.heads[sub.tenant_id]
        sealed = []
        for voucher in vouchers:
            self._keep_opened(head, voucher)
            head.voucher_sequence += 1
            numbered = seal(voucher, head.voucher_sequence, head.last_hash)  # built by _apply_draft, unshared
            head.last_hash = numbered.hash
            sealed.append(numbered)
            self.touched.update(line.account_id for line in numbered.lines)
            if numbered.reverses_id:
                self.reversed.add(numbered.reverses_id)
            self._record_events(head, numbered, hold_id)
        self.new_vouchers += sealed
        return sealed

    def _keep_opened(self, head: LedgerHead, voucher: Voucher) -> None:
        for line in voucher.lines:
            self._keep(head, line.account_id)

    def _keep(self, head: LedgerHead, account_id: str | None) -> None:
        """Writes an opened account a voucher uses, its opened main account first (the parent row before the child)."""
        account = self.unsaved.pop(account_id, None) if account_id else None
        if account is not None:
            self._keep(head, account.parent_id)
            self.new_accounts.append(account)
            self._event(head, "account.created", account_payload(account), account_id=account.id)

    def _record_events(self, head: LedgerHead, voucher: Voucher, hold_id: str | None) -> None:
        """The voucher's `ledger.entry.posted` event keeps only what the journal does not: each account's
        locked amount and credit limit now, and the hold it spends (readers rebuild the rest, see
        `domain.posted_events`)."""
        accounts, states = self.by_id[voucher.tenant_id], self.balances
        ids = {line.account_id: None for line in voucher.lines}
        payload = stored_payload({a: states[a].locked for a in ids}, {a: accounts[a].credit_limit for a in ids},
                                 hold_id)
        self._event(head, POSTED, payload, voucher_id=voucher.id, hold_id=hold_id)
        if voucher.reverses_id:
            self._event(head, "voucher.reversed", {"voucher_id": voucher.reverses_id, "reversal_id": voucher.id},
                        voucher_id=voucher.reverses_id)

    def _event(self, head: LedgerHead, type_: str, payload: dict, **ids: str) -> None:
        head.event_sequence += 1
        self.events.append(Event(head.tenant_id, head.event_sequence, type_, payload, self.now_us, **ids))

    def send_rows(self) -> None:
        """Writes the rows accepted since the last call that nothing later in the batch changes: opened
        accounts, vouchers and their lines, idempotency records and events."""
        journal_write.write(self.conn, self._unsent())
        self._mark_sent()

    def _writes(self) -> bool:
        return bool(self.new_vouchers or self.touched_holds or self.new_records)

    def write(self) -> None:
        """Writes the rows not sent yet with what the batch as a whole changed (balances and ledger heads),
        then holds and flow caps."""
        if not self._writes():
            return
        touched = self.touched | {self.hold_book.holds[h].account_id for h in self.touched_holds}
        self.written_balances = {a: self.balances[a] for a in sorted(touched)}
        journal_write.write(self.conn, replace(self._unsent(), balances=list(self.written_balances.values()),
                                               heads=list(self.heads.values()), now_us=self.now_us))
        self._mark_sent()
        self.hold_book.write(self.conn, self.touched_holds)
        self.controls.write(self.conn)
        ledger_repo.save_caps(
            self.conn,
            {k: (self.caps_used[k], limit) for k, limit in self.caps_limit.items() if k not in self.caps_stored},
            {k: self.caps_used[k] for k in self.caps_limit if k in self.caps_stored})

    def teach(self, memory: WriterMemory) -> None:
        """What the batch leaves once it commits, as the database has it: heads as written, the accounts of
        its opening as read and those it opened as written (never the batch's derived view of an account,
        such as a bound credit limit), each with its balance as written, else as read."""
        accounts: dict[str, dict[str, Account]] = defaultdict(dict)
        for tenant_id, found in self.opening.accounts.items():
            for account in (*found.by_id.values(), *found.by_code.values()):
                accounts[tenant_id][account.id] = account
        for account in self.new_accounts:
            accounts[account.tenant_id][account.id] = account
        states = {**self.opening.balances, **{a.id: BalanceState(a.id) for a in self.new_accounts},
                  **self.written_balances}
        wrote = self._writes() or self.opening.created_heads
        memory.learn(self.opening, self.heads if wrote else self.heads_read, accounts, states, wrote)

    def _unsent(self) -> JournalRows:
        sent = self.sent
        return JournalRows(self.new_accounts[sent.accounts:], self.new_vouchers[sent.vouchers:],
                           self.new_records[sent.records:], self.events[sent.events:])

    def _mark_sent(self) -> None:
        self.sent = _Sent(len(self.new_accounts), len(self.new_vouchers), len(self.new_records), len(self.events))


class _View:
    """The batch's current state of one tenant's accounts, as rules may read it."""

    def __init__(self, batch: _Batch, tenant_id: str) -> None:
        self.batch, self.tenant_id = batch, tenant_id

    def _account(self, code: str) -> Account | None:
        return self.batch.by_code[self.tenant_id].get(code)

    def available(self, code: str) -> int | None:
        account = self._account(code)
        if account is None:
            return None
        return self.batch.balances[account.id].available(account.credit_limit)

    def metadata(self, code: str) -> dict[str, str] | None:
        account = self._account(code)
        return None if account is None else dict(account.metadata)


@dataclass(frozen=True, slots=True)
class _Sent:
    """How many of the batch's new accounts, vouchers, records and events are written already."""

    accounts: int = 0
    vouchers: int = 0
    records: int = 0
    events: int = 0


@dataclass(slots=True)
class _Accepted:
    vouchers: list[Voucher]
    changes: list[HoldChange]


_SPENDING = (HoldAction.CAPTURE, HoldAction.CONSUME)


def _spent_hold(sub: Submission) -> str | None:
    """The hold whose funds the submission's vouchers spend, if any."""
    return next((op.hold_id for op in sub.hold_ops if op.action in _SPENDING), None) if sub.hold_ops else None


def _with_hold(metadata: dict[str, str], sub: Submission) -> dict[str, str]:
    """A voucher's metadata, naming the hold it spends (`hold_id` is a key only the server sets)."""
    hold_id = _spent_hold(sub)
    return {**metadata, "hold_id": hold_id} if hold_id else dict(metadata)


def _signed_totals(vouchers: list[Voucher], accounts: dict[str, Account]) -> dict[str, int]:
    """How much the vouchers move each account's balance, on its normal side."""
    totals: dict[str, int] = defaultdict(int)
    for line in (line for v in vouchers for line in v.lines):
        totals[line.account_id] += line.side.signed(line.amount, accounts[line.account_id].normal_side)
    return totals


def _check_spent_from_holds(changes: list[HoldChange], vouchers: list[Voucher]) -> None:
    """A capture or consumption must spend from the held account: its vouchers debit it that much."""
    for change in changes:
        if change.op.action not in _SPENDING:
            continue
        debited = sum(line.amount for v in vouchers for line in v.lines
                      if line.account_id == change.hold.account_id and line.side is Side.DEBIT)
        if debited < change.op.amount:
            raise precondition("HOLD_ACCOUNT_MISMATCH", f"hold {change.hold.id} is on another account than the "
                               "one this flow spends from", hold_id=change.hold.id)


def _stored_vouchers(conn: Connection, records: Iterable[IdempotencyRecord]) -> dict[str, Voucher]:
    """The vouchers that answer resends of requests already posted, by id."""
    ids: dict[str, list[str]] = defaultdict(list)
    for record in records:
        ids[record.tenant_id] += record.result.get("voucher_ids", ())
    return {v.id: v for tenant_id, voucher_ids in ids.items()
            for v in journal_repo.get_vouchers(conn, tenant_id, voucher_ids)}


def hold_from(data: dict) -> Hold:
    return Hold(**{**data, "status": HoldStatus(data["status"]),
                   "capture_voucher_ids": tuple(data["capture_voucher_ids"])})
