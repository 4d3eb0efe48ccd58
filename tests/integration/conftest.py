"""Integration fixtures: a migrated database with the real service stack on top of it.

``ledger`` is one "server process" (Engines + UnitOfWork + PostingPipeline + Queries, wired by
``tally.bootstrap.build_services``) on the test's ``database_url``, its pipeline started inside the
test's event loop; ``make_ledger`` builds more of them (another process on the same database, or one
with a custom clock).  ``Ledger`` has helpers to open accounts, post transfers and adjustments, and
``check_ledger`` verifies the invariants every database must hold afterwards, straight from the tables.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tally.bootstrap import build_services
from tally.config import Settings
from tally.domain.accounts import AccountChange, AccountStatus, AccountType, FloorPolicy, NewAccount, Side
from tally.domain.errors import LedgerError
from tally.domain.flows import AdjustmentFlow, TransferFlow
from tally.domain.ids import new_id
from tally.domain.vouchers import GENESIS_HASH, AccountRef, LineDraft, PostedLine, Voucher, voucher_hash
from tally.domain.webhooks import Delivery, Trigger, WebhookSpec
from tally.service import accounts as account_service
from tally.service.commands import CreateAccount, PostFlow, ReverseVoucher, UpdateAccount
from tally.service.posting.batch import Posted
from tally.service.posting.handlers import Posting
from tally.service.posting.pipeline import PostingPipeline, now_us
from tally.service.queries import Queries
from tally.service.webhooks.manage import WebhookAdmin
from tally.service.webhooks.secrets import SecretBox
from tally.storage import tables as t
from tally.storage import webhooks_repo
from tally.storage.engine import make_engines
from tally.storage.migrate import migrate
from tally.storage.uow import UnitOfWork
from tests.migrated import make_migrated

TENANT = "acme"
FUNDING = "funding"  # per-tenant internal, debit-normal, unbounded: where test money comes from


def ref(account: str) -> AccountRef:
    """An AccountRef from a code, or from an id (ids are 36-character UUIDs)."""
    return AccountRef(id=account) if len(account) == 36 and account.count("-") == 4 else AccountRef(code=account)


class Ledger:
    """One running instance of the service stack against one database."""

    def __init__(self, url: str, *, clock: Callable[[], int] = now_us, **settings) -> None:
        """`settings` override tally.config.Settings fields (retries_max, batch_size_max, queue_depth_max,
        day_cutoff_offset_minutes, ...)."""
        self.url = url
        self.settings = Settings(**{"database_url": url, "db_pool_size": 4, **settings})
        self.engines = make_engines(url, pool_size=self.settings.db_pool_size)
        services = build_services(self.settings, self.engines)
        self.uow = services.uow
        self.clock = clock
        self.currencies = frozenset(self.settings.currencies)
        if clock is now_us:
            self.pipeline, self.queries = services.pipeline, services.queries
        else:  # build_services has no clock parameter: same wiring, custom clock
            calendar = services.pipeline.calendar
            self.pipeline = PostingPipeline(self.uow, calendar, services.pipeline.limits, clock=clock)
            self.queries = Queries(self.uow, calendar, clock)
        self.calendar = self.pipeline.calendar
        self.posting = Posting(self.pipeline, self.uow, services.posting.rules, services.posting.currencies,
                               clock)
        self._request_no = 0
        self._started = False

    @property
    def dialect(self) -> str:
        return self.engines.dialect

    def start(self) -> None:
        self.pipeline.start()
        self._started = True

    async def close(self) -> None:
        if self._started:
            await self.pipeline.stop()
            self._started = False
        self.engines.dispose()

    def request_id(self, prefix: str = "r") -> str:
        self._request_no += 1
        return f"{prefix}-{id(self):x}-{self._request_no}"

    # -- accounts (synchronous: they run in their own write transaction, not through the pipeline) --

    def open(self, code: str, type_: AccountType = AccountType.DEPOSIT, *, tenant: str = TENANT,
             currency: str = "USD", normal_side: Side | None = None, floor: FloorPolicy | None = None,
             credit_limit: int = 0, name: str = "", parent: str | None = None):
        spec = NewAccount(code, type_, currency, normal_side=normal_side, floor_policy=floor,
                          credit_limit=credit_limit, name=name)
        cmd = CreateAccount(tenant, self.request_id("open"), spec, AccountRef(code=parent) if parent else None)
        return account_service.create_account(cmd, self.uow, self.currencies, self.clock).account

    def open_internal(self, code: str, normal_side: Side = Side.DEBIT, *, tenant: str = TENANT,
                      currency: str = "USD", floor: FloorPolicy = FloorPolicy.UNBOUNDED):
        return self.open(code, AccountType.INTERNAL, tenant=tenant, currency=currency, normal_side=normal_side,
                         floor=floor)

    def set_status(self, code: str, status: AccountStatus, *, tenant: str = TENANT):
        cmd = UpdateAccount(tenant, self.request_id("upd"), ref(code), AccountChange(status=status))
        return account_service.update_account(cmd, self.uow, self.clock).account

    # -- posting (through the pipeline) --

    async def transfer(self, source: str, destination: str, amount: int, *, tenant: str = TENANT,
                       currency: str = "USD", request_id: str | None = None, memo: str = "",
                       metadata: dict[str, str] | None = None, line_memo: str = "") -> Posted:
        flow = TransferFlow(ref(source), ref(destination), amount, currency, line_memo)
        cmd = PostFlow(tenant, request_id or self.request_id("xfer"), flow, memo=memo, metadata=metadata or {})
        return await self.posting.post(cmd)

    async def adjust(self, lines: list[tuple[str, Side, int]], *, tenant: str = TENANT, currency: str = "USD",
                     reason: str = "test adjustment", request_id: str | None = None, memo: str = "") -> Posted:
        drafts = tuple(LineDraft(ref(code), side, amount, currency) for code, side, amount in lines)
        cmd = PostFlow(tenant, request_id or self.request_id("adj"), AdjustmentFlow(drafts, reason), memo=memo)
        return await self.posting.post(cmd)

    async def fund(self, code: str, amount: int, *, tenant: str = TENANT, currency: str = "USD",
                   source: str = FUNDING) -> Posted:
        """Credits a (credit-normal) customer account from the tenant's unbounded funding account."""
        return await self.adjust([(source, Side.DEBIT, amount), (code, Side.CREDIT, amount)], tenant=tenant,
                                 currency=currency, reason=f"fund {code}")

    async def reverse(self, voucher_id: str, *, tenant: str = TENANT, request_id: str | None = None,
                      reason: str = "test reversal") -> Posted:
        cmd = ReverseVoucher(tenant, request_id or self.request_id("rev"), voucher_id, reason)
        return await self.posting.reverse(cmd)

    # -- reading --

    def balance(self, code: str, *, tenant: str = TENANT) -> int:
        return self.queries.get_balance(tenant, ref(code)).current


