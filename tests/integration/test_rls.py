"""Defense in depth on PostgreSQL: the service runs as a role that owns nothing, row-level security keyed by
the transaction's tenant scope hides other tenants' rows even from a query without a tenant filter (and
'*' shows the service role nothing: it crosses tenants only through the system functions of migration
0010), the journal tables refuse UPDATE and DELETE to the service role, and it can neither read, create,
change nor revoke API keys, nor create tenants.

The schema is migrated as ``postgres`` (the owner here) with the service role ``tally_app``; the ledger is
then driven through the real service layer connected as ``tally_app``, and probed with bare SQL as
``tally_app``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tally import bootstrap, cli
from tally.config import ConfigError, Settings
from tally.domain.accounts import AccountChange, AccountType, BalanceState
from tally.domain.auth import Role
from tally.domain.controls import Controls, Velocity, Window
from tally.domain.errors import LedgerError
from tally.domain.facts import Facts
from tally.domain.flows import RefundFlow, RuleFlow
from tally.domain.interest import InterestPolicy
from tally.domain.reconciliation import ItemState, Resolution
from tally.domain.vouchers import AccountRef
from tally.rules.interest import InterestRule
from tally.service import accounts as account_service
from tally.service.auth import keys
from tally.service.auth.audit import AuditLog
from tally.service.auth.authn import Authenticator
from tally.service.books.days import DayBook
from tally.service.books.interest import InterestBook
from tally.service.books.ledger_audit import LedgerAudit
from tally.service.commands import CaptureHold, CreateHold, PostFlow, UpdateAccount
from tally.service.merging import MergeAccounts, merge_accounts
from tally.service.posting.expiry import HoldExpirer
from tally.service.posting.pipeline import now_us
from tally.service.securities import SetAccountSecurity, set_security
from tally.service.settlement.bank_details import BankDetails
from tally.service.settlement.payouts import PayoutConfig, Payouts
from tally.service.settlement.reconciliation import ImportStatement, Reconciliation, ResolveItem
from tally.service.settlement.statements import StatementFormat
from tally.storage import auth_repo, journal_write, ledger_repo, roles, system_repo
from tally.storage import tables as t
from tally.storage.auth_repo import AuditRow
from tally.storage.engine import gate_key, make_engines
from tally.storage.journal_write import JournalRows
from tally.storage.migrate import migrate
from tally.storage.roles import ServiceRoleError, grant_service_role, may_migrate
from tally.storage.uow import Scope, UnitOfWork, scope_setting
from tests.integration.conftest import FUNDING, Ledger, check_ledger, outcomes, webhook_rows

SERVICE_ROLE = "tally_app"
A, B = "tenant-a", "tenant-b"
# table -> its tenant column (the tables the policies cover)
TENANT_COLUMNS = {table.name: ("id" if table.name == "tenants" else "tenant_id")
                  for table in t.metadata.sorted_tables if table.name == "tenants" or "tenant_id" in table.c}
JOURNAL = ("vouchers", "voucher_lines", "events", "idempotency", "audit_log", "webhook_deliveries",
           "day_currency_totals", "day_flow_totals", "day_summary_lines", "day_closing_balances", "interest_accruals",
           "recon_statements", "recon_lines", "account_merges")
MUTABLE = ("accounts", "balances", "ledger_heads", "flow_caps", "holds", "audit_heads", "audit_checkpoints",
           "audit_account_sums", "webhooks", "accounting_days", "recon_items", "bank_accounts", "payout_batches",
           "payouts", "account_securities", "account_controls", "spend_counters")
# The tables the service role may read (api_keys: only through tally_api_key).
READABLE = {table: column for table, column in TENANT_COLUMNS.items() if table != "api_keys"}
SYSTEM_FUNCTIONS = {"tally_api_key", "tally_tenant_count", "tally_tenant_ids", "tally_due_holds",
                    "tally_webhook_tenants"}
# SECURITY INVOKER: bound as their caller.
POSTING_FUNCTIONS = {"tally_write_journal", "tally_check_epochs"}


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.fixture
def owner_url(postgres_url, pg_server) -> str:
    """A fresh database migrated by its owner (``postgres``), with ``tally_app`` granted what it needs."""
    pg_server.create_login_role(SERVICE_ROLE)
    migrate(postgres_url, service_role=SERVICE_ROLE)
    return postgres_url


@pytest.fixture
def app_url(owner_url) -> str:
    return as_role(owner_url, SERVICE_ROLE)


@pytest.fixture
async def app_ledger(app_url):
    """The service stack connected as tally_app (never migrating: it could not)."""
    instance = Ledger(app_url, auto_migrate=False)
    instance.start()
    yield instance
    await instance.close()


@pytest.fixture
def owner_uow(owner_url):
    """The operator's: tenants and keys are created by the schema owner only."""
    engines = make_engines(owner_url, pool_size=1)
    yield UnitOfWork(engines)
    engines.dispose()


@pytest.fixture
def app_engine(app_url):
    engine = sa.create_engine(app_url)
    yield engine
    engine.dispose()


