"""Reconciliation handlers: import a statement and match it (transaction layer), report it with the fund
proof (fund layer), and resolve an item by posting through the rule set (accounting layer).

No posting reads these rows, so their transactions skip the posting gate (`UnitOfWork.append`): an import or
a batch never makes postings wait; they are still SERIALIZABLE (BEGIN IMMEDIATE on SQLite)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from tally.domain.accounts import Account, Side
from tally.domain.errors import (
    ErrorKind,
    LedgerError,
    invalid,
    missing_account,
    not_accessible,
    not_found,
    precondition,
)
from tally.domain.facts import Facts
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.flows import RuleFlow
from tally.domain.ids import new_id
from tally.domain.money import Currency
from tally.domain.reconciliation import (
    REFERENCE_KEYS,
    FundProof,
    ItemState,
    LedgerEntry,
    Match,
    Resolution,
    Statement,
    match,
    resolution_for,
)
from tally.domain.vouchers import AccountRef
from tally.rules.engine import RuleSet
from tally.service import paging
from tally.service.commands import PostFlow
from tally.service.posting.handlers import Posting
from tally.service.settlement.statements import CsvColumns, StatementFormat, check_size, parse_camt053, parse_csv
from tally.storage import accounts_repo, journal_repo, recon_repo
from tally.storage.recon_repo import ItemRow, StatementRow
from tally.storage.tables import matchable, voucher_lines
from tally.storage.uow import UnitOfWork

ENTRIES_PER_STATEMENT_MAX = 20_000
VOUCHERS_PER_READ_MAX = 500
OPEN_ITEMS_IN_REPORT_MAX = 1000


@dataclass(frozen=True)
class ImportStatement:
    tenant_id: str
    request_id: str
    account: AccountRef
    format: StatementFormat
    content: bytes
    statement_id: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # CSV: field -> header, over the layout's
    closing_balance: int | None = None
    window_days: int = 3
    actor: str = ""
    layout: str = ""  # CSV: a statement layout of the rule set


@dataclass(frozen=True)
class ResolveItem:
    tenant_id: str
    request_id: str
    item_id: str
    resolution: Resolution
    party: str = ""
    memo: str = ""
    actor: str = ""


@dataclass(frozen=True)
class StateCount:
    state: ItemState
    items: int
    ours: int
    theirs: int
    open_items: int


@dataclass(frozen=True)
class Imported:
    statement: StatementRow
    account_code: str
    counts: list[StateCount]
    replayed: bool


@dataclass(frozen=True)
class Report:
    statement: StatementRow
    account_code: str
    counts: list[StateCount]
    open_items: list[ItemRow]
    open_items_truncated: bool
    proof: FundProof | None


@dataclass(frozen=True)
class Resolved:
    item: ItemRow
    voucher_ids: tuple[str, ...]
    replayed: bool


class Reconciliation:
    def __init__(self, uow: UnitOfWork, posting: Posting, rules: RuleSet, currencies: dict[str, Currency],
                 clock: Callable[[], int]) -> None:
        self.uow, self.posting, self.rules, self.currencies, self.clock = uow, posting, rules, currencies, clock

    # -- import --------------------------------------------------------------------------------

    def import_statement(self, cmd: ImportStatement) -> Imported:
        check_tenant(cmd.tenant_id)
        check_request_id(cmd.request_id)
        check_size(cmd.content)  # before reading anything
        account = self.uow.read({cmd.tenant_id}, lambda conn: _account(conn, cmd.tenant_id, cmd.account))
        statement = self._parsed(cmd, self._currency(account.currency))  # the whole file, before any write
        digest = hashlib.sha256(cmd.content).hexdigest()

        def work(conn: Connection) -> Imported:
            earlier = _earlier(conn, cmd.tenant_id, account.id, statement.statement_id, digest)
            if earlier is not None:
                return Imported(earlier, account.code, _counts(conn, earlier.id), True)
            row = self._import(conn, cmd, account, statement, digest)
            return Imported(row, account.code, _counts(conn, row.id), False)

        try:
            return self.uow.append({cmd.tenant_id}, work)
        except IntegrityError:  # a concurrent import of the same statement won: answer with it
            return self.uow.append({cmd.tenant_id}, work)

    def _parsed(self, cmd: ImportStatement, currency: Currency) -> Statement:
        if cmd.format is StatementFormat.CSV:
            return parse_csv(cmd.content, currency, cmd.statement_id, self._columns(cmd), cmd.closing_balance)
        if cmd.statement_id or cmd.closing_balance is not None or cmd.layout or cmd.columns:
            raise invalid("STATEMENT_FIELD_UNEXPECTED", "a camt.053 file carries its own statement id, closing "
                          "balance and layout", field="statement_id" if cmd.statement_id else "closing_balance")
        return parse_camt053(cmd.content, currency)

    def _currency(self, code: str) -> Currency:
        return self.currencies[code]

    def _columns(self, cmd: ImportStatement) -> CsvColumns:
        """The CSV columns: the defaults, then the rule set's layout, then the request's own names."""
        if cmd.layout and cmd.layout not in self.rules.statements:
            raise invalid("STATEMENT_LAYOUT_UNKNOWN", f"the rule set has no statement layout {cmd.layout!r}",
                          field="csv_layout", layouts=",".join(sorted(self.rules.statements)))
        names = {**(self.rules.statements.get(cmd.layout, {}) if cmd.layout else {}), **cmd.columns}
        unknown = sorted(set(names) - set(CsvColumns.__dataclass_fields__))
        if unknown:
            raise invalid("STATEMENT_COLUMN_UNKNOWN", f"no CSV field {unknown[0]!r}", field=unknown[0])
        return CsvColumns(**names)

    def _import(self, conn: Connection, cmd: ImportStatement, account: Account, statement: Statement,
                digest: str) -> StatementRow:
        start, end = statement.period()
        entries, ledger_balance = _entries(conn, cmd.tenant_id, account, start, end)
        used = recon_repo.used_entry_keys(conn, cmd.tenant_id, account.id, start, end)
        resolving = recon_repo.resolving_voucher_ids(conn, cmd.tenant_id, account.id)
        free = [e for e in entries if e.key not in used and e.voucher_id not in resolving]
        matches = match(statement.lines, free, cmd.window_days)
        row = StatementRow(new_id(), cmd.tenant_id, account.id, statement.statement_id, digest,
                           cmd.format.value, statement.currency, start, end, len(statement.lines),
                           statement.closing_balance, ledger_balance, cmd.request_id, cmd.actor, self.clock())
        items = [_item_row(row, account.id, position, m, row.created_us) for position, m in enumerate(matches, 1)]
        by_line = {no: item.id for item, m in zip(items, matches, strict=True) for no in m.line_nos}
        recon_repo.insert_statement(conn, row, items, [(by_line[ln.line_no], ln) for ln in statement.lines])
        return row

    # -- reports -------------------------------------------------------------------------------

    def report(self, tenant_id: str, account: AccountRef, statement_id: str) -> Report:
        check_tenant(tenant_id)

        def read(conn: Connection) -> Report:
            found, row = _statement(conn, tenant_id, account, statement_id)
            items = recon_repo.list_items(conn, row.id, after_position=0, limit=OPEN_ITEMS_IN_REPORT_MAX + 1,
                                          open_only=True)
            counts = _counts(conn, row.id)
            proof = None
            if row.closing_balance is not None:
                moved = _moved(conn, tenant_id, found, recon_repo.resolved_voucher_ids(conn, row.id))
                proof = FundProof(row.ledger_balance, moved, row.closing_balance, _open_sum(conn, row.id))
            return Report(row, found.code, counts, items[:OPEN_ITEMS_IN_REPORT_MAX],
                          len(items) > OPEN_ITEMS_IN_REPORT_MAX, proof)

        return self.uow.read({tenant_id}, read)

    def list_items(self, tenant_id: str, account: AccountRef, statement_id: str, state: ItemState | None,
                   page_size: int, page_token: str) -> tuple[list[ItemRow], str]:
        check_tenant(tenant_id)
        size = paging.page_size(page_size)

        def read(conn: Connection) -> tuple[list[ItemRow], str]:
            _, row = _statement(conn, tenant_id, account, statement_id)
            query = {"list": "recon_items", "tenant": tenant_id, "statement": row.id,
                     "state": state.value if state else ""}
            after = paging.decode(page_token, query, 0)
            items = recon_repo.list_items(conn, row.id, after_position=after, limit=size + 1, state=state)
            token = paging.encode(items[size - 1].position, query) if len(items) > size else ""
            return items[:size], token

        return self.uow.read({tenant_id}, read)

    # -- resolution ----------------------------------------------------------------------------

    async def resolve(self, cmd: ResolveItem) -> Resolved:
        check_tenant(cmd.tenant_id)
        check_request_id(cmd.request_id)
        item, account = await asyncio.to_thread(self.uow.read, {cmd.tenant_id}, lambda c: self._item(c, cmd))
        if item.resolution is not Resolution.NONE:
            if item.resolution_request_id != cmd.request_id or item.resolution is not cmd.resolution:
                raise precondition("ITEM_ALREADY_RESOLVED", f"item {item.id} is resolved already "
                                   f"({item.resolution.value})", item_id=item.id)
            if item.voucher_ids:
                return Resolved(item, item.voucher_ids, True)
        resolution = resolution_for(item.state, item.difference, cmd.resolution)
        facts = self._facts(item, account, resolution, cmd.party)
        claimed = await asyncio.to_thread(self.uow.append, {cmd.tenant_id}, lambda c: recon_repo.claim_item(
            c, item, resolution, cmd.request_id, cmd.actor, self.clock()))
        if not claimed and item.resolution is Resolution.NONE:
            raise precondition("ITEM_ALREADY_RESOLVED", f"item {item.id} was resolved meanwhile", item_id=item.id)
        post = PostFlow(cmd.tenant_id, cmd.request_id, RuleFlow(facts),
                        memo=cmd.memo or f"reconciliation item {item.id}: {resolution.value}",
                        metadata=self._metadata(item, resolution), actor=cmd.actor)
        try:
            posted = await self.posting.post(post)
        except LedgerError:
            await asyncio.to_thread(self.uow.append, {cmd.tenant_id},
                                    lambda c: recon_repo.release_item(c, item.id, cmd.request_id, self.clock()))
            raise
        ids = tuple(v.id for v in posted.vouchers)
        await asyncio.to_thread(self.uow.append, {cmd.tenant_id},
                                lambda c: recon_repo.finish_item(c, item.id, cmd.request_id, ids, self.clock()))
        done = await asyncio.to_thread(self.uow.read, {cmd.tenant_id},
                                       lambda c: recon_repo.get_item(c, cmd.tenant_id, item.id))
        return Resolved(done, ids, posted.replayed)

    def _item(self, conn: Connection, cmd: ResolveItem) -> tuple[ItemRow, Account]:
        item = recon_repo.get_item(conn, cmd.tenant_id, cmd.item_id) if cmd.item_id and matchable(cmd.item_id) \
            else None
        if item is None:
            raise not_accessible("item", cmd.item_id)
        account = accounts_repo.get_account(conn, cmd.tenant_id, AccountRef(id=item.account_id))
        return item, account

    def _facts(self, item: ItemRow, account: Account, resolution: Resolution, party: str) -> Facts:
        found = self.rules.template_for(account.code)
        kind = account.code.split(":", 1)[0]
        parties = {k: v for k, v in (found[1] if found else {}).items() if k != "currency"}
        amount = abs(item.difference)
        if resolution is Resolution.SUPPLEMENTARY:
            return _supplementary(kind, parties, party, amount, account.currency)
        fall = "shortfall" if resolution is Resolution.SHORT_FALL else "longfall"
        return Facts("reconciliation", account.currency, {"amount": amount}, parties, {"kind": fall, "account": kind})

    def _metadata(self, item: ItemRow, resolution: Resolution) -> dict[str, str]:
        metadata = {"reconciliation_item": item.id}
        references = [ln.reference for ln in item.lines if ln.reference]
        if resolution is Resolution.SUPPLEMENTARY and references:
            metadata["channel_ref"] = references[0]
        return metadata


def _supplementary(kind: str, parties: dict[str, str], party: str, amount: int, currency: str) -> Facts:
    """The flow a statement line with no entry here stands for: the seed's platform supplementary order."""
    if not party:
        raise invalid("PARTY_MISSING", "a supplementary posting names the merchant (channel clearing) or the "
                      "consumer (processor clearing) of the missing flow", field="party")
    if kind == "channel_clearing":
        return Facts("acquisition", currency, {"amount": amount, "coupon_amount": 0, "coupon_merchant_share_bps": 0},
                     {"merchant": party, "channel": parties.get("channel", "")}, {"coupon_issuer": ""})
    if kind == "processor_clearing":
        return Facts("funding", currency, {"amount": amount},
                     {"consumer": party, "processor": parties.get("processor", "")})
    raise invalid("RESOLUTION_MISMATCH", f"no supplementary flow is known for {kind} accounts: resolve the item as a "
                  "short or long fall", account_kind=kind)


