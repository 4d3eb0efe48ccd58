"""The ledger audit: proves a tenant's balances from its journal, incrementally.

One run reads, in one read-only snapshot:
- the vouchers after the checkpoint, in sequence pages with their lines: each voucher's sequence, link and
  content hash (the hash chain), each voucher balanced per currency, each line's copies of the voucher's
  date and time; and each account's running balance: every line's entry number follows the previous one
  and its balance_after is the previous balance_after plus its signed amount;
- every balance row against its account's journal: current equals the sum of the lines and the last
  line's balance_after, entry_count the last entry number, last_date the last line's date, previous_day
  the balance at the end of the day before it; locked equals what the active holds still reserve;
- the ledger head against the last voucher (sequence and hash) and the last event; event sequences
  without a gap; the audit log's hash chain and its head.

A checkpoint (audit_checkpoints, audit_account_sums) keeps where the last run stopped and what each
account's lines added up to there, with a digest of those sums: a routine run reads only the vouchers,
events and audit rows written since, plus one row per account (balances, sums). `full` starts from the
first voucher. A checkpoint that no longer matches the journal (the voucher it ends at changed its hash) or
its own digest is reported and the run starts from the first voucher instead.

Work stops between pages when `should_stop()` says so (the caller went away, or the server stops).
Afterwards, accounts whose balance the audit found inconsistent are marked `inconsistent` (the writer then
refuses them ACCOUNT_INCONSISTENT until an operator sets them active again), and the checkpoint advances
over what checked out.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection

from tally.domain.accounts import AccountStatus
from tally.domain.audit_trail import GENESIS_HASH as AUDIT_GENESIS
from tally.domain.audit_trail import HASHED_FIELDS, audit_row_hash
from tally.domain.fields import check_tenant
from tally.domain.vouchers import GENESIS_HASH, AccountRef, content_hash
from tally.service.posting.events import account_payload, append_event
from tally.storage import accounts_repo, audit_repo
from tally.storage.audit_repo import AccountSums, Checkpoint
from tally.storage.uow import UnitOfWork

PAGE_VOUCHERS = 2000
PAGE_AUDIT_ROWS = 5000
FINDINGS_MAX = 1000  # kept per run; the rest are counted
EVENT_GAPS_MAX = 20
CONTENT = "its content does not match its hash"
LINK = "its link to the previous voucher does not match that voucher's hash"
AUDIT_ACTOR = "system:ledger-audit"


class FindingKind(enum.Enum):
    VOUCHER_SEQUENCE = "voucher_sequence"  # a gap (or a repeat) in the voucher sequence
    VOUCHER_LINK = "voucher_link"  # previous_hash is not the previous voucher's hash
    VOUCHER_HASH = "voucher_hash"  # content (lines included) no longer matches the hash
    VOUCHER_UNBALANCED = "voucher_unbalanced"  # debits != credits in a currency
    LINE_ACCOUNT = "line_account"  # a line names an account that is not the tenant's
    ENTRY_NUMBER = "entry_number"  # an account's entry numbers have a gap
    BALANCE_AFTER = "balance_after"  # balance_after != previous balance_after + signed amount
    BALANCE_CURRENT = "balance_current"  # balance row's current != sum of the account's lines
    BALANCE_LAST_ENTRY = "balance_last_entry"  # current != the last line's balance_after
    ENTRY_COUNT = "entry_count"
    LAST_DATE = "last_date"
    PREVIOUS_DAY = "previous_day"
    LOCKED = "locked"  # locked != what the active holds reserve
    BALANCE_MISSING = "balance_missing"  # lines without a balance row
    HEAD_VOUCHER = "head_voucher"  # the ledger head's voucher sequence is not the last voucher's
    HEAD_HASH = "head_hash"  # the ledger head's hash is not the last voucher's
    HEAD_EVENT = "head_event"  # the ledger head's event sequence is not the last event's
    EVENT_GAP = "event_gap"
    AUDIT_LOG_LINK = "audit_log_link"
    AUDIT_LOG_HASH = "audit_log_hash"
    AUDIT_LOG_HEAD = "audit_log_head"
    CHECKPOINT = "checkpoint"  # the stored checkpoint no longer matches: the run started from the beginning


# Findings about one account's balance: the account is marked inconsistent.
ACCOUNT_KINDS = frozenset({
    FindingKind.ENTRY_NUMBER, FindingKind.BALANCE_AFTER, FindingKind.BALANCE_CURRENT, FindingKind.BALANCE_LAST_ENTRY,
    FindingKind.ENTRY_COUNT, FindingKind.LAST_DATE, FindingKind.PREVIOUS_DAY, FindingKind.LOCKED,
    FindingKind.BALANCE_MISSING,
})
# Findings in the journal itself: the checkpoint does not move past them (every run reports them again).
JOURNAL_KINDS = frozenset({
    FindingKind.VOUCHER_SEQUENCE, FindingKind.VOUCHER_LINK, FindingKind.VOUCHER_HASH, FindingKind.VOUCHER_UNBALANCED,
    FindingKind.LINE_ACCOUNT, FindingKind.ENTRY_NUMBER, FindingKind.BALANCE_AFTER,
})
EVENT_KINDS = frozenset({FindingKind.HEAD_EVENT, FindingKind.EVENT_GAP})
AUDIT_LOG_KINDS = frozenset({FindingKind.AUDIT_LOG_LINK, FindingKind.AUDIT_LOG_HASH, FindingKind.AUDIT_LOG_HEAD})
MARKABLE = (AccountStatus.ACTIVE, AccountStatus.FROZEN)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    message: str
    account_id: str = ""
    voucher_id: str = ""
    sequence: int = 0  # the voucher's, event's or audit row's, when the finding is about one
    expected: str = ""
    found: str = ""


@dataclass(frozen=True)
class Progress:
    vouchers_read: int
    through_sequence: int  # the last voucher sequence read
    last_sequence: int  # the ledger head's, when the run started


@dataclass
class AuditReport:
    tenant_id: str
    full: bool
    findings: list[Finding] = field(default_factory=list)
    findings_omitted: int = 0
    # The hash chain, as VerifyChain always reported it: vouchers that checked out before the first break.
    vouchers_checked: int = 0
    broken_voucher_id: str = ""
    broken_sequence: int = 0
    problem: str = ""
    head_hash: str = ""
    # What the run read: a routine run reads only what follows the checkpoint.
    from_sequence: int = 0
    through_sequence: int = 0
    vouchers_read: int = 0
    lines_read: int = 0
    events_checked: int = 0
    audit_rows_read: int = 0
    accounts_checked: int = 0
    marked_inconsistent: list[str] = field(default_factory=list)
    checkpoint_saved: bool = False
    duration_ms: int = 0

    @property
    def intact(self) -> bool:
        return not self.findings and not self.findings_omitted

    @property
    def finding_count(self) -> int:
        return len(self.findings) + self.findings_omitted

    def kinds(self) -> set[FindingKind]:
        return {f.kind for f in self.findings}


class AuditCancelled(Exception):
    """The caller went away (or the server is stopping): the run stopped between two pages."""


def sums_digest(sums: dict[str, AccountSums]) -> str:
    digest = hashlib.sha256()
    for account_id in sorted(sums):
        s = sums[account_id]
        digest.update(f"{account_id}|{s.entry_count}|{s.line_sum}|{s.last_balance}|{s.last_date}|"
                      f"{s.previous_day}\n".encode())
    return digest.hexdigest()


@dataclass
class _Start:
    """Where a run starts: the checkpoint's state, or the beginning."""

    voucher_sequence: int = 0
    head_hash: str = GENESIS_HASH
    sums: dict[str, AccountSums] = field(default_factory=dict)
    event_sequence: int = 0
    audit_log_id: int = 0
    audit_log_hash: str = AUDIT_GENESIS
    audit_log_count: int = 0
    checkpoint: Checkpoint | None = None  # the stored one this run builds on (None: from the beginning)


