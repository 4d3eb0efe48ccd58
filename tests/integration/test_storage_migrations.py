"""The migrations build exactly the schema of tally.storage.tables, on SQLite and on PostgreSQL, and the
integer columns hold the whole signed 64-bit range exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tally.domain import limits
from tally.domain.accounts import Account, AccountType, Side
from tally.domain.errors import LedgerError
from tally.domain.ids import new_id
from tally.domain.vouchers import AccountRef
from tally.storage import accounts_repo
from tally.storage import tables as t
from tally.storage.migrate import alembic_config, migrate
from tests.integration.conftest import TENANT, outcome

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
assert INT64_MAX == limits.AMOUNT_MAX and INT64_MIN == limits.BALANCE_MIN


def _head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def _schema_snapshot(conn: sa.Connection) -> dict:
    inspector = sa.inspect(conn)
    snapshot = {}
    for table in sorted(inspector.get_table_names()):
        snapshot[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "fks": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                          for f in inspector.get_foreign_keys(table)),
            "checks": sorted(c["name"] for c in inspector.get_check_constraints(table)),
        }
    return snapshot


def test_autogenerate_finds_no_difference_after_migrate(database_url):
    migrate(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            diff = compare_metadata(context, t.metadata)
            assert diff == [], f"migrations and tables.py disagree: {diff}"
            # Autogenerate does not compare CHECK constraints: compare their names ourselves.
            inspector = sa.inspect(conn)
            for table in t.metadata.sorted_tables:
                declared = sorted(c.name for c in table.constraints if isinstance(c, sa.CheckConstraint))
                found = sorted(c["name"] for c in inspector.get_check_constraints(table.name))
                assert found == declared, f"{table.name}: check constraints {found} != {declared}"
            assert set(inspector.get_table_names()) == set(t.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op_and_keeps_data(database_url):
    migrate(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            before = _schema_snapshot(conn)
            conn.execute(sa.insert(t.ledger_heads).values(tenant_id=TENANT, voucher_sequence=7, event_sequence=9,
                                                          last_hash="a" * 64, accounting_date="2026-01-02"))
        migrate(database_url)
        with engine.connect() as conn:
            assert _schema_snapshot(conn) == before
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
                _head_revision()]
            assert conn.execute(sa.select(t.ledger_heads.c.voucher_sequence)).scalars().all() == [7]
    finally:
        engine.dispose()


def test_records_written_before_the_actor_column_name_no_actor(database_url):
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0006")
            conn.execute(sa.text("INSERT INTO idempotency (tenant_id, request_id, operation, fingerprint, body, "
                                 "result, created_us) VALUES ('t1', 'r1', 'post', 'f', '{}', '{}', 1)"))
        migrate(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.idempotency.c.request_id, t.idempotency.c.actor)).all()
            assert [tuple(r) for r in rows] == [("r1", "")]
    finally:
        engine.dispose()


def test_migrate_accepts_an_engine(database_url):
    engine = sa.create_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as conn:
            assert set(t.metadata.tables) <= set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# Every BigInteger column that holds money, a count or a time, with the extremes its CHECK allows.
INT64_CASES = [
    ("balances", "current", (INT64_MAX, INT64_MIN)),
    ("balances", "previous_day", (INT64_MAX, INT64_MIN)),
    ("balances", "locked", (INT64_MAX, 0)),
    ("balances", "entry_count", (INT64_MAX, INT64_MIN)),
    ("accounts", "credit_limit", (INT64_MAX, 0)),
    ("voucher_lines", "amount", (INT64_MAX, 1)),
    ("voucher_lines", "balance_after", (INT64_MAX, INT64_MIN)),
    ("voucher_lines", "entry_number", (INT64_MAX, INT64_MIN)),
    ("vouchers", "sequence", (INT64_MAX, INT64_MIN)),
    ("vouchers", "posted_us", (INT64_MAX, INT64_MIN)),
]


def _fixture_rows(conn: sa.Connection) -> tuple[str, str]:
    """An account (with balance row) and a voucher with one line to write extreme values into."""
    account_id, voucher_id = new_id(), new_id()
    conn.execute(sa.insert(t.accounts).values(
        id=account_id, tenant_id=TENANT, code="x", name="", type="internal", normal_side="debit", currency="USD",
        status="active", parent_id=None, credit_limit=0, floor_policy="unbounded", metadata="{}", created_us=0,
        updated_us=0))
    conn.execute(sa.insert(t.balances).values(account_id=account_id, tenant_id=TENANT, current=0, locked=0,
                                              previous_day=0, last_date="", entry_count=0, updated_us=0))
    conn.execute(sa.insert(t.vouchers).values(
        id=voucher_id, tenant_id=TENANT, sequence=1, flow_type="adjustment", request_id="r", rule_id="",
        rule_set_version="", accounting_date="2026-01-01", effective_us=0, posted_us=0, memo="", metadata="{}",
        reverses_id=None, previous_hash="0" * 64, hash="1" * 64))
    conn.execute(sa.insert(t.voucher_lines).values(
        voucher_id=voucher_id, line_no=1, tenant_id=TENANT, account_id=account_id, entry_number=1, side="debit",
        amount=1, currency="USD", memo="", balance_after=0, accounting_date="2026-01-01", posted_us=0))
    return account_id, voucher_id


def test_integer_columns_hold_int64_extremes_exactly(database_url):
    migrate(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            _fixture_rows(conn)
        for table_name, column, extremes in INT64_CASES:
            table = t.metadata.tables[table_name]
            for value in extremes:
                where = f"{table_name}.{column} = {value}"
                with engine.begin() as conn:
                    conn.execute(sa.update(table).values({column: value}))
                with engine.connect() as conn:
                    stored = conn.execute(sa.select(table.c[column])).scalar_one()
                    assert type(stored) is int, f"{where} came back as {type(stored).__name__}"
                    assert stored == value, f"{where} came back as {stored}"
                    # The database compares it as an integer too (no float rounding: 2**63-1 vs 2**63-2).
                    neighbour = value - 1 if value > 0 else value + 1
                    matches = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                        table.c[column].in_([value, neighbour]))).scalar_one()
                    exact = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                        table.c[column] == neighbour)).scalar_one()
                    assert (matches, exact) == (1, 0), f"{where} is not stored exactly"
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1], ids=["2**63", "-(2**63)-1"])
def test_values_outside_int64_are_refused_not_stored(database_url, value):
    migrate(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            account_id, _ = _fixture_rows(conn)
        with pytest.raises((sa.exc.DBAPIError, sa.exc.StatementError, OverflowError)), engine.begin() as conn:
            conn.execute(sa.update(t.balances).values(current=value))
        with engine.connect() as conn:
            assert conn.execute(sa.select(t.balances.c.current)).scalar_one() == 0
    finally:
        engine.dispose()


def test_accounts_repo_round_trips_int64_credit_limit(database_url, make_ledger):
    lg = make_ledger(database_url, start=False)
    account = Account(id=new_id(), tenant_id=TENANT, code="card", type=AccountType.CREDIT,
                      normal_side=Side.CREDIT, currency="USD", credit_limit=INT64_MAX, created_us=INT64_MAX,
                      updated_us=INT64_MIN)
    lg.uow.write({TENANT}, lambda conn: accounts_repo.insert_accounts(conn, [account]))
    back = lg.uow.read({TENANT}, lambda conn: accounts_repo.get_account(conn, TENANT, AccountRef(code="card")))
    assert back == account
    assert type(back.credit_limit) is int


async def test_balances_reach_int64_extremes_through_the_service(ledger):
    """An unbounded internal account can be driven to exactly -(2**63) and its mirror to 2**63-1, and
    stored, posted and read back exactly; one more unit is refused as BALANCE_OVERFLOW."""
    ledger.open_internal("low")  # debit-normal, unbounded
    ledger.open_internal("high")
    ledger.open_internal("one")
    await ledger.adjust([("low", Side.CREDIT, INT64_MAX), ("high", Side.DEBIT, INT64_MAX)])
    posted = await ledger.adjust([("low", Side.CREDIT, 1), ("one", Side.DEBIT, 1)])
    assert [(ln.account_code, ln.balance_after) for ln in posted.vouchers[0].lines] == [("low", INT64_MIN),
                                                                                         ("one", 1)]
    assert ledger.balance("low") == INT64_MIN
    assert ledger.balance("high") == INT64_MAX

    refused = await outcome(ledger.adjust([("low", Side.CREDIT, 1), ("one", Side.DEBIT, 1)]))
    assert isinstance(refused, LedgerError) and refused.reason == "BALANCE_OVERFLOW"
    refused = await outcome(ledger.adjust([("high", Side.DEBIT, 1), ("one", Side.CREDIT, 1)]))
    assert isinstance(refused, LedgerError) and refused.reason == "BALANCE_OVERFLOW"

    page = ledger.queries.list_entries(TENANT, AccountRef(code="low"), page_size=1, page_token="")
    assert [(e.amount, e.balance_after) for e in page.items] == [(INT64_MAX, -INT64_MAX)]
    page = ledger.queries.list_entries(TENANT, AccountRef(code="low"), page_size=1, page_token=page.next_page_token)
    assert [(e.amount, e.balance_after) for e in page.items] == [(1, INT64_MIN)]
    assert page.opening_balance == -INT64_MAX
    assert ledger.balance("low") == INT64_MIN  # the refusals changed nothing
    history = ledger.queries.get_balance(TENANT, AccountRef(code="high"), as_of_us=ledger.clock())
    assert history.current == INT64_MAX and type(history.current) is int


def test_tables_updated_every_batch_leave_room_for_updates_in_place(postgres_url):
    """PostgreSQL: balances and ledger heads keep half of each page free (fillfactor 50), so that the batch's
    updates can stay on their page (HOT) instead of adding an index entry per row written."""
    migrate(postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            options = dict(conn.execute(sa.text(
                "SELECT relname, reloptions FROM pg_class WHERE relname IN ('balances', 'ledger_heads', 'vouchers')"
            )).all())
    finally:
        engine.dispose()
    assert options == {"balances": ["fillfactor=50"], "ledger_heads": ["fillfactor=50"], "vouchers": None}
