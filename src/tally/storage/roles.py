"""PostgreSQL roles: the service runs as a role that owns nothing and may do only what the service does.

The owner (the role `tally migrate` connects as) creates and changes the schema. The service role, which
the operator creates (`CREATE ROLE tally_app LOGIN PASSWORD '...'`), gets exactly:

- SELECT, INSERT on the journal tables (vouchers, voucher_lines, events, idempotency, audit_log): what is
  written there is never changed, and the database refuses UPDATE and DELETE to the service;
- SELECT, INSERT, UPDATE on the tables that change (accounts, balances, ledger_heads, flow_caps, holds,
  api_keys, tenants, and the ledger audit's audit_heads, audit_checkpoints, audit_account_sums), and
  nothing deletes rows anywhere;
- UPDATE on write_gate, the smallest privilege that allows `LOCK TABLE write_gate IN EXCLUSIVE MODE`
  (LOCK in any mode stronger than ROW EXCLUSIVE needs UPDATE, DELETE or TRUNCATE; write_gate never holds
  a row, so UPDATE on it changes nothing);
- USAGE on the audit_log id sequence (nextval), and USAGE on the schema.

Being no owner, the role cannot alter tables or switch row-level security off; FORCEd policies bind the
owner as well (migration 0006). A superuser or BYPASSRLS role would skip the policies, so such a role, or
one that is (a member of) the owner, is refused as the service role.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

JOURNAL_TABLES = ("vouchers", "voucher_lines", "events", "idempotency", "audit_log")
MUTABLE_TABLES = ("accounts", "balances", "ledger_heads", "flow_caps", "holds", "api_keys", "tenants",
                  "audit_heads", "audit_checkpoints", "audit_account_sums")
GATE_TABLE = "write_gate"
SERIAL_COLUMNS = (("audit_log", "id"),)
SCHEMA_VERSION_TABLE = "alembic_version"


class ServiceRoleError(ValueError):
    """The service role cannot be used: missing, or privileged enough to make row security moot."""


def grant_service_role(conn: Connection, role: str) -> None:
    """Gives `role` exactly the privileges the service needs on the schema of `conn` (the owner's
    connection, after migrating). Idempotent: it revokes everything first, so running it again, or after
    a migration, converges on the same set."""
    if conn.dialect.name != "postgresql":
        raise ServiceRoleError("service roles are a PostgreSQL feature")
    _check_role(conn, role)
    quote = conn.dialect.identifier_preparer.quote
    grantee = quote(role)
    tables = (*JOURNAL_TABLES, *MUTABLE_TABLES, GATE_TABLE, SCHEMA_VERSION_TABLE)
    sequences = [_serial_sequence(conn, table, column) for table, column in SERIAL_COLUMNS]
    statements = [
        f"REVOKE ALL ON TABLE {', '.join(quote(t) for t in tables)} FROM {grantee}",
        f"REVOKE ALL ON SEQUENCE {', '.join(sequences)} FROM {grantee}",
        f"GRANT USAGE ON SCHEMA {quote(_schema(conn))} TO {grantee}",
        f"GRANT SELECT, INSERT ON TABLE {', '.join(quote(t) for t in JOURNAL_TABLES)} TO {grantee}",
        f"GRANT SELECT, INSERT, UPDATE ON TABLE {', '.join(quote(t) for t in MUTABLE_TABLES)} TO {grantee}",
        f"GRANT UPDATE ON TABLE {quote(GATE_TABLE)} TO {grantee}",
        f"GRANT USAGE ON SEQUENCE {', '.join(sequences)} TO {grantee}",
    ]
    for statement in statements:
        conn.exec_driver_sql(statement)


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