# -- reads -------------------------------------------------------------------------------------------


def _account(conn: Connection, tenant_id: str, ref: AccountRef) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)
    return account


def _statement(conn: Connection, tenant_id: str, ref: AccountRef, statement_id: str) -> tuple[Account, StatementRow]:
    account = _account(conn, tenant_id, ref)
    row = recon_repo.find_statement(conn, tenant_id, account.id, statement_id=statement_id) \
        if statement_id and matchable(statement_id) else None
    if row is None:
        raise not_found("STATEMENT_NOT_FOUND", f"no statement {statement_id!r} was imported for {account.code}",
                        statement_id=statement_id)
    return account, row


def _earlier(conn: Connection, tenant_id: str, account_id: str, statement_id: str, digest: str) -> StatementRow | None:
    """The earlier import this one repeats: the same file, or the same statement id (with the same file;
    another file under a used statement id is refused)."""
    same_id = recon_repo.find_statement(conn, tenant_id, account_id, statement_id=statement_id)
    if same_id is not None and same_id.digest != digest:
        raise LedgerError(ErrorKind.ALREADY_EXISTS, "STATEMENT_ID_REUSED",
                          f"statement {statement_id} was imported from another file", statement_id=statement_id)
    return same_id or recon_repo.find_statement(conn, tenant_id, account_id, digest=digest)