async def outcome(awaitable: Awaitable[Posted]) -> Posted | LedgerError:
    """The result of a posting call, or the LedgerError it raised (other exceptions propagate)."""
    try:
        return await awaitable
    except LedgerError as error:
        return error


async def outcomes(*awaitables: Awaitable[Posted]) -> list[Posted | LedgerError]:
    """Runs the calls concurrently, so their submissions are queued together and share batches."""
    return list(await asyncio.gather(*(outcome(a) for a in awaitables)))


# ------------------------------------------------------------------------------------------------------
# Invariants, checked from the tables with a plain engine (nothing from the read path under test).
# ------------------------------------------------------------------------------------------------------


@dataclass
class LedgerFacts:
    vouchers: dict[str, list[Voucher]] = field(default_factory=dict)  # per tenant, by sequence
    balances: dict[str, int] = field(default_factory=dict)  # account id -> current
    accounts: dict[str, sa.Row] = field(default_factory=dict)
    voucher_ids: list[str] = field(default_factory=list)  # every stored id, duplicates kept


def load_facts(url: str) -> LedgerFacts:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            facts = LedgerFacts()
            facts.accounts = {r.id: r for r in conn.execute(sa.select(t.accounts))}
            facts.balances = {r.account_id: r.current for r in conn.execute(sa.select(t.balances))}
            lines = defaultdict(list)
            for ln in conn.execute(sa.select(t.voucher_lines).order_by(t.voucher_lines.c.line_no)):
                code = facts.accounts[ln.account_id].code
                lines[ln.voucher_id].append(PostedLine(ln.line_no, ln.account_id, code, Side(ln.side), ln.amount,
                                                       ln.currency, ln.memo, ln.entry_number, ln.balance_after))
            per_tenant = defaultdict(list)
            for r in conn.execute(sa.select(t.vouchers).order_by(t.vouchers.c.tenant_id, t.vouchers.c.sequence)):
                facts.voucher_ids.append(r.id)
                per_tenant[r.tenant_id].append(Voucher(
                    id=r.id, tenant_id=r.tenant_id, sequence=r.sequence, flow_type=r.flow_type,
                    request_id=r.request_id, accounting_date=r.accounting_date, effective_us=r.effective_us,
                    posted_us=r.posted_us, lines=tuple(lines[r.id]), memo=r.memo,
                    metadata=json.loads(r.metadata), reverses_id=r.reverses_id, rule_id=r.rule_id,
                    rule_set_version=r.rule_set_version, previous_hash=r.previous_hash, hash=r.hash))
            facts.vouchers = dict(per_tenant)
            return facts
    finally:
        engine.dispose()


