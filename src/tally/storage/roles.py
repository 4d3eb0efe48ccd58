"""PostgreSQL roles: the service runs as a role that owns nothing and may do only what the service does.

The owner (the role `tally migrate` connects as) creates and changes the schema, and administers tenants
and API keys (`tally tenants`, `tally keys`). The service role, which the operator creates (`CREATE ROLE
tally_app LOGIN PASSWORD '...'`), gets exactly:

- SELECT, INSERT on the journal tables (vouchers, voucher_lines, events, idempotency, audit_log): what is
  written there is never changed, and the database refuses UPDATE and DELETE to the service;
- SELECT, INSERT on the tables that change, and UPDATE of only the columns the service changes in them
  (UPDATED_COLUMNS: never a row's key or tenant, never what an account was opened as in a balance row);
  nothing deletes rows anywhere;
- SELECT on tenants (a token's tenant must exist), and nothing on api_keys: tenants and keys are created
  and revoked by the owner only;
- EXECUTE on the system functions of migration 0010 (SYSTEM_FUNCTIONS), its only way across tenants: the
  policies show '*' to the owner alone; and on the journal write function of 0011 (POSTING_FUNCTIONS), which runs
  with the caller's own privileges;
- USAGE on the audit_log id sequence (nextval), and USAGE on the schema.

Being no owner, the role cannot alter tables or switch row-level security off; FORCEd policies bind the
owner as well (migration 0006). A superuser or BYPASSRLS role would skip the policies, so such a role, or
one that is (a member of) the owner, is refused as the service role.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tally.storage.accounts_repo import CHANGED_ACCOUNT_COLUMNS

JOURNAL_TABLES = ("vouchers", "voucher_lines", "events", "idempotency", "audit_log", "webhook_deliveries",
                  # a closed day's totals and closing balances (migration 0014): written once, at the close
                  "day_currency_totals", "day_flow_totals", "day_summary_lines", "day_closing_balances",
                  "interest_accruals",
                  "recon_statements", "recon_lines",  # imported statements (migration 0015)
                  "account_merges")  # where a merged account's code leads (migration 0017)
# The tables the service changes -> the columns it updates (storage/*_repo.py, bulk.update_rows).
UPDATED_COLUMNS = {
    "accounts": CHANGED_ACCOUNT_COLUMNS,
    "balances": ("current", "locked", "previous_day", "last_date", "entry_count", "updated_us"),
    "ledger_heads": ("voucher_sequence", "event_sequence", "last_hash", "accounting_date", "posted_us", "epoch"),
    "flow_caps": ("used",),
    "holds": ("captured", "status", "capture_voucher_ids", "updated_us"),
    "audit_heads": ("last_hash", "row_count"),
    "audit_checkpoints": ("voucher_sequence", "head_hash", "event_sequence", "audit_log_id", "audit_log_hash",
                          "audit_log_count", "sums_digest", "account_count", "findings", "full_us", "verified_us"),
    "audit_account_sums": ("entry_count", "line_sum", "last_balance", "last_date", "previous_day"),
    # Never the id, tenant, create request or creation time (storage/webhooks_repo.py).
    "webhooks": ("url", "description", "event_types", "account_ids", "status", "status_reason", "secret",
                 "previous_secret", "previous_secret_expires_us", "cursor", "failures", "retry_at_us", "lease_owner",
                 "lease_expires_us", "last_request_id", "last_fingerprint", "updated_us"),
    "accounting_days": ("state", "voucher_count", "accounts_closed", "closed_us", "event_sequence"),
    "recon_items": ("resolution", "resolution_request_id", "voucher_ids", "resolved_by", "resolved_us", "updated_us"),
    "bank_accounts": ("status", "updated_us"),
    "payout_batches": ("state", "send_request_id", "send_voucher_id", "sent_date", "expected_date", "updated_us"),
    "payouts": ("state", "batch_id", "reason", "voucher_ids", "updated_us"),
    "account_securities": ("deposit_id", "ratio_bps", "bound", "request_id", "updated_us"),  # migration 0017
    # Spending controls (migration 0018): an account's controls are replaced, its counters advanced.
    "account_controls": ("controls", "request_id", "updated_us"),
    "spend_counters": ("spent",),
}
MUTABLE_TABLES = tuple(UPDATED_COLUMNS)
READ_TABLES = ("tenants",)
ADMIN_TABLES = ("tenants", "api_keys")  # written by the owner only (`tally tenants`, `tally keys`)
SERIAL_COLUMNS = (("audit_log", "id"),)
SCHEMA_VERSION_TABLE = "alembic_version"
# Migration 0010: the service's only way across tenants.
SYSTEM_FUNCTIONS = ("tally_api_key(text)", "tally_tenant_count()", "tally_tenant_ids()",
                    "tally_due_holds(bigint, integer)", "tally_webhook_tenants()")  # the last: migration 0013
# Migration 0011: the batch writer's rows in one call. SECURITY INVOKER: the caller's privileges and row
# security bind it, so EXECUTE grants nothing the table privileges do not.
POSTING_FUNCTIONS = ("tally_write_journal(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, text[], jsonb, text[])",
                     "tally_check_epochs(text[], bigint[])")  # migration 0021
ALL_TABLES = (*JOURNAL_TABLES, *MUTABLE_TABLES, "tenants", "api_keys", SCHEMA_VERSION_TABLE)


class ServiceRoleError(ValueError):
    """The service role cannot be used: missing, or privileged enough to make row security moot."""


def grant_service_role(conn: Connection, role: str) -> None:
    """Gives `role` exactly the privileges the service needs on the schema of `conn` (the owner's
    connection, after migrating). Idempotent: it revokes everything first (column privileges go with the
    table's), so running it again, or after a migration, converges on the same set."""
    if conn.dialect.name != "postgresql":
        raise ServiceRoleError("service roles are a PostgreSQL feature")
    _check_role(conn, role)
    for statement in _grants(conn, conn.dialect.identifier_preparer.quote(role)):
        conn.exec_driver_sql(statement)


def _grants(conn: Connection, grantee: str) -> list[str]:
    quote = conn.dialect.identifier_preparer.quote

    def names(tables) -> str:
        return ", ".join(quote(t) for t in tables)

    sequences = ", ".join(_serial_sequence(conn, table, column) for table, column in SERIAL_COLUMNS)
    functions = ", ".join((*SYSTEM_FUNCTIONS, *POSTING_FUNCTIONS))
    return [
        f"REVOKE ALL ON TABLE {names(ALL_TABLES)} FROM {grantee}",
        f"REVOKE ALL ON SEQUENCE {sequences} FROM {grantee}",
        f"REVOKE ALL ON FUNCTION {functions} FROM {grantee}",
        f"GRANT USAGE ON SCHEMA {quote(_schema(conn))} TO {grantee}",
        f"GRANT SELECT, INSERT ON TABLE {names(JOURNAL_TABLES + MUTABLE_TABLES)} TO {grantee}",
        *(f"GRANT UPDATE ({names(columns)}) ON TABLE {quote(table)} TO {grantee}"
          for table, columns in UPDATED_COLUMNS.items()),
        f"GRANT SELECT ON TABLE {names(READ_TABLES)} TO {grantee}",
        f"GRANT USAGE ON SEQUENCE {sequences} TO {grantee}",
        f"GRANT EXECUTE ON FUNCTION {functions} TO {grantee}",
    ]


def _check_role(conn: Connection, role: str) -> None:
    row = conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :role"),
                       {"role": role}).first()
    if row is None:
        raise ServiceRoleError(f"role {role!r} does not exist: create it first (CREATE ROLE {role} LOGIN ...)")
    if row.rolsuper or row.rolbypassrls:
        raise ServiceRoleError(f"role {role!r} is a superuser or has BYPASSRLS: row security would not bind it")
    owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                              "AND tablename = 'accounts'")).scalar()
    if owner is not None and conn.execute(text("SELECT pg_has_role(:role, :owner, 'USAGE')"),
                                          {"role": role, "owner": owner}).scalar():
        raise ServiceRoleError(f"role {role!r} is (or acts as) the table owner {owner!r}: use a role that owns "
                               "nothing")


