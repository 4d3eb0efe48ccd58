"""account structures: merges and secured credit

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Account structures (issue 21):
- account_merges: each merged (closed) account, the account its code now leads to, and the voucher that
  moved its balance; written once by MergeAccounts;
- account_securities: a credit account's security-deposit account, the ratio (basis points) of credit to
  deposit, and whether the credit limit is bound to the deposit's balance.
Row-level security as in 0010 on the new tables (PostgreSQL): the tenant policy for everyone, '*' for the
role that runs this migration (the schema owner).
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
NEW_TENANT_TABLES = ("account_merges", "account_securities")
_SCOPE = "current_setting('tally.tenants', true)"


def _in_scope(column: str) -> str:
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "account_merges",
        sa.Column("source_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("voucher_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("merged_by", sa.String(length=128), nullable=False),
        sa.Column("merged_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_account_merges")),
    )
    op.create_index("ix_account_merges_tenant_id_target_id", "account_merges", ["tenant_id", "target_id"])
    op.create_table(
        "account_securities",
        sa.Column("credit_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("deposit_id", sa.String(length=36), nullable=False),
        sa.Column("ratio_bps", sa.BigInteger(), nullable=False),
        sa.Column("bound", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("ratio_bps > 0 AND ratio_bps <= 10000",
                           name=op.f("ck_account_securities_ratio_bps_within_whole")),
        sa.PrimaryKeyConstraint("credit_id", name=op.f("pk_account_securities")),
    )
    op.create_index("ix_account_securities_tenant_id_deposit_id", "account_securities", ["tenant_id", "deposit_id"])
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                       f"WITH CHECK ({_in_scope('tenant_id')})")
            op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                       f"WITH CHECK ({_SCOPE} = '*')")


def downgrade() -> None:
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS {SYSTEM_POLICY} ON {table}")
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    op.drop_index("ix_account_securities_tenant_id_deposit_id", table_name="account_securities")
    op.drop_table("account_securities")
    op.drop_index("ix_account_merges_tenant_id_target_id", table_name="account_merges")
    op.drop_table("account_merges")
