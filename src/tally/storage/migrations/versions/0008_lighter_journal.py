"""lighter journal

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

What every posting pays for, made cheaper, and the reads that grew with history made logarithmic:

- The foreign keys of `voucher_lines` (to `vouchers` and `accounts`) and of `balances` (to `accounts`) go.
  Each cost a trigger and a row lock on the referenced row per line written; the journal is append-only,
  the writer reads every account it posts to in the same transaction (the rows exist), and the ledger
  audit checks every line's account and every balance against the lines that make it.
- `vouchers.reverses_id`: no foreign key either, and its uniqueness (a voucher is reversed at most once)
  becomes a unique index of the reversals only, where the constraint indexed every voucher's NULL.
- `ledger_heads.posted_us`: the last posting time of the tenant, so that posting times never go back
  within a tenant (a clock stepped back posts at the last time instead). Accounting dates never went back.
  An account's entries are then in the order of both, and the last entry at or before a time or a day is a
  binary search over (account_id, entry_number): the index on (account_id, accounting_date, entry_number)
  goes, which every line written paid for, and a balance as of a time no longer reads every earlier line.
- PostgreSQL: `balances` and `ledger_heads`, which every batch updates, leave half of each page free
  (fillfactor 50), so an update can stay on its page (a HOT update) instead of adding an index entry and
  dirtying the index for every row written.
- Row security (PostgreSQL): the policies compare the row's tenant with the scope first, one text
  comparison for the usual scope of one tenant, before splitting a scope of several. An empty scope
  still matches nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
# table -> the column holding its tenant (as in 0006)
TENANT_COLUMNS = {
    "accounts": "tenant_id",
    "balances": "tenant_id",
    "vouchers": "tenant_id",
    "voucher_lines": "tenant_id",
    "idempotency": "tenant_id",
    "events": "tenant_id",
    "ledger_heads": "tenant_id",
    "flow_caps": "tenant_id",
    "holds": "tenant_id",
    "api_keys": "tenant_id",
    "audit_log": "tenant_id",
    "tenants": "id",
}
_SCOPE = "current_setting('tally.tenants', true)"
DROPPED_KEYS = (
    ("vouchers", "fk_vouchers_reverses_id_vouchers", ["reverses_id"], "vouchers"),
    ("voucher_lines", "fk_voucher_lines_voucher_id_vouchers", ["voucher_id"], "vouchers"),
    ("voucher_lines", "fk_voucher_lines_account_id_accounts", ["account_id"], "accounts"),
    ("balances", "fk_balances_account_id_accounts", ["account_id"], "accounts"),
)
DATE_INDEX = "ix_voucher_lines_account_id_accounting_date"
UPDATED_EVERY_BATCH = ("balances", "ledger_heads")
REVERSALS = "uq_vouchers_reverses_id"
_REVERSALS_ONLY = sa.text("reverses_id IS NOT NULL")


def _in_scope(column: str) -> str:
    # NULLIF: an empty scope matches nothing, not the rows whose tenant is "" (audit rows of unknown callers).
    return (f"{column} = NULLIF({_SCOPE}, '') OR {_SCOPE} = '*' "
            f"OR {column} = ANY (string_to_array({_SCOPE}, ','))")


def _in_scope_0006(column: str) -> str:
    return f"{_SCOPE} = '*' OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _policies(predicate) -> None:
    for table, column in TENANT_COLUMNS.items():
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({predicate(column)}) WITH CHECK ({predicate(column)})")


def upgrade() -> None:
    for table, name, _columns, _referred in DROPPED_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_constraint(REVERSALS, type_="unique")
    op.create_index(REVERSALS, "vouchers", ["reverses_id"], unique=True, postgresql_where=_REVERSALS_ONLY,
                    sqlite_where=_REVERSALS_ONLY)
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.drop_index(DATE_INDEX)
    with op.batch_alter_table("ledger_heads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("posted_us", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    if _postgresql():
        _policies(_in_scope)
        for table in UPDATED_EVERY_BATCH:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if _postgresql():
        _policies(_in_scope_0006)
        for table in UPDATED_EVERY_BATCH:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    with op.batch_alter_table("ledger_heads", schema=None) as batch_op:
        batch_op.drop_column("posted_us")
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.create_index(DATE_INDEX, ["account_id", "accounting_date", "entry_number"], unique=False)
    op.drop_index(REVERSALS, table_name="vouchers")
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_unique_constraint(REVERSALS, ["reverses_id"])
    for table, name, columns, referred in reversed(DROPPED_KEYS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, referred, columns, ["id"])
