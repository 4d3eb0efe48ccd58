"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("normal_side", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("credit_limit", sa.BigInteger(), nullable=False),
        sa.Column("floor_policy", sa.String(length=16), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("credit_limit >= 0", name=op.f("ck_accounts_credit_limit_non_negative")),
        sa.ForeignKeyConstraint(["parent_id"], ["accounts.id"], name=op.f("fk_accounts_parent_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_accounts_tenant_id_code")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_tenant_id_id", ["tenant_id", "id"], unique=False)

    op.create_table(
        "events",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("voucher_id", sa.String(length=36), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sequence", name=op.f("pk_events")),
    )
    op.create_table(
        "idempotency",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "request_id", name=op.f("pk_idempotency")),
    )
    op.create_table(
        "ledger_heads",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("voucher_sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("accounting_date", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ledger_heads")),
    )
    op.create_table(
        "vouchers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("flow_type", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("rule_set_version", sa.String(length=64), nullable=False),
        sa.Column("accounting_date", sa.String(length=10), nullable=False),
        sa.Column("effective_us", sa.BigInteger(), nullable=False),
        sa.Column("posted_us", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("reverses_id", sa.String(length=36), nullable=True),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["reverses_id"], ["vouchers.id"], name=op.f("fk_vouchers_reverses_id_vouchers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vouchers")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_vouchers_reverses_id")),
        sa.UniqueConstraint("tenant_id", "sequence", name=op.f("uq_vouchers_tenant_id_sequence")),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_vouchers_tenant_id_flow_type_sequence", ["tenant_id", "flow_type", "sequence"], unique=False
        )

    op.create_table(
        "write_gate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_write_gate")),
    )
    op.create_table(
        "balances",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("current", sa.BigInteger(), nullable=False),
        sa.Column("locked", sa.BigInteger(), nullable=False),
        sa.Column("previous_day", sa.BigInteger(), nullable=False),
        sa.Column("last_date", sa.String(length=10), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("locked >= 0", name=op.f("ck_balances_locked_non_negative")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_balances_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_balances")),
    )
    op.create_table(
        "voucher_lines",
        sa.Column("voucher_id", sa.String(length=36), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("entry_number", sa.BigInteger(), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("accounting_date", sa.String(length=10), nullable=False),
        sa.Column("posted_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_voucher_lines_amount_positive")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_voucher_lines_account_id_accounts")),
        sa.ForeignKeyConstraint(["voucher_id"], ["vouchers.id"], name=op.f("fk_voucher_lines_voucher_id_vouchers")),
        sa.PrimaryKeyConstraint("voucher_id", "line_no", name=op.f("pk_voucher_lines")),
        sa.UniqueConstraint("account_id", "entry_number", name=op.f("uq_voucher_lines_account_id_entry_number")),
    )
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voucher_lines_account_id_accounting_date",
            ["account_id", "accounting_date", "entry_number"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_voucher_lines_account_id_accounting_date")

    op.drop_table("voucher_lines")
    op.drop_table("balances")
    op.drop_table("write_gate")
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index("ix_vouchers_tenant_id_flow_type_sequence")

    op.drop_table("vouchers")
    op.drop_table("ledger_heads")
    op.drop_table("idempotency")
    op.drop_table("events")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_tenant_id_id")

    op.drop_table("accounts")