def _set_scope(conn: sa.Connection, value: str) -> None:
    conn.execute(sa.select(sa.func.set_config("tally.tenants", value, True)))


def _tenants_seen(conn: sa.Connection) -> dict[str, set[str]]:
    """table -> the tenants of the rows a bare SELECT * returns (no WHERE at all), of each table the service role
    may read."""
    seen = {}
    for table, column in READABLE.items():
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
        seen[table] = {row[column] for row in rows}
    return seen


def _counts(url: str, tenant: str | None) -> dict[str, int]:
    """Rows per table, counted by the owner (a superuser: row security does not apply to it)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {table: conn.execute(sa.text(
                f"SELECT count(*) FROM {table}" + (f" WHERE {column} = :tenant" if tenant else "")),
                {"tenant": tenant}).scalar_one() for table, column in TENANT_COLUMNS.items()}
    finally:
        engine.dispose()


def _provision(owner_uow: UnitOfWork) -> dict[str, str]:
    """Tenants A and B with an admin key each, created as the owner (as `tally tenants/keys create` do)."""
    issued = {}
    for tenant in (A, B):
        keys.create_tenant(owner_uow, tenant, f"tenant {tenant}", now_us)
        issued[tenant] = keys.create_key(owner_uow, tenant, Role.ADMIN, "rls test", "tests", now_us).secret_key
    return issued


async def _populate(ledger: Ledger, owner_uow: UnitOfWork) -> dict[str, str]:
    """Both tenants get a bit of everything, through the service layer, in shared batches."""
    issued = _provision(owner_uow)
    for tenant in (A, B):
        ledger.open_internal(FUNDING, tenant=tenant)
        ledger.open("alice", tenant=tenant)
        ledger.open("bob", tenant=tenant)
    # One batch, two tenants: the writer's transaction is scoped to both.
    posted = await outcomes(*(ledger.fund("alice", 1_000, tenant=tenant) for tenant in (A, B)))
    assert all(not isinstance(p, LedgerError) for p in posted), posted
    posted = await outcomes(*(ledger.transfer("alice", "bob", 100, tenant=tenant) for tenant in (A, B)))
    assert all(not isinstance(p, LedgerError) for p in posted), posted
    for tenant in (A, B):
        hold = (await ledger.posting.create_hold(CreateHold(tenant, ledger.request_id("hold"), AccountRef(code="alice"),
                                                            200, "USD"))).holds[0]
        await ledger.posting.capture_hold(CaptureHold(tenant, ledger.request_id("cap"), hold.id, 50,
                                                      AccountRef(code="bob")))
        # Rule-driven flows: accounts opened from templates, and a refund that keeps a flow cap.
        usage_id = ledger.request_id("usage")
        for request_id, facts in ((ledger.request_id("funding"), Facts("funding", "USD", {"amount": 5_000},
                                                                        {"consumer": "c1", "processor": "stripe"})),
                                  (usage_id, Facts("usage", "USD", {"amount": 1_000},
                                                   {"consumer": "c1", "merchant": "m1"}))):
            await ledger.posting.post(PostFlow(tenant, request_id, RuleFlow(facts)))
        for _ in range(2):  # the second refund updates the cap row the first inserted
            await ledger.posting.post(PostFlow(tenant, ledger.request_id("refund"), RefundFlow(usage_id, 100, "USD")))
        # A reconciled statement: a matched line and one resolved by posting the missing funding.
        recon = Reconciliation(ledger.uow, ledger.posting, ledger.posting.rules, ledger.settings.currencies, now_us)
        day = ledger.calendar.date_of(now_us())
        csv = f"reference,amount,date\nx,0.005,{day}\ny,0.001,{day}\n".encode()
        imported = recon.import_statement(ImportStatement(tenant, ledger.request_id("recon"),
                                                          AccountRef(code="processor_clearing:stripe:USD"),
                                                          StatementFormat.CSV, csv, "s-1"))
        (extra,), _ = recon.list_items(tenant, AccountRef(code="processor_clearing:stripe:USD"),
                                       imported.statement.statement_id, ItemState.UNMATCHED_THEIRS, 0, "")
        await recon.resolve(ResolveItem(tenant, ledger.request_id("resolve"), extra.id, Resolution.SUPPLEMENTARY,
                                        party="c2"))
        # A payout through a linked bank account, batched and sent.
        both = {"amount": 2_000_000, "actual_amount": 2_000_000}
        for facts in (Facts("funding", "USD", {"amount": 2_000_000}, {"consumer": "c1", "processor": "stripe"}),
                      Facts("settlement", "USD", both, {"processor": "stripe"}, {"kind": "processor"}),
                      Facts("settlement", "USD", both, {"channel": "stripe"}, {"kind": "bank"}),
                      Facts("usage", "USD", {"amount": 2_000_000}, {"consumer": "c1", "merchant": "m1"})):
            await ledger.posting.post(PostFlow(tenant, ledger.request_id("flow"), RuleFlow(facts)))
        account_service.update_account(UpdateAccount(tenant, ledger.request_id("kyc"),
                                                     AccountRef(code="merchant:m1:USD/settled"),
                                                     AccountChange(metadata={"kyc_status": "verified"})),
                                       ledger.uow, now_us)
        payouts = Payouts(ledger.uow, ledger.posting, ledger.posting.rules, ledger.settings.currencies,
                          ledger.calendar, now_us, PayoutConfig())
        bank, _ = payouts.link_bank_account(tenant, ledger.request_id("link"),
                                            AccountRef(code="merchant:m1:USD/settled"),
                                            "USD", BankDetails("M One", "DE89370400440532013000", "COBADEFFXXX"),
                                            True)
        await payouts.request(tenant, ledger.request_id("payout"), bank.id, 1_000_000, "USD")
        (batch,) = (await payouts.create_batches(tenant, ledger.request_id("cut"), "USD")).batches
        await payouts.send_batch(tenant, ledger.request_id("send"), batch.id)
        # Spending controls and the counter a controlled spend advances.
        ledger.pipeline.controls.set_controls(tenant, AccountRef(code="alice"),
                                              Controls(velocity=(Velocity(Window.DAY, 10_000),)), [],
                                              ledger.request_id("controls"))
        (spent,) = await outcomes(ledger.transfer("alice", "bob", 10, tenant=tenant))
        assert spent.vouchers[0].metadata["policy"] == "limit_check.passed"
        (back,) = await outcomes(ledger.transfer("bob", "alice", 10, tenant=tenant))  # balances as they were
        assert not isinstance(back, LedgerError), back
    audit = AuditLog(ledger.uow, flush_ms=0)
    audit.start()
    for tenant in (A, B, ""):
        await audit.record(AuditRow(tenant, "tests", "admin", "Post", "", "OK", "r", "peer", now_us()))
    await audit.stop()
    for tenant in (A, B):  # the ledger audit, as the service role: checkpoints and account sums
        report = LedgerAudit(ledger.uow, now_us).run(tenant)
        assert report.intact and report.checkpoint_saved, report.findings
    for tenant in (A, B):  # a webhook subscription, its lease and cursor, a delivery record
        webhook_rows(ledger.uow, tenant)
    for tenant in (A, B):  # account structures: a merge, and a credit account secured by a deposit (linked twice)
        ledger.open("dora", tenant=tenant)
        ledger.open("erin", tenant=tenant)
        await ledger.fund("dora", 10, tenant=tenant)
        merge_accounts(MergeAccounts(tenant, ledger.request_id("merge"), (AccountRef(code="dora"),),
                                     AccountRef(code="erin")), ledger.uow, ledger.calendar, now_us)
        ledger.open("credit", AccountType.CREDIT, tenant=tenant)
        ledger.open("deposit", AccountType.SECURITY_DEPOSIT, tenant=tenant)
        for bound in (False, True):
            set_security(SetAccountSecurity(tenant, ledger.request_id("secure"), AccountRef(code="credit"),
                                            AccountRef(code="deposit"), 5_000, bound), ledger.uow, now_us)
    # The day close, as the service role: its record, totals, summaries, closing balances and interest.
    interest = InterestBook(ledger.uow, ledger.posting, (InterestRule(InterestPolicy(500), AccountType.DEPOSIT),),
                            ledger.currencies, now_us)
    days = DayBook(ledger.uow, ledger.calendar, now_us, summarize=frozenset({"transfer"}), interest=interest)
    for tenant in (A, B):
        day = await days.close_day(tenant, ledger.calendar.date_of(now_us()), early=True)
        assert day.voucher_count > 0 and day.accounts_closed > 0
    return issued


# ------------------------------------------------------------------------------------------ the role


def test_the_service_role_owns_nothing_and_bypasses_nothing(owner_url, app_engine):
    with app_engine.connect() as conn:
        owners = dict(conn.execute(sa.text("SELECT tablename, tableowner FROM pg_tables "
                                           "WHERE schemaname = current_schema()")).all())
        role = conn.execute(sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        forced = dict(conn.execute(sa.text("SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                                           "WHERE relnamespace = current_schema()::regnamespace "
                                           "AND relkind = 'r'")).all())
    assert set(t.metadata.tables) <= set(owners)
    assert SERVICE_ROLE not in owners.values(), owners
    assert tuple(role) == (False, False)
    assert {name for name, on in forced.items() if on} == set(TENANT_COLUMNS)


def test_grants_are_exactly_what_the_service_needs_and_converge(owner_url, app_engine):
    engine = sa.create_engine(owner_url)
    try:
        with engine.begin() as conn:  # stray privileges, e.g. granted by hand
            conn.exec_driver_sql(f"GRANT DELETE, UPDATE, TRUNCATE ON vouchers, voucher_lines TO {SERVICE_ROLE}")
            conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {SERVICE_ROLE}")
    finally:
        engine.dispose()
    migrate(owner_url, service_role=SERVICE_ROLE)  # again: idempotent, and back to exactly the set
    migrate(owner_url, service_role=SERVICE_ROLE)
    with app_engine.connect() as conn:
        granted: dict[str, set[str]] = {}
        for table, privilege in conn.execute(sa.text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = :role AND table_schema = current_schema()"), {"role": SERVICE_ROLE}):
            granted.setdefault(table, set()).add(privilege)
        updatable: dict[str, set[str]] = {}
        for table, column in conn.execute(sa.text(
                "SELECT table_name, column_name FROM information_schema.column_privileges WHERE grantee = :role "
                "AND table_schema = current_schema() AND privilege_type = 'UPDATE'"), {"role": SERVICE_ROLE}):
            updatable.setdefault(table, set()).add(column)
        executable = set(conn.execute(sa.text(
            "SELECT routine_name FROM information_schema.routine_privileges WHERE grantee = :role "
            "AND routine_schema = current_schema() AND privilege_type = 'EXECUTE'"), {"role": SERVICE_ROLE}).scalars())
        sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence('audit_log', 'id')")).scalar_one()
        sequence_privileges = {p: conn.execute(sa.text("SELECT has_sequence_privilege(:seq, :p)"),
                                               {"seq": sequence, "p": p}).scalar_one()
                               for p in ("USAGE", "SELECT", "UPDATE")}
    expected = {**{table: {"SELECT", "INSERT"} for table in (*JOURNAL, *MUTABLE)},
                "tenants": {"SELECT"}}  # nothing at all on api_keys
    assert granted == expected
    # UPDATE only of what the service changes: never a key, a tenant, a journal row, a tenant row or a key row.
    assert updatable == {table: set(columns) for table, columns in roles.UPDATED_COLUMNS.items()}
    for table, columns in updatable.items():
        assert not columns & {"tenant_id", "account_id", "created_us"}, table
    assert updatable["holds"] == {"captured", "status", "capture_voucher_ids", "updated_us"}
    assert updatable["flow_caps"] == {"used"}
    assert executable == SYSTEM_FUNCTIONS | POSTING_FUNCTIONS
    assert sequence_privileges == {"USAGE": True, "SELECT": False, "UPDATE": False}


def test_a_role_that_would_bypass_row_security_is_refused(owner_url, pg_server):
    for role, why in (("postgres", "superuser"), ("no_such_role_here", "does not exist")):
        with pytest.raises(ServiceRoleError, match=why):
            migrate(owner_url, service_role=role)
    # A non-superuser owner, and a role that is a member of it: both could switch row security off.
    pg_server.create_login_role("tally_owner_test")
    pg_server.create_login_role("tally_owner_member")
    engine = sa.create_engine(owner_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("GRANT tally_owner_test TO tally_owner_member")
            conn.exec_driver_sql("ALTER TABLE accounts OWNER TO tally_owner_test")
        for role in ("tally_owner_test", "tally_owner_member"):
            with engine.begin() as conn, pytest.raises(ServiceRoleError, match="owner"):
                grant_service_role(conn, role)
    finally:
        engine.dispose()


def test_the_service_role_cannot_switch_row_security_off(app_engine):
    for statement in ("ALTER TABLE vouchers DISABLE ROW LEVEL SECURITY", "ALTER TABLE vouchers NO FORCE ROW LEVEL "
                      "SECURITY", "DROP POLICY tally_tenant_scope ON vouchers", "TRUNCATE voucher_lines"):
        with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), statement


# ------------------------------------------------------------------------------------------ row security


async def test_a_bare_select_sees_only_the_tenants_of_its_transaction(app_ledger, owner_uow, owner_url, app_engine):
    await _populate(app_ledger, owner_uow)
    check_ledger(owner_url)
    counts_a, counts_b, counts_all = _counts(owner_url, A), _counts(owner_url, B), _counts(owner_url, None)
    for table in ("vouchers", "voucher_lines", "accounts", "events", "balances", "holds", "flow_caps",
                  "idempotency", "ledger_heads", "api_keys", "tenants", "audit_log"):
        assert counts_a[table] > 0 and counts_b[table] > 0, f"{table}: the test should give both tenants rows"

    with app_engine.begin() as conn:
        _set_scope(conn, A)
        assert _tenants_seen(conn) == {table: {A} for table in READABLE}
        visible = {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                   for table in READABLE}
        assert visible == {table: counts_a[table] for table in READABLE}  # all of A's rows, none of B's
        # Joins and aggregates too: nothing of B leaks through another table.
        lines_of_b = conn.execute(sa.text("SELECT count(*) FROM voucher_lines l JOIN accounts a "
                                          "ON a.id = l.account_id WHERE a.tenant_id = :b"), {"b": B}).scalar_one()
        assert lines_of_b == 0

    with app_engine.begin() as conn:
        _set_scope(conn, B)
        assert _tenants_seen(conn) == {table: {B} for table in READABLE}

    with app_engine.begin() as conn:  # no scope at all: fail closed
        assert _tenants_seen(conn) == {table: set() for table in READABLE}
    with app_engine.begin() as conn:
        _set_scope(conn, "")
        assert _tenants_seen(conn) == {table: set() for table in READABLE}

    with app_engine.begin() as conn:  # the batch writer's scope: several tenants
        _set_scope(conn, f"{A},{B}")
        assert _tenants_seen(conn) == {table: {A, B} for table in READABLE}  # not the audit rows of ""
    with app_engine.begin() as conn:  # the audit writer's scope of unidentified callers: their rows only
        _set_scope(conn, scope_setting({""}))
        seen = _tenants_seen(conn)
        assert seen["audit_log"] == seen["audit_heads"] == {""}
        assert not any(seen[table] for table in READABLE if not table.startswith("audit_"))
    with app_engine.begin() as conn:  # the system scope shows the service role nothing of any tenant
        _set_scope(conn, "*")
        visible = {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                   for table in READABLE}
        assert visible == {table: 0 for table in READABLE}
        assert all(counts_all[table] > 0 for table in READABLE)
    with app_engine.begin() as conn:  # nor does a scope that merely contains '*'
        _set_scope(conn, f"*,{A}")
        assert {r.tenant_id for r in conn.execute(sa.text("SELECT tenant_id FROM vouchers"))} == {A}
    with app_engine.begin() as conn:  # the setting is transaction-local: the pooled connection forgets it
        assert conn.execute(sa.text("SELECT count(*) FROM vouchers")).scalar_one() == 0


async def test_a_posted_voucher_line_cannot_be_changed_or_deleted(app_ledger, owner_uow, owner_url, app_engine):
    await _populate(app_ledger, owner_uow)
    before = _counts(owner_url, None)
    statements = [
        "UPDATE voucher_lines SET amount = amount + 1",
        "DELETE FROM voucher_lines",
        "UPDATE vouchers SET memo = 'changed'",
        "DELETE FROM vouchers",
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "UPDATE idempotency SET result = '{}'",
        "DELETE FROM idempotency",
        "UPDATE audit_log SET outcome = 'OK'",
        "DELETE FROM audit_log",
        *(f"DELETE FROM {table}" for table in MUTABLE),  # nothing deletes rows anywhere
    ]
    for scope in (A, "*"):
        for statement in statements:
            with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
                _set_scope(conn, scope)
                conn.exec_driver_sql(statement)
            assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), statement
    assert _counts(owner_url, None) == before
    check_ledger(owner_url)  # every amount, balance and hash still adds up


async def test_writes_outside_the_scope_are_refused_or_miss(app_ledger, owner_uow, app_engine):
    await _populate(app_ledger, owner_uow)
    with app_engine.begin() as conn:
        _set_scope(conn, A)
        changed = conn.execute(sa.text("UPDATE accounts SET name = 'x' WHERE tenant_id = :b"), {"b": B}).rowcount
        assert changed == 0  # B's rows are not there to change
    with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
        _set_scope(conn, f"{A},{B}")  # moving a row to another tenant: not even an updatable column
        conn.execute(sa.text("UPDATE accounts SET tenant_id = :b WHERE code = 'alice'"), {"b": B})
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
        _set_scope(conn, A)
        conn.execute(sa.insert(t.flow_caps).values(tenant_id=B, cap_key="k", used=0, cap_limit=1))
    assert "row-level security" in str(caught.value.orig)
    with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
        _set_scope(conn, A)
        conn.execute(sa.insert(t.ledger_heads).values(tenant_id=B + "-new", voucher_sequence=0, event_sequence=0,
                                                      last_hash="0" * 64, accounting_date=""))
    assert "row-level security" in str(caught.value.orig)
    for scope in (None, "*"):  # no scope, or the system scope: no write either
        with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
            if scope:
                _set_scope(conn, scope)
            conn.execute(sa.insert(t.flow_caps).values(tenant_id=A, cap_key="sneaky", used=0, cap_limit=1))
        assert "row-level security" in str(caught.value.orig)


async def test_the_journal_write_function_is_bound_by_the_callers_row_security(app_ledger, owner_uow, app_engine):
    """`tally_write_journal` runs as its caller (SECURITY INVOKER): an event of another tenant than the
    scope is refused, and a balance row of another tenant is not there to update."""
    await _populate(app_ledger, owner_uow)
    with app_engine.begin() as conn:
        _set_scope(conn, B)
        b_alice = conn.execute(sa.select(t.accounts.c.id).where(t.accounts.c.code == "alice")).scalar_one()
    event = ledger_repo.Event(B, 10_000, "test.event", {}, 1)
    with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
        _set_scope(conn, A)
        journal_write.write(conn, JournalRows(events=[event]))
        conn.exec_driver_sql("SELECT 1")  # the call goes out with the next statement
    assert "row-level security" in str(caught.value.orig)
    other = BalanceState(b_alice, current=123_456)
    with app_engine.begin() as conn:
        _set_scope(conn, A)
        journal_write.write(conn, JournalRows(balances=[other], now_us=1))
        conn.exec_driver_sql("SELECT 1")
    with app_engine.begin() as conn:
        _set_scope(conn, B)
        assert conn.execute(sa.select(t.balances.c.current).where(t.balances.c.account_id == b_alice)
                            ).scalar_one() != 123_456


async def test_the_service_role_can_neither_read_nor_change_keys_nor_tenants(app_ledger, owner_uow, app_engine,
                                                                          app_url, monkeypatch, capsys):
    await _populate(app_ledger, owner_uow)
    statements = [
        "SELECT * FROM api_keys",
        "UPDATE api_keys SET revoked_us = NULL",  # un-revoke
        "UPDATE api_keys SET role = 'admin'",  # promote
        "INSERT INTO api_keys (id, tenant_id, role, name, salt, secret_hash, created_by, created_us) "
        "VALUES ('0123456789abcdef', 'tenant-a', 'admin', '', '', '', '', 0)",
        "DELETE FROM api_keys",
        "UPDATE tenants SET name = 'x'",
        "INSERT INTO tenants (id, name, created_us) VALUES ('tenant-a2', '', 0)",
        "DELETE FROM tenants",
        # columns the service never changes: a row's key, tenant or what it was created with
        "UPDATE balances SET tenant_id = 'tenant-a'",
        "UPDATE balances SET account_id = 'x'",
        "UPDATE accounts SET created_us = 0",
        "UPDATE accounts SET code = 'x'",  # what an account was opened as
        "UPDATE accounts SET normal_side = 'debit'",
        "UPDATE accounts SET currency = 'EUR'",
        "UPDATE accounts SET type = 'internal'",
        "UPDATE holds SET amount = 1",
        "UPDATE holds SET account_id = 'x'",
        "UPDATE holds SET expires_us = 0",
        "UPDATE flow_caps SET cap_limit = 0",
        "UPDATE ledger_heads SET tenant_id = 'tenant-a'",
        "UPDATE audit_heads SET tenant_id = 'tenant-a'",
        "UPDATE audit_account_sums SET account_id = 'x'",
    ]
    for statement in statements:
        with pytest.raises(sa.exc.ProgrammingError) as caught, app_engine.begin() as conn:
            _set_scope(conn, A)
            conn.exec_driver_sql(statement)
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), statement
    # Through the service layer, as the service role: refused by the database.
    key_id = owner_uow.read({A}, lambda conn: auth_repo.list_keys(conn, A))[0].id
    for action in (lambda: keys.create_tenant(app_ledger.uow, "tenant-c", "", now_us),
                   lambda: keys.create_key(app_ledger.uow, A, Role.ADMIN, "", "tests", now_us),
                   lambda: keys.revoke_key(app_ledger.uow, A, key_id, now_us)):
        with pytest.raises(sa.exc.ProgrammingError) as caught:
            action()
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    # And the operator's command, pointed at the service role's URL, says whose URL it needs.
    monkeypatch.delenv("TALLY_MIGRATE_DATABASE_URL", raising=False)
    for argv in (["keys", "revoke", "--tenant", A, key_id], ["keys", "create", "--tenant", A, "--role", "admin"],
                 ["tenants", "create", "tenant-c"], ["keys", "list", "--tenant", A]):
        assert cli.main([*argv, "--database-url", app_url]) == cli.EXIT_REFUSED
        assert "TALLY_MIGRATE_DATABASE_URL" in capsys.readouterr().err
    assert owner_uow.read({A}, lambda conn: auth_repo.get_key(conn, key_id)).revoked_us is None


async def test_system_functions_are_definers_that_each_read_one_thing(owner_url, pg_server, app_engine):
    with app_engine.connect() as conn:
        functions = {r.proname: r for r in conn.execute(sa.text(
            "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, p.proconfig "
            "FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'tally%'"))}
    assert set(functions) == SYSTEM_FUNCTIONS | POSTING_FUNCTIONS
    assert not any(functions[name].prosecdef for name in POSTING_FUNCTIONS)
    functions = {name: functions[name] for name in SYSTEM_FUNCTIONS}
    for function in functions.values():
        assert function.prosecdef and function.owner == "postgres"
        assert function.proconfig == ["search_path=public, pg_temp"]
    with app_engine.begin() as conn:  # each sets '*' for its one query only: the caller's scope comes back
        _set_scope(conn, A)
        conn.exec_driver_sql("SELECT * FROM tally_tenant_count()").all()
        conn.exec_driver_sql("SELECT * FROM tally_due_holds(0, 10)").all()
        assert conn.exec_driver_sql("SELECT current_setting('tally.tenants')").scalar_one() == A
    pg_server.create_login_role("tally_nobody")  # EXECUTE is not PUBLIC's: a role without the grant is refused
    nobody = sa.create_engine(as_role(owner_url, "tally_nobody"))
    try:
        for call in ("SELECT tally_tenant_count()", "SELECT * FROM tally_api_key('x')"):
            with pytest.raises(sa.exc.ProgrammingError) as caught, nobody.connect() as conn:
                conn.exec_driver_sql(call)
            assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), call
    finally:
        nobody.dispose()


async def test_the_service_works_as_the_service_role(app_ledger, owner_uow, owner_url, app_url):
    """Reads, cross-tenant system operations and the hold expirer, all as tally_app."""
    issued = await _populate(app_ledger, owner_uow)
    for tenant in (A, B):
        assert app_ledger.balance("alice", tenant=tenant) == 1_000 - 100 - 50
        assert app_ledger.balance("bob", tenant=tenant) == 100 + 50
        page = app_ledger.queries.list_vouchers(tenant, page_size=500, page_token="")
        assert page.items and {v.tenant_id for v in page.items} == {tenant}
        assert app_ledger.queries.trial_balance(tenant)[0].difference == 0
    # The system scope shows the service role nothing; the system functions are its way across tenants.
    assert app_ledger.uow.read(Scope.SYSTEM, lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(t.tenants)).scalar_one()) == 0
    assert app_ledger.uow.read(Scope.SYSTEM, system_repo.tenant_count) == 2
    assert app_ledger.uow.read(Scope.SYSTEM, system_repo.tenant_ids) == [A, B]
    assert app_ledger.uow.read(Scope.SYSTEM, system_repo.webhook_tenants) == [A, B]
    assert app_ledger.uow.read(Scope.SYSTEM, lambda conn: system_repo.api_key(conn, "0" * 16)) is None
    for tenant, secret in issued.items():  # key verification, as the server does it
        principal = Authenticator(app_ledger.uow, None).authenticate(f"Bearer {secret}")
        assert (principal.tenant_id, principal.role) == (tenant, Role.ADMIN)
    # A forgotten tenant filter in a tenant-scoped transaction still returns that tenant's rows only.
    assert app_ledger.uow.read({A}, lambda conn: {r.tenant_id for r in conn.execute(sa.select(t.vouchers))}) == {A}

    expires_us = now_us() + 60_000_000
    hold = (await app_ledger.posting.create_hold(CreateHold(B, app_ledger.request_id("hold"), AccountRef(code="alice"),
                                                            10, "USD", expires_us=expires_us))).holds[0]
    other = (await app_ledger.posting.create_hold(CreateHold(A, app_ledger.request_id("hold"), AccountRef(code="alice"),
                                                             10, "USD", expires_us=expires_us))).holds[0]
    expirer = HoldExpirer(app_ledger.uow, app_ledger.pipeline, lambda: expires_us + 1)  # a minute later
    assert await expirer.expire_due() == 2  # one scan across tenants
    assert app_ledger.queries.get_hold(B, hold.id).status.value == "expired"
    assert app_ledger.queries.get_hold(A, other.id).status.value == "expired"
    check_ledger(owner_url)


def test_a_writer_takes_its_snapshot_after_its_tenants_gates(owner_url):
    """The gates must precede the snapshot, which the scope's set_config (a SELECT) takes: a writer that
    waited for a tenant's gate sees what was committed while it waited, and runs in its scope."""
    engines = make_engines(owner_url, pool_size=1)
    side = sa.create_engine(owner_url)
    try:
        with side.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE gate_probe (n integer)")
        seen: list[tuple] = []

        def work(conn):
            seen.append(conn.exec_driver_sql(
                "SELECT (SELECT count(*) FROM gate_probe), current_setting('tally.tenants')").one())

        with side.connect() as holder:
            holder.exec_driver_sql("SELECT pg_advisory_lock(%s)", (gate_key(B),))  # the session's, held on
            holder.commit()
            writer = threading.Thread(target=UnitOfWork(engines).write, args=({A, B}, work))
            writer.start()
            _wait_for_gate_waiter(side)
            with side.begin() as conn:
                conn.exec_driver_sql("INSERT INTO gate_probe VALUES (1)")
            holder.exec_driver_sql("SELECT pg_advisory_unlock_all()")  # lets the writer through
            holder.commit()
            writer.join(30)
        assert seen == [(1, scope_setting({A, B}))]
        uow = UnitOfWork(engines)
        assert uow.read({A}, lambda conn: conn.exec_driver_sql("SELECT current_setting('tally.tenants')").scalar()) == A
        assert uow.append(Scope.SYSTEM, lambda conn: conn.exec_driver_sql(
            "SELECT current_setting('tally.tenants')").scalar()) == Scope.SYSTEM.value
    finally:
        engines.dispose()
        with side.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS gate_probe")
        side.dispose()


