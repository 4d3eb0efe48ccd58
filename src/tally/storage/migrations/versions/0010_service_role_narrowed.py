"""service role narrowed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14

PostgreSQL only; nothing changes on SQLite. The service role no longer reaches every tenant with
`tally.tenants = '*'`:

- The tenant policy (`tally_tenant_scope`, TO PUBLIC) matches only the tenants named in the scope, in the
  fast form of 0008 without its '*' branch. A second policy, `tally_system_scope`, lets '*' show every row,
  and applies only TO the role that runs this migration: the schema owner (and its members; a superuser
  bypasses row security anyway). Row security is FORCEd, so the owner is bound by both.
- The few system operations that must cross tenants are SECURITY DEFINER functions owned by the schema
  owner, each doing one thing, with `search_path` pinned: looking up one API key by id, counting tenants,
  listing tenant ids, and the due holds. Each sets `tally.tenants = '*'` around its one query and puts the
  caller's scope back (a function's own SET clause would be neater, but PostgreSQL 15 lets only a superuser
  attach a custom setting to a function; an error aborts the transaction, scope included). EXECUTE is
  revoked from PUBLIC; `tally migrate` grants it to the service role (storage/roles.py).
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
SYSTEM_POLICY = "tally_system_scope"
# table -> the column holding its tenant (0006, 0009)
TENANT_COLUMNS = {
    "accounts": "tenant_id", "balances": "tenant_id", "vouchers": "tenant_id", "voucher_lines": "tenant_id",
    "idempotency": "tenant_id", "events": "tenant_id", "ledger_heads": "tenant_id", "flow_caps": "tenant_id",
    "holds": "tenant_id", "api_keys": "tenant_id", "audit_log": "tenant_id", "tenants": "id",
    "audit_heads": "tenant_id", "audit_checkpoints": "tenant_id", "audit_account_sums": "tenant_id",
}
_SCOPE = "current_setting('tally.tenants', true)"

# name(arguments) -> (returns, query). Each reads one thing; none writes.
FUNCTIONS = {
    "tally_api_key(p_key_id text)": (
        "SETOF api_keys", "SELECT k.* FROM api_keys k WHERE k.id = p_key_id"),
    "tally_tenant_count()": (
        "SETOF bigint", "SELECT count(*) FROM tenants"),
    "tally_tenant_ids()": (
        "SETOF text", "SELECT t.id::text FROM tenants t ORDER BY t.id"),
    "tally_due_holds(p_now_us bigint, p_limit integer)": (
        "TABLE (tenant_id text, hold_id text)",
        "SELECT h.tenant_id::text, h.id::text FROM holds h WHERE h.status = 'active' AND h.expires_us <= p_now_us "
        "ORDER BY h.expires_us LIMIT least(greatest(p_limit, 0), 10000)"),
}
# The body of each: its one query under '*', then the caller's scope again.
_BODY = """
DECLARE caller_scope text := current_setting('tally.tenants', true);
BEGIN
    PERFORM set_config('tally.tenants', '*', true);
    RETURN QUERY {query};
    PERFORM set_config('tally.tenants', coalesce(caller_scope, ''), true);
END
"""


def _in_scope(column: str) -> str:
    # NULLIF: an empty scope matches nothing, not the rows whose tenant is "" (audit rows of unknown callers).
    return f"{column} = NULLIF({_SCOPE}, '') OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _in_scope_0009(column: str) -> str:
    return f"{column} = NULLIF({_SCOPE}, '') OR {_SCOPE} = '*' OR {column} = ANY (string_to_array({_SCOPE}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _policies(predicate) -> None:
    for table, column in TENANT_COLUMNS.items():
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({predicate(column)}) WITH CHECK ({predicate(column)})")


def _schema() -> str:
    name = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    return op.get_context().dialect.identifier_preparer.quote(name)


def upgrade() -> None:
    if not _postgresql():
        return
    _policies(_in_scope)
    for table in TENANT_COLUMNS:
        op.execute(f"CREATE POLICY {SYSTEM_POLICY} ON {table} TO CURRENT_USER USING ({_SCOPE} = '*') "
                   f"WITH CHECK ({_SCOPE} = '*')")
    schema = _schema()
    for signature, (returns, query) in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE plpgsql SECURITY DEFINER "
                   f"SET search_path = {schema}, pg_temp AS $${_BODY.format(query=query)}$$")
        op.execute(f"REVOKE ALL ON FUNCTION {signature.split('(')[0]} FROM PUBLIC")


def downgrade() -> None:
    if not _postgresql():
        return
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature.split('(')[0]}")
    for table in TENANT_COLUMNS:
        op.execute(f"DROP POLICY IF EXISTS {SYSTEM_POLICY} ON {table}")
    _policies(_in_scope_0009)