class LedgerAudit:
    """Runs the audit of one tenant: `run` (blocking; call it in a thread)."""

    def __init__(self, uow: UnitOfWork, clock: Callable[[], int]) -> None:
        self.uow, self.clock = uow, clock

    def run(self, tenant_id: str, *, full: bool = False, mark: bool = True, save: bool = True,
            should_stop: Callable[[], bool] = lambda: False,
            progress: Callable[[Progress], None] | None = None) -> AuditReport:
        check_tenant(tenant_id)
        started = time.monotonic()
        run = _Run(tenant_id, full, should_stop, progress)
        self.uow.read({tenant_id}, run.read)
        report = run.report
        if should_stop():
            raise AuditCancelled()
        if mark:
            report.marked_inconsistent = self._mark(tenant_id, run.inconsistent_accounts())
        if save:
            report.checkpoint_saved = self._save(run)
        report.duration_ms = int((time.monotonic() - started) * 1000)
        return report

    def _mark(self, tenant_id: str, account_ids: dict[str, Finding]) -> list[str]:
        """Marks the accounts inconsistent (those active or frozen), with an `account.updated` event each, in
        one write transaction: the writer refuses them from its next batch on."""
        if not account_ids:
            return []
        now = self.clock()

        def work(conn: Connection) -> list[str]:
            marked = []
            for account_id, finding in sorted(account_ids.items()):
                account = accounts_repo.get_account(conn, tenant_id, _ref(account_id))
                if account is None or account.status not in MARKABLE:
                    continue
                updated = replace(account, status=AccountStatus.INCONSISTENT, updated_us=now)
                accounts_repo.update_account(conn, updated)
                append_event(conn, tenant_id, "account.updated",
                             {**account_payload(updated), "change": {"status": "inconsistent"},
                              "reason": f"ledger audit: {finding.kind.value}: {finding.message}"},
                             now, account_id=account_id)
                marked.append(account_id)
            return marked

        return self.uow.write({tenant_id}, work)

    def _save(self, run: _Run) -> bool:
        """Moves the checkpoint over what checked out; not when another run moved it meanwhile."""
        checkpoint, sums = run.next_checkpoint(self.clock())

        def work(conn: Connection) -> bool:
            stored = audit_repo.load_checkpoint(conn, run.tenant_id)
            if stored is not None and stored != run.start.checkpoint and (
                    not run.full or stored.voucher_sequence > checkpoint.voucher_sequence):
                return False
            audit_repo.save_checkpoint(conn, checkpoint, sums)
            return True

        return self.uow.append({run.tenant_id}, work)