def _wait_for_gate_waiter(engine: sa.Engine) -> None:
    deadline = time.monotonic() + 30
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    while True:
        with engine.connect() as conn:
            if conn.exec_driver_sql(query).scalar():
                return
        assert time.monotonic() < deadline, "the writer never waited for the gate"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------ migrating


def test_the_service_role_does_not_auto_migrate(owner_url, app_url, caplog):
    engines = make_engines(app_url, pool_size=1)
    owner_engines = make_engines(owner_url, pool_size=1)
    try:
        with engines.write.connect() as conn:
            assert not may_migrate(conn)
        with owner_engines.write.connect() as conn:
            assert may_migrate(conn)
        with caplog.at_level(logging.WARNING, logger="tally"):
            bootstrap.auto_migrate(engines)
        assert "TALLY_AUTO_MIGRATE=false" in caplog.text
    finally:
        engines.dispose()
        owner_engines.dispose()


def test_tally_migrate_uses_the_owner_url_and_grants_the_service_role(postgres_url, pg_server, monkeypatch, capsys):
    pg_server.create_login_role(SERVICE_ROLE)
    app = as_role(postgres_url, SERVICE_ROLE)
    monkeypatch.setenv("TALLY_DATABASE_URL", app)  # the service's URL: not the one to migrate with
    monkeypatch.setenv("TALLY_MIGRATE_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TALLY_SERVICE_ROLE", SERVICE_ROLE)
    assert cli.main(["migrate"]) == 0
    assert f"granted the service role '{SERVICE_ROLE}'" in capsys.readouterr().out
    engine = sa.create_engine(app)
    try:
        with engine.begin() as conn:
            _set_scope(conn, A)
            conn.execute(sa.insert(t.ledger_heads).values(tenant_id=A, voucher_sequence=0, event_sequence=0,
                                                          last_hash="0" * 64, accounting_date=""))
            assert conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'")
                                ).scalar_one() == "postgres"
    finally:
        engine.dispose()
    monkeypatch.setenv("TALLY_SERVICE_ROLE", "postgres")
    assert cli.main(["migrate"]) == cli.EXIT_REFUSED
    assert "superuser" in capsys.readouterr().err


