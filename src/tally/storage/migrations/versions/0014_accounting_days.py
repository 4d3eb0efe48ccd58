"""accounting days

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Closing the books (issue 20):
- accounting_days: per tenant and date, the close's state (closing, closed), the day's voucher sequence
  range, counts, and the sequence of its day.closed event;
- day_currency_totals and day_flow_totals: a closed day's postings per currency (debits = credits, checked
  by the database too) and per flow type;
- day_summary_lines: the summary voucher of each summarized flow and currency of a closed day (one line per
  account and side, the exact sum of the detail);
- day_closing_balances: each account's balance at the end of each closed day that moved it;
- interest_accruals: what each close accrued for each account with an interest policy, with the fraction
  carried to the next day.
Row-level security as in 0010 on the new tables (PostgreSQL): the tenant policy, and the system policy for
the schema owner. Self-contained: the lead re-chains the numbers at merge.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
NEW_TENANT_TABLES = ("accounting_days", "day_currency_totals", "day_flow_totals", "day_summary_lines",
                     "day_closing_balances", "interest_accruals")
_SCOPE = "current_setting('tally.tenants', true)"


def _in_scope(column: str) -> str:
    # The form of migration 0010: an empty scope matches nothing; '*' only through the system policy.
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _date_columns() -> list:
    return [sa.Column("tenant_id", sa.String(length=64), nullable=False),
            sa.Column("accounting_date", sa.String(length=10), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "accounting_days",
        *_date_columns(),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("after_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("voucher_count", sa.BigInteger(), nullable=False),
        sa.Column("accounts_closed", sa.BigInteger(), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_us", sa.BigInteger(), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("after_sequence <= last_sequence", name=op.f("ck_accounting_days_sequence_range")),
        sa.PrimaryKeyConstraint("tenant_id", "accounting_date", name=op.f("pk_accounting_days")),
    )
    op.create_table(
        "day_currency_totals",
        *_date_columns(),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit_total", sa.BigInteger(), nullable=False),
        sa.Column("credit_total", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("debit_total = credit_total", name=op.f("ck_day_currency_totals_balanced")),
        sa.PrimaryKeyConstraint("tenant_id", "accounting_date", "currency", name=op.f("pk_day_currency_totals")),
    )
    op.create_table(
        "day_flow_totals",
        *_date_columns(),
        sa.Column("flow_type", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("voucher_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("summarized", sa.Integer(), nullable=False),
        sa.Column("summary_accounts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "accounting_date", "flow_type", "currency",
                                name=op.f("pk_day_flow_totals")),
    )
    op.create_table(
        "day_summary_lines",
        *_date_columns(),
        sa.Column("flow_type", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "accounting_date", "flow_type", "currency", "account_id", "side",
                                name=op.f("pk_day_summary_lines")),
    )
    op.create_table(
        "day_closing_balances",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("accounting_date", sa.String(length=10), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "accounting_date", name=op.f("pk_day_closing_balances")),
    )
    op.create_index("ix_day_closing_balances_tenant_id_accounting_date", "day_closing_balances",
                    ["tenant_id", "accounting_date"], unique=False)
    op.create_table(
        "interest_accruals",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("accounting_date", sa.String(length=10), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("denominator", sa.Integer(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("carry", sa.BigInteger(), nullable=False),
        sa.Column("accrued_open", sa.BigInteger(), nullable=False),
        sa.Column("capitalized", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("units >= 0 AND carry >= 0 AND carry < denominator AND capitalized >= 0 AND "
                           "accrued_open >= 0", name=op.f("ck_interest_accruals_amounts")),
        sa.PrimaryKeyConstraint("account_id", "accounting_date", name=op.f("pk_interest_accruals")),
    )
    op.create_index("ix_interest_accruals_tenant_id_accounting_date", "interest_accruals",
                    ["tenant_id", "accounting_date"], unique=False)
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                       f"WITH CHECK ({_in_scope('tenant_id')})")
            op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                       f"WITH CHECK ({_SCOPE} = '*')")


def downgrade() -> None:
    op.drop_index("ix_interest_accruals_tenant_id_accounting_date", table_name="interest_accruals")
    op.drop_index("ix_day_closing_balances_tenant_id_accounting_date", table_name="day_closing_balances")
    for table in reversed(NEW_TENANT_TABLES):
        op.drop_table(table)  # its policies go with it
