"""reconciliation and payouts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Statement reconciliation (issue 25):
- recon_statements: an imported statement of one account (unique per account by the counterparty's id and
  by the file's SHA-256, so the same statement or file imports once), with the account's balance at import;
- recon_lines: its lines, each in one item;
- recon_items: what matching made of lines and entries, and an operator's resolution.
Payouts:
- bank_accounts: a merchant's linked bank account (IBAN and BIC, or ABA routing and account number);
- payouts: payout instructions and their state; payout_batches: the bank instructions that carry them.
Row-level security as in 0010 on the new tables (PostgreSQL): the tenant policy for everyone, '*' for the
role that runs this migration (the schema owner).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
NEW_TENANT_TABLES = ("recon_statements", "recon_lines", "recon_items", "bank_accounts", "payout_batches", "payouts")
_SCOPE = "current_setting('tally.tenants', true)"


def _in_scope(column: str) -> str:
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "recon_statements",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("statement_id", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_date", sa.String(length=10), nullable=False),
        sa.Column("end_date", sa.String(length=10), nullable=False),
        sa.Column("line_count", sa.BigInteger(), nullable=False),
        sa.Column("closing_balance", sa.BigInteger(), nullable=True),
        sa.Column("ledger_balance", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_statements")),
        sa.UniqueConstraint("tenant_id", "account_id", "statement_id",
                            name=op.f("uq_recon_statements_tenant_id_account_id_statement_id")),
        sa.UniqueConstraint("tenant_id", "account_id", "digest",
                            name=op.f("uq_recon_statements_tenant_id_account_id_digest")),
    )
    op.create_table(
        "recon_lines",
        sa.Column("statement_row_id", sa.String(length=36), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=256), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("value_date", sa.String(length=10), nullable=False),
        sa.Column("line_id", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("statement_row_id", "line_no", name=op.f("pk_recon_lines")),
    )
    op.create_table(
        "recon_items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("statement_row_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("ours", sa.BigInteger(), nullable=False),
        sa.Column("theirs", sa.BigInteger(), nullable=False),
        sa.Column("entry_keys", sa.Text(), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=False),
        sa.Column("resolution_request_id", sa.String(length=128), nullable=False),
        sa.Column("voucher_ids", sa.Text(), nullable=False),
        sa.Column("resolved_by", sa.String(length=128), nullable=False),
        sa.Column("resolved_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_items")),
        sa.UniqueConstraint("statement_row_id", "position", name=op.f("uq_recon_items_statement_row_id_position")),
    )
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        batch_op.create_index("ix_recon_items_tenant_id_account_id", ["tenant_id", "account_id"], unique=False)
    _payout_tables()
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                       f"WITH CHECK ({_in_scope('tenant_id')})")
            op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                       f"WITH CHECK ({_SCOPE} = '*')")


def _payout_tables() -> None:
    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("merchant", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("holder_name", sa.String(length=140), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("aba_routing", sa.String(length=9), nullable=False),
        sa.Column("account_number", sa.String(length=34), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
    )
    op.create_index("ix_bank_accounts_tenant_id_merchant", "bank_accounts", ["tenant_id", "merchant"])
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("bank_account_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("payout_count", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("cutoff_us", sa.BigInteger(), nullable=False),
        sa.Column("send_request_id", sa.String(length=128), nullable=False),
        sa.Column("send_voucher_id", sa.String(length=36), nullable=False),
        sa.Column("sent_date", sa.String(length=10), nullable=False),
        sa.Column("expected_date", sa.String(length=10), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    op.create_index("ix_payout_batches_tenant_id_created_us", "payout_batches", ["tenant_id", "created_us"])
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("merchant", sa.String(length=128), nullable=False),
        sa.Column("bank_account_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("voucher_ids", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("tenant_id", "request_id", name=op.f("uq_payouts_tenant_id_request_id")),
    )
    op.create_index("ix_payouts_tenant_id_state_currency", "payouts", ["tenant_id", "state", "currency"])
    op.create_index("ix_payouts_batch_id", "payouts", ["batch_id"])


def downgrade() -> None:
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS {SYSTEM_POLICY} ON {table}")
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    for table, index in (("payouts", "ix_payouts_batch_id"), ("payouts", "ix_payouts_tenant_id_state_currency"),
                         ("payout_batches", "ix_payout_batches_tenant_id_created_us"),
                         ("bank_accounts", "ix_bank_accounts_tenant_id_merchant")):
        op.drop_index(index, table_name=table)
    for table in ("payouts", "payout_batches", "bank_accounts"):
        op.drop_table(table)
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_items_tenant_id_account_id")
    op.drop_table("recon_items")
    op.drop_table("recon_lines")
    op.drop_table("recon_statements")
