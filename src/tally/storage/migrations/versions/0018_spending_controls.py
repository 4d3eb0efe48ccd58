"""spending controls, team budgets and sweeps

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Issue 21 (spending controls):
- account_controls: one row per controlled account, its controls as JSON (per-voucher maximum, velocity
  limits, allowed flows and counterparties, a team budget over its children, sweeps);
- spend_counters: spend per account, scope, window granularity and bucket, advanced by the batch writer in
  the same transaction as the vouchers that spend.
Row-level security as in 0010 on both tables (PostgreSQL).
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
NEW_TENANT_TABLES = ("account_controls", "spend_counters")
_SCOPE = "current_setting('tally.tenants', true)"


def _in_scope(column: str) -> str:
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def upgrade() -> None:
    op.create_table(
        "account_controls",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("controls", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", name=op.f("pk_account_controls")),
    )
    op.create_table(
        "spend_counters",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("granularity", sa.String(length=16), nullable=False),
        sa.Column("bucket_us", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent >= 0", name=op.f("ck_spend_counters_spent_not_negative")),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "scope", "granularity", "bucket_us",
                                name=op.f("pk_spend_counters")),
    )
    if op.get_context().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                       f"WITH CHECK ({_in_scope('tenant_id')})")
            op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                       f"WITH CHECK ({_SCOPE} = '*')")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS {SYSTEM_POLICY} ON {table}")
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    for table in NEW_TENANT_TABLES:
        op.drop_table(table)