def check_ledger(url: str) -> LedgerFacts:
    """Asserts every structural invariant of the stored ledger and returns what it read."""
    facts = load_facts(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            heads = {r.tenant_id: r for r in conn.execute(sa.select(t.ledger_heads))}
            entries = defaultdict(list)
            for ln in conn.execute(sa.select(t.voucher_lines).order_by(t.voucher_lines.c.account_id,
                                                                       t.voucher_lines.c.entry_number)):
                entries[ln.account_id].append(ln)
            balance_rows = {r.account_id: r for r in conn.execute(sa.select(t.balances))}
    finally:
        engine.dispose()

    assert len(facts.voucher_ids) == len(set(facts.voucher_ids)), "a voucher id is stored twice"
    for tenant, vouchers in facts.vouchers.items():
        sequences = [v.sequence for v in vouchers]
        assert sequences == list(range(1, len(vouchers) + 1)), f"{tenant}: sequences have gaps: {sequences}"
        previous = GENESIS_HASH
        for v in vouchers:
            assert v.previous_hash == previous, f"{tenant}: voucher {v.sequence} does not link to its predecessor"
            assert voucher_hash(v, v.previous_hash) == v.hash, f"{tenant}: voucher {v.sequence} hash mismatch"
            previous = v.hash
        assert heads[tenant].voucher_sequence == len(vouchers)
        assert heads[tenant].last_hash == previous
        for v in vouchers:
            assert all(v.tenant_id == facts.accounts[ln.account_id].tenant_id for ln in v.lines), \
                f"voucher {v.id} touches another tenant's account"
            debits = defaultdict(int)
            for ln in v.lines:
                debits[ln.currency] += ln.amount if ln.side is Side.DEBIT else -ln.amount
            assert all(total == 0 for total in debits.values()), f"voucher {v.id} is unbalanced"

    conserved = defaultdict(int)
    for account_id, account in facts.accounts.items():
        row = balance_rows[account_id]
        rows = entries.get(account_id, [])
        assert [e.entry_number for e in rows] == list(range(1, len(rows) + 1)), f"{account.code}: entry gaps"
        signed_sum, running = 0, 0
        for e in rows:
            delta = e.amount if e.side == account.normal_side else -e.amount
            signed_sum += delta
            running += delta
            assert e.balance_after == running, f"{account.code}: entry {e.entry_number} balance_after is wrong"
        assert row.current == signed_sum, f"{account.code}: balance {row.current} != sum of entries {signed_sum}"
        assert row.entry_count == len(rows), f"{account.code}: entry_count {row.entry_count} != {len(rows)}"
        assert isinstance(row.current, int) and not isinstance(row.current, bool)
        if account.floor_policy == FloorPolicy.NON_NEGATIVE.value:
            assert row.current - row.locked + account.credit_limit >= 0, f"{account.code} is below its floor"
        conserved[(account.tenant_id, account.currency)] += (
            row.current if account.normal_side == Side.DEBIT.value else -row.current)
    assert all(v == 0 for v in conserved.values()), f"money is not conserved: {dict(conserved)}"
    return facts


# ------------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------------


@pytest.fixture
async def make_ledger():
    """Builds started Ledger instances (migrating each new database once); stops them all afterwards."""
    made: list[Ledger] = []
    migrated: set[str] = set()

    def make(url: str, *, start: bool = True, schema_ready: bool = False, **kwargs) -> Ledger:
        if url not in migrated and not schema_ready:
            migrate(url)
        migrated.add(url)
        instance = Ledger(url, **kwargs)
        made.append(instance)
        if start:
            instance.start()
        return instance

    yield make
    for instance in reversed(made):
        await instance.close()


@pytest.fixture
async def ledger(request, database_url, make_ledger) -> Ledger:
    """The service stack on a fresh migrated database, with the tenant's funding account open."""
    make_migrated(request, database_url)
    instance = make_ledger(database_url, schema_ready=True)
    instance.open_internal(FUNDING)
    return instance


def webhook_rows(uow: UnitOfWork, tenant: str) -> str:
    """A webhook subscription made, rotated, leased and moved on, with one delivery record, through the
    service's own code (as whatever role `uow` connects as). Returns the subscription's id."""
    admin = WebhookAdmin(uow, Settings(), SecretBox(Fernet.generate_key().decode(), ""), now_us)
    hook = admin.create(tenant, new_id(), WebhookSpec("https://hooks.example.com/t"), 0).webhook
    admin.rotate(tenant, new_id(), hook.id, 60)

    def deliver(conn) -> bool:
        assert webhooks_repo.take_lease(conn, hook, "tests", now_us(), 10_000_000)
        webhooks_repo.insert_delivery(conn, Delivery(tenant, new_id(), hook.id, 1, "account.created", 1,
                                                     Trigger.LIVE, True, 200, 1_000, "", now_us()))
        return webhooks_repo.advance(conn, hook, "tests", now_us(), cursor=1, failures=0, retry_at_us=0)

    assert uow.append({tenant}, deliver)
    return hook.id