def test_row_security_migration_downgrades_and_upgrades(owner_url):
    from alembic import command

    from tally.storage.migrate import alembic_config

    def policies(conn) -> dict[str, tuple[bool, bool, int]]:
        return {r.relname: (r.relrowsecurity, r.relforcerowsecurity, r.policies) for r in conn.execute(sa.text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"))}

    engine = sa.create_engine(owner_url)
    try:
        with engine.begin() as conn:
            upgraded = policies(conn)
            command.downgrade(alembic_config(conn), "0005")
            assert all(v == (False, False, 0) for v in policies(conn).values())
            command.upgrade(alembic_config(conn), "head")
            assert policies(conn) == upgraded
    finally:
        engine.dispose()
    # Two policies each: the tenant scope (everyone), '*' (the owner only).
    assert {name for name, v in upgraded.items() if v == (True, True, 2)} == set(TENANT_COLUMNS)
    assert "write_gate" not in upgraded  # migration 0016: writers gate per tenant


def test_roles_module_names_every_table():
    """A new table must be classified (journal or mutable) before the service role may touch it."""
    assert set(roles.ALL_TABLES) - {roles.SCHEMA_VERSION_TABLE} == set(t.metadata.tables)
    for table, columns in roles.UPDATED_COLUMNS.items():
        assert set(columns) <= set(t.metadata.tables[table].c.keys()), table
    assert set(TENANT_COLUMNS) == set(t.metadata.tables)


# ------------------------------------------------------------------------------------------ what remains


async def test_an_audit_row_inserted_past_the_append_path_is_found(app_ledger, owner_uow, app_engine, owner_url):
    """The service role keeps INSERT on audit_log (the append path hashes in the service); a row it writes
    without the chain's link is a finding of the ledger audit, and no role but the owner can remove it."""
    await _populate(app_ledger, owner_uow)
    with app_engine.begin() as conn:
        _set_scope(conn, A)
        conn.exec_driver_sql("INSERT INTO audit_log (tenant_id, actor, role, action, target, outcome, request_id, "
                             "peer, time_us, previous_hash, hash) VALUES ('tenant-a', 'key:forged', 'admin', "
                             "'Post', '', 'ok', 'r', 'p', 0, '', '')")
    report = LedgerAudit(owner_uow, now_us).run(A, mark=False, save=False)
    assert {f.kind.value for f in report.findings} >= {"audit_log_link", "audit_log_head"}, report.findings


def test_the_first_start_is_refused_clearly_as_the_service_role(app_url, owner_url, monkeypatch, capsys, tmp_path):
    """No tenant yet and TALLY_BOOTSTRAP_ADMIN on: the service role cannot create `local` and its key, so the
    server does not start, and says what the operator does instead. As the owner, the first start creates
    them (as on SQLite)."""
    settings = Settings(database_url=app_url, auto_migrate=False, bootstrap_admin=True, listen_address="127.0.0.1:0")
    with pytest.raises(ConfigError, match="tally tenants create"):
        asyncio.run(bootstrap.start(settings))
    for name, value in {"TALLY_DATABASE_URL": app_url, "TALLY_AUTO_MIGRATE": "false",
                        "TALLY_LISTEN_ADDRESS": "127.0.0.1:0", "TALLY_LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["serve"]) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "TALLY_BOOTSTRAP_ADMIN" in err and "TALLY_MIGRATE_DATABASE_URL" in err and "Traceback" not in err

    key_file = tmp_path / "admin.key"

    async def first_start_as_owner():
        app = await bootstrap.start(Settings(database_url=owner_url, bootstrap_admin=True,
                                             listen_address="127.0.0.1:0", admin_key_file=str(key_file)))
        try:
            return app.services.authenticator.authenticate(f"Bearer {key_file.read_text().strip()}")
        finally:
            await app.stop()

    principal = asyncio.run(first_start_as_owner())
    assert (principal.tenant_id, principal.role) == ("local", Role.ADMIN)