def _ref(account_id: str) -> AccountRef:
    return AccountRef(id=account_id)


class _Run:
    def __init__(self, tenant_id: str, full: bool, should_stop: Callable[[], bool],
                 progress: Callable[[Progress], None] | None) -> None:
        self.tenant_id, self.full = tenant_id, full
        self.should_stop, self.progress = should_stop, progress
        self.report = AuditReport(tenant_id, full)
        self.start = _Start()
        self.sums: dict[str, AccountSums] = {}
        self.touched: set[str] = set()
        self.accounts: dict[str, tuple[str, str, str]] = {}
        self.last_sequence = 0
        self.last_hash = GENESIS_HASH
        self.last_event = 0
        self.audit_state = (0, AUDIT_GENESIS, 0)  # last id, last hash, count

    # ------------------------------------------------------------------------------------------ findings

    def find(self, kind: FindingKind, message: str, **where: object) -> None:
        if len(self.report.findings) >= FINDINGS_MAX:
            self.report.findings_omitted += 1
            return
        values = {k: str(v) if k in ("expected", "found") else v for k, v in where.items()}
        self.report.findings.append(Finding(kind, message, **values))

    def _has(self, kinds: frozenset[FindingKind]) -> bool:
        return any(f.kind in kinds for f in self.report.findings) or (
            self.report.findings_omitted > 0 and kinds is JOURNAL_KINDS)

    def inconsistent_accounts(self) -> dict[str, Finding]:
        found: dict[str, Finding] = {}
        for finding in self.report.findings:
            if finding.kind in ACCOUNT_KINDS and finding.account_id:
                found.setdefault(finding.account_id, finding)
        return found

    def _stop_if_asked(self) -> None:
        if self.should_stop():
            raise AuditCancelled()

    # ------------------------------------------------------------------------------------------ the read

    def read(self, conn: Connection) -> None:
        head = audit_repo.ledger_head(conn, self.tenant_id)
        self.accounts = audit_repo.account_sides(conn, self.tenant_id)
        self.start = self._start(conn)
        self.report.full = self.full  # a run without a usable checkpoint is a full one
        self.sums = {k: replace(v) for k, v in self.start.sums.items()}
        self.report.from_sequence = self.start.voucher_sequence
        self._journal(conn, head.voucher_sequence if head else 0)
        self._balances(conn)
        self._head(head)
        self._events(conn, head)
        self._audit_log(conn)

    def _start(self, conn: Connection) -> _Start:
        if self.full:
            return _Start()
        checkpoint = audit_repo.load_checkpoint(conn, self.tenant_id)
        if checkpoint is None:
            self.full = True  # nothing to build on: this run is the first full one
            return _Start()
        sums = audit_repo.load_sums(conn, self.tenant_id)
        problem = self._checkpoint_problem(conn, checkpoint, sums)
        if problem:
            self.find(FindingKind.CHECKPOINT, f"{problem}; audited from the first voucher instead",
                      sequence=checkpoint.voucher_sequence)
            self.full = True
            return _Start()
        return _Start(checkpoint.voucher_sequence, checkpoint.head_hash, sums, checkpoint.event_sequence,
                      checkpoint.audit_log_id, checkpoint.audit_log_hash, checkpoint.audit_log_count, checkpoint)

    def _checkpoint_problem(self, conn: Connection, checkpoint: Checkpoint, sums: dict[str, AccountSums]) -> str:
        if checkpoint.voucher_sequence:
            stored = audit_repo.voucher_hash_at(conn, self.tenant_id, checkpoint.voucher_sequence)
            if stored != checkpoint.head_hash:
                return (f"voucher {checkpoint.voucher_sequence} has hash {stored or 'none'}, the checkpoint recorded "
                        f"{checkpoint.head_hash}: the journal before the checkpoint changed")
        if len(sums) != checkpoint.account_count or sums_digest(sums) != checkpoint.sums_digest:
            return "the account sums kept with the checkpoint no longer match its digest"
        if checkpoint.audit_log_id:
            rows = audit_repo.audit_rows(conn, self.tenant_id, checkpoint.audit_log_id - 1, 1)
            if not rows or rows[0].id != checkpoint.audit_log_id or rows[0].hash != checkpoint.audit_log_hash:
                return f"audit row {checkpoint.audit_log_id} no longer has the hash the checkpoint recorded"
        return ""

    # ------------------------------------------------------------------------------------------ the journal

    def _journal(self, conn: Connection, head_sequence: int) -> None:
        previous, after = self.start.head_hash, self.start.voucher_sequence
        expected = after + 1
        while True:
            self._stop_if_asked()
            page = audit_repo.voucher_page(conn, self.tenant_id, after, PAGE_VOUCHERS)
            if not page:
                break
            lines: dict[str, list] = defaultdict(list)
            rows = audit_repo.lines_of(conn, self.tenant_id, page[0].sequence, page[-1].sequence)
            for line in rows:
                lines[line[0]].append(line)
            for index, voucher in enumerate(page):
                self._voucher(voucher, lines.get(voucher.id, []), previous, expected, self.report.vouchers_read + index)
                previous, expected = voucher.hash, voucher.sequence + 1
            after = page[-1].sequence
            self.report.vouchers_read += len(page)
            self.report.lines_read += len(rows)
            if self.progress is not None:
                self.progress(Progress(self.report.vouchers_read, after, head_sequence))
        self.last_sequence, self.last_hash = after, previous
        self.report.through_sequence = after
        if not self.report.broken_voucher_id:
            self.report.vouchers_checked = self.report.vouchers_read
        self.report.head_hash = previous

    def _voucher(self, v, lines: list, previous: str, expected: int, read_before: int) -> None:
        problem, kind = "", None
        if v.sequence != expected:
            problem, kind = f"sequence {v.sequence} where {expected} was expected", FindingKind.VOUCHER_SEQUENCE
        elif v.previous_hash != previous:
            problem, kind = LINK, FindingKind.VOUCHER_LINK
        elif not self._content_matches(v, lines):
            problem, kind = CONTENT, FindingKind.VOUCHER_HASH
        if kind is not None:
            self.find(kind, f"voucher {v.id} (sequence {v.sequence}): {problem}", voucher_id=v.id,
                      sequence=v.sequence, **_expected_found(kind, v, previous, expected))
            if not self.report.broken_voucher_id:
                self.report.broken_voucher_id, self.report.broken_sequence = v.id, v.sequence
                self.report.problem = problem
                self.report.vouchers_checked = read_before  # all before it checked out
        self._balanced(v, lines)
        for line in lines:
            self._line(v, line)

    def _content_matches(self, v, lines: list) -> bool:
        # Lines as stored: (voucher_id, line_no, account_id, entry_number, side, amount, currency, memo,
        # balance_after, accounting_date, posted_us).
        date, posted = v.accounting_date, v.posted_us
        for ln in lines:
            if ln[9] != date or ln[10] != posted:
                return False  # a line's copy of the voucher's date or time (statements read it) was changed
        try:
            metadata = json.loads(v.metadata) if v.metadata != "{}" else {}
            return content_hash(
                v.previous_hash, v.id, self.tenant_id, v.sequence, v.flow_type, v.request_id, date, v.effective_us,
                posted, v.memo, metadata, v.reverses_id, v.rule_id, v.rule_set_version,
                [[ln[1], ln[2], ln[4], ln[5], ln[6], ln[7], ln[3], ln[8]] for ln in lines]) == v.hash
        except (ValueError, TypeError):
            return False

    def _balanced(self, v, lines: list) -> None:
        totals: dict[str, int] = defaultdict(int)
        for line in lines:
            totals[line[6]] += line[5] if line[4] == "debit" else -line[5]
        for currency, difference in sorted(totals.items()):
            if difference:
                self.find(FindingKind.VOUCHER_UNBALANCED,
                          f"voucher {v.id} (sequence {v.sequence}): debits and credits in {currency} differ by "
                          f"{difference}", voucher_id=v.id, sequence=v.sequence, expected=0, found=difference)

    def _line(self, v, line) -> None:
        _, line_no, account_id, entry_number, side, amount, _, _, balance_after, date, _ = line
        account = self.accounts.get(account_id)
        if account is None:
            self.find(FindingKind.LINE_ACCOUNT, f"voucher {v.id} line {line_no} names account {account_id}, which "
                      "is not the tenant's", voucher_id=v.id, sequence=v.sequence, account_id=account_id)
            return
        state = self.sums.get(account_id)
        if state is None:
            state = self.sums[account_id] = AccountSums()
        self.touched.add(account_id)
        signed = amount if side == account[1] else -amount
        if entry_number != state.entry_count + 1 or balance_after != state.last_balance + signed:
            self._line_findings(v, line, account[0], state, signed)
        if date > state.last_date:
            state.previous_day, state.last_date = state.last_balance, date
        # Follow what is stored, so that one wrong line is reported once, not again on every later line.
        state.entry_count, state.line_sum, state.last_balance = entry_number, state.line_sum + signed, balance_after

    def _line_findings(self, v, line, code: str, state: AccountSums, signed: int) -> None:
        _, line_no, account_id, entry_number, _, _, _, _, balance_after, _, _ = line
        if entry_number != state.entry_count + 1:
            self.find(FindingKind.ENTRY_NUMBER, f"account {code}: voucher {v.id} line {line_no} is entry "
                      f"{entry_number}, the entry after {state.entry_count} was expected", account_id=account_id,
                      voucher_id=v.id, sequence=v.sequence, expected=state.entry_count + 1, found=entry_number)
        expected = state.last_balance + signed
        if balance_after != expected:
            self.find(FindingKind.BALANCE_AFTER, f"account {code}: entry {entry_number} (voucher {v.id} line "
                      f"{line_no}) has balance_after {balance_after}, the previous balance {state.last_balance} "
                      f"plus {signed} is {expected}", account_id=account_id, voucher_id=v.id, sequence=v.sequence,
                      expected=expected, found=balance_after)

    # ------------------------------------------------------------------------------------------ balances

    def _balances(self, conn: Connection) -> None:
        held = audit_repo.held_by_account(conn, self.tenant_id)
        rows = {row.account_id: row for row in audit_repo.balance_rows(conn, self.tenant_id)}
        self.report.accounts_checked = len(rows)
        for account_id, row in sorted(rows.items()):
            self._balance(account_id, row, self.sums.get(account_id) or AccountSums(), held.get(account_id, 0))
        for account_id in sorted(set(self.sums) - set(rows)):
            s = self.sums[account_id]
            self.find(FindingKind.BALANCE_MISSING, f"account {self._code(account_id)} has {s.entry_count} entries "
                      "and no balance row", account_id=account_id, expected=s.line_sum, found="no balance row")

    def _code(self, account_id: str) -> str:
        return self.accounts.get(account_id, (account_id,))[0]

    def _balance(self, account_id: str, row, s: AccountSums, held: int) -> None:
        code = self._code(account_id)
        if row.current != s.line_sum:
            self.find(FindingKind.BALANCE_CURRENT, f"account {code}: current is {row.current}, its {s.entry_count} "
                      f"entries sum to {s.line_sum}", account_id=account_id, expected=s.line_sum, found=row.current)
        elif row.current != s.last_balance:
            self.find(FindingKind.BALANCE_LAST_ENTRY, f"account {code}: current is {row.current}, its last entry's "
                      f"balance_after is {s.last_balance}", account_id=account_id, expected=s.last_balance,
                      found=row.current)
        if row.entry_count != s.entry_count:
            self.find(FindingKind.ENTRY_COUNT, f"account {code}: entry_count is {row.entry_count}, its journal has "
                      f"{s.entry_count} entries", account_id=account_id, expected=s.entry_count, found=row.entry_count)
        if row.last_date != s.last_date:
            self.find(FindingKind.LAST_DATE, f"account {code}: last_date is {row.last_date!r}, its last entry is of "
                      f"{s.last_date!r}", account_id=account_id, expected=s.last_date, found=row.last_date)
        elif row.previous_day != s.previous_day:
            self.find(FindingKind.PREVIOUS_DAY, f"account {code}: previous_day is {row.previous_day}, the balance "
                      f"at the end of the day before {s.last_date} was {s.previous_day}", account_id=account_id,
                      expected=s.previous_day, found=row.previous_day)
        if row.locked != held:
            self.find(FindingKind.LOCKED, f"account {code}: locked is {row.locked}, its active holds reserve {held}",
                      account_id=account_id, expected=held, found=row.locked)

    # ------------------------------------------------------------------------------------------ heads, events

    def _head(self, head) -> None:
        head_sequence = head.voucher_sequence if head else 0
        head_hash = head.last_hash if head else GENESIS_HASH
        if head_sequence != self.last_sequence:
            self.find(FindingKind.HEAD_VOUCHER, f"the ledger head records voucher {head_sequence}, the journal "
                      f"ends at {self.last_sequence}", sequence=head_sequence, expected=self.last_sequence,
                      found=head_sequence)
        elif head_hash != self.last_hash:
            self.find(FindingKind.HEAD_HASH, f"the ledger head records hash {head_hash} for voucher "
                      f"{head_sequence}, the journal's is {self.last_hash}", sequence=head_sequence,
                      expected=self.last_hash, found=head_hash)
        if (head_sequence != self.last_sequence or head_hash != self.last_hash) and not self.report.problem:
            self.report.problem = (f"the head records voucher {head_sequence} with hash {head_hash[:12]}..., the "
                                   f"chain ends at {self.last_sequence} with {self.last_hash[:12]}...")
        if self.report.broken_voucher_id or self.report.problem:
            self.report.head_hash = head_hash

    def _events(self, conn: Connection, head) -> None:
        after = self.start.event_sequence
        count, last = audit_repo.event_span(conn, self.tenant_id, after)
        self.report.events_checked = count
        if count != last - after:
            for first, end in audit_repo.event_gaps(conn, self.tenant_id, after, last, EVENT_GAPS_MAX):
                self.find(FindingKind.EVENT_GAP, f"events {first} to {end} are missing" if end > first
                          else f"event {first} is missing", sequence=first, expected=f"events {first}..{end}",
                          found="missing")
        head_event = head.event_sequence if head else 0
        if head_event != last:
            self.find(FindingKind.HEAD_EVENT, f"the ledger head records event {head_event}, the last event is {last}",
                      sequence=head_event, expected=last, found=head_event)
        self.last_event = last

    # ------------------------------------------------------------------------------------------ the audit log

    def _audit_log(self, conn: Connection) -> None:
        last_id, previous, count = self.start.audit_log_id, self.start.audit_log_hash, self.start.audit_log_count
        while True:
            self._stop_if_asked()
            rows = audit_repo.audit_rows(conn, self.tenant_id, last_id, PAGE_AUDIT_ROWS)
            for row in rows:
                values = tuple(getattr(row, name) for name in HASHED_FIELDS)
                if row.previous_hash != previous:
                    self.find(FindingKind.AUDIT_LOG_LINK, f"audit row {row.id}: its link to the previous row does not "
                              "match that row's hash (a row before it was removed or changed)", sequence=row.id,
                              expected=previous, found=row.previous_hash)
                elif audit_row_hash(row.previous_hash, values) != row.hash:
                    self.find(FindingKind.AUDIT_LOG_HASH, f"audit row {row.id}: its content does not match its hash",
                              sequence=row.id, expected=audit_row_hash(row.previous_hash, values), found=row.hash)
                previous, last_id, count = row.hash, row.id, count + 1
            self.report.audit_rows_read += len(rows)
            if len(rows) < PAGE_AUDIT_ROWS:
                break
        head = audit_repo.audit_head(conn, self.tenant_id) or (AUDIT_GENESIS, 0)
        if head != (previous, count):
            self.find(FindingKind.AUDIT_LOG_HEAD, f"the audit log's head records {head[1]} rows ending in {head[0]}, "
                      f"the log holds {count} ending in {previous} (rows were removed or added)",
                      expected=f"{count} rows, {previous}", found=f"{head[1]} rows, {head[0]}")
        self.audit_state = (last_id, previous, count)

    # ------------------------------------------------------------------------------------------ the checkpoint

    def next_checkpoint(self, now_us: int) -> tuple[Checkpoint, dict[str, AccountSums]]:
        """The checkpoint after this run, and the sums rows to write (all of them after a full run)."""
        start, stored = self.start, self.start.checkpoint
        journal_ok = not self._has(JOURNAL_KINDS)
        if journal_ok:
            sequence, head_hash, sums = self.last_sequence, self.last_hash, self.sums
            changed = self.sums if self.full else {a: self.sums[a] for a in self.touched}
        else:
            sequence, head_hash, sums, changed = start.voucher_sequence, start.head_hash, start.sums, {}
        event = self.last_event if not self._has(EVENT_KINDS) else start.event_sequence
        audit = self.audit_state if not self._has(AUDIT_LOG_KINDS) else (
            start.audit_log_id, start.audit_log_hash, start.audit_log_count)
        checkpoint = Checkpoint(
            tenant_id=self.tenant_id, voucher_sequence=sequence, head_hash=head_hash, event_sequence=event,
            audit_log_id=audit[0], audit_log_hash=audit[1], audit_log_count=audit[2],
            sums_digest=sums_digest(sums), account_count=len(sums), findings=self.report.finding_count,
            full_us=now_us if self.full else (stored.full_us if stored else 0), verified_us=now_us)
        return checkpoint, changed


def _expected_found(kind: FindingKind, v, previous: str, expected: int) -> dict[str, object]:
    if kind is FindingKind.VOUCHER_SEQUENCE:
        return {"expected": expected, "found": v.sequence}
    if kind is FindingKind.VOUCHER_LINK:
        return {"expected": previous, "found": v.previous_hash}
    return {"expected": "the hash of its content", "found": v.hash}
