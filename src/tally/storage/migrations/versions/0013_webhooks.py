"""webhooks

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Webhook subscriptions and the record of every delivery attempt. Both tables have a tenant and get the
row security of 0006/0010 on PostgreSQL: the tenant policy (TO PUBLIC) and the '*' policy for the schema
owner, enabled and FORCEd. One more system function in the manner of 0010, `tally_webhook_tenants()`: the
tenants that have an active subscription, which is how every process's dispatcher finds what to deliver
(EXECUTE revoked from PUBLIC; `tally migrate` grants it to the service role). Self-contained: the tables are
created here, not from tables.py, so later changes there cannot change what this migration did.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
TABLES = ("webhooks", "webhook_deliveries")
_SCOPE = "current_setting('tally.tenants', true)"


FUNCTION = "tally_webhook_tenants()"
# As 0010's functions: its one query under '*', then the caller's scope again.
_BODY = """
DECLARE caller_scope text := current_setting('tally.tenants', true);
BEGIN
    PERFORM set_config('tally.tenants', '*', true);
    RETURN QUERY SELECT DISTINCT w.tenant_id::text FROM webhooks w WHERE w.status = 'active' ORDER BY 1;
    PERFORM set_config('tally.tenants', coalesce(caller_scope, ''), true);
END
"""


def _in_scope(column: str) -> str:  # as in 0010
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("event_types", sa.Text(), nullable=False),
        sa.Column("account_ids", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=False),
        sa.Column("previous_secret_expires_us", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_at_us", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=False),
        sa.Column("lease_expires_us", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("last_request_id", sa.String(128), nullable=False),
        sa.Column("last_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("tenant_id", "request_id", name=op.f("uq_webhooks_tenant_id_request_id")),
    )
    op.create_index("ix_webhooks_tenant_id_status", "webhooks", ["tenant_id", "status"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(36), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(48), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(12), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("latency_us", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_tenant_id_webhook_id_id", "webhook_deliveries",
                    ["tenant_id", "webhook_id", "id"])
    if op.get_context().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                   f"WITH CHECK ({_in_scope('tenant_id')})")
        op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                   f"WITH CHECK ({_SCOPE} = '*')")
    schema = op.get_context().dialect.identifier_preparer.quote(
        op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one())
    op.execute(f"CREATE FUNCTION {FUNCTION} RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER "
               f"SET search_path = {schema}, pg_temp AS $${_BODY}$$")
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")
    op.drop_index("ix_webhook_deliveries_tenant_id_webhook_id_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_tenant_id_status", table_name="webhooks")
    op.drop_table("webhooks")
