"""tenant row security

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

PostgreSQL only: row-level security on every table with a tenant column, enabled and FORCEd (so it binds
the table owner too; superusers and BYPASSRLS roles still bypass it). One policy per table lets a row
be seen, written or changed only when its tenant is in the transaction's scope, the setting
`tally.tenants` that the unit of work sets at the start of every transaction: "*" for the few system
operations, else tenant ids joined by commas. An unset or empty setting matches no row: fail closed.
`write_gate` has no tenant and no policy. SQLite has no row security: nothing changes there.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
# table -> the column holding its tenant
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


def _in_scope(column: str) -> str:
    return (f"current_setting('tally.tenants', true) = '*' OR "
            f"{column} = ANY (string_to_array(current_setting('tally.tenants', true), ','))")


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    for table, column in TENANT_COLUMNS.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope(column)}) "
                   f"WITH CHECK ({_in_scope(column)})")


def downgrade() -> None:
    if not _postgresql():
        return
    for table in TENANT_COLUMNS:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