def _entries(conn: Connection, tenant_id: str, account: Account, start: str, end: str
             ) -> tuple[list[LedgerEntry], int]:
    """The account's entries dated within the period, with their references, and its balance after the last
    of them (or before the period, when it has none)."""
    rows = journal_repo.list_entries(conn, tenant_id, account.id, after_entry=0,
                                     limit=ENTRIES_PER_STATEMENT_MAX + 1, start_date=start or None,
                                     end_date=end or None) if start else []
    if len(rows) > ENTRIES_PER_STATEMENT_MAX:
        raise precondition("RECONCILIATION_TOO_LARGE", f"the period holds more than {ENTRIES_PER_STATEMENT_MAX} "
                           "entries: import shorter statements", entries_max=ENTRIES_PER_STATEMENT_MAX)
    refs = _references(conn, tenant_id, sorted({r.voucher_id for r in rows}))
    normal = account.normal_side
    entries = [LedgerEntry(f"{r.voucher_id}:{r.line_no}", r.voucher_id, Side(r.side).signed(r.amount, normal),
                           r.accounting_date, refs[r.voucher_id]) for r in rows]
    if rows:
        return entries, rows[-1].balance_after
    last = journal_repo.last_entry_where(conn, account.id, voucher_lines.c.accounting_date, end) if end else 0
    balance = conn.execute(select(voucher_lines.c.balance_after).where(
        voucher_lines.c.account_id == account.id, voucher_lines.c.entry_number == last)).scalar() if last else 0
    return entries, balance or 0