def _schema(conn: Connection) -> str:
    return conn.execute(text("SELECT current_schema()")).scalar_one()


def _serial_sequence(conn: Connection, table: str, column: str) -> str:
    name = conn.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                        {"table": table, "column": column}).scalar()
    if name is None:
        raise ServiceRoleError(f"{table}.{column} has no sequence: is the schema migrated?")
    return name  # already quoted as needed, and schema-qualified


def row_security_bypass(conn: Connection) -> str:
    """Why the connection's own role skips row security ("" when it does not): it is a superuser or has
    BYPASSRLS. Always "" on SQLite, which has no row security to skip."""
    if conn.dialect.name != "postgresql":
        return ""
    row = conn.execute(text("SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles "
                            "WHERE rolname = current_user")).first()
    if row is None or not (row.rolsuper or row.rolbypassrls):
        return ""
    return f"role {row.name!r} is {'a superuser' if row.rolsuper else 'BYPASSRLS'}"


def may_administer(conn: Connection) -> bool:
    """Whether this connection's role may create tenants and keys and revoke keys: always on SQLite; on
    PostgreSQL the owner (or a superuser) may, the service role may not (it has no privilege on api_keys).
    Before the schema exists, nobody is refused here (what they do then fails for the missing tables)."""
    if conn.dialect.name != "postgresql":
        return True
    return all(conn.execute(text("SELECT coalesce(has_table_privilege(to_regclass(:table), :privilege), true)"),
                            {"table": table, "privilege": privilege}).scalar()
               for table in ADMIN_TABLES for privilege in ("INSERT", "UPDATE"))


def may_migrate(conn: Connection) -> bool:
    """Whether this connection's role can change the schema: always on SQLite; on PostgreSQL when there is
    no schema yet, or when the role is (or acts as) the owner of the schema version table. The service role
    is not: the service must then not try to migrate at start-up."""
    if conn.dialect.name != "postgresql":
        return True
    owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                              "AND tablename = :table"), {"table": SCHEMA_VERSION_TABLE}).scalar()
    if owner is None:
        return True
    return bool(conn.execute(text("SELECT pg_has_role(current_user, :owner, 'USAGE')"), {"owner": owner}).scalar())