def _references(conn: Connection, tenant_id: str, voucher_ids: list[str]) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for start in range(0, len(voucher_ids), VOUCHERS_PER_READ_MAX):
        for v in journal_repo.get_vouchers(conn, tenant_id, voucher_ids[start:start + VOUCHERS_PER_READ_MAX]):
            found[v.id] = frozenset({v.id, v.request_id, *(v.metadata[k] for k in REFERENCE_KEYS if v.metadata.get(k))})
    return found


def _moved(conn: Connection, tenant_id: str, account: Account, voucher_ids: list[str]) -> int:
    """What the resolution vouchers moved the account by, signed on its normal side."""
    total = 0
    for start in range(0, len(voucher_ids), VOUCHERS_PER_READ_MAX):
        for v in journal_repo.get_vouchers(conn, tenant_id, voucher_ids[start:start + VOUCHERS_PER_READ_MAX]):
            total += sum(ln.side.signed(ln.amount, account.normal_side) for ln in v.lines
                         if ln.account_id == account.id)
    return total


def _open_sum(conn: Connection, statement_row_id: str) -> int:
    return sum(ours - theirs for state, resolution, _, ours, theirs in recon_repo.count_items(conn, statement_row_id)
               if state != ItemState.MATCHED.value and resolution == Resolution.NONE.value)


def _counts(conn: Connection, statement_row_id: str) -> list[StateCount]:
    totals = {state: [0, 0, 0, 0] for state in ItemState}
    for state, resolution, n, ours, theirs in recon_repo.count_items(conn, statement_row_id):
        t = totals[ItemState(state)]
        t[0], t[1], t[2] = t[0] + n, t[1] + ours, t[2] + theirs
        if state != ItemState.MATCHED.value and resolution == Resolution.NONE.value:
            t[3] += n
    return [StateCount(state, *t) for state, t in totals.items()]


def _item_row(statement: StatementRow, account_id: str, position: int, m: Match, now: int) -> ItemRow:
    return ItemRow(new_id(), statement.tenant_id, statement.id, account_id, position, m.state, m.rule, m.ours,
                   m.theirs, m.entry_keys, Resolution.NONE, "", (), "", 0, now)
