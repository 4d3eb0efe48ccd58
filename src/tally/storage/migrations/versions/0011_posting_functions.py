"""posting functions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

PostgreSQL only; nothing changes on SQLite. `tally_write_journal` writes what a batch of postings adds
and changes, in one call: new accounts and their balance rows, vouchers and their lines, idempotency records,
events, then the balance rows and ledger heads the batch moved. The batch writer used to send these as six
to eight statements in one multi-statement query: each one parsed, analysed, planned (row security
included) and started again on every transaction, and read back by the driver as a result of its own.
PL/pgSQL keeps each statement's plan for the session, so a transaction pays for one call. The function
is SECURITY INVOKER: it runs with the caller's privileges, under the caller's row security.

Each part is a JSON array of rows, each row an array of the columns below in that order (the order of
`storage/journal_write.py`, which a test holds to these lists). Strings stay `text` until the column's own
assignment cast, so a value too long for a column is refused as a plain INSERT would refuse it. The updates
take their keys as text arrays as well, so that the plan probes the primary key for each.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "tally_write_journal"
# part -> (table, columns as (name, cast)), for the inserts, in the order they run.
INSERTS = {
    "p_accounts": ("accounts", (
        ("id", "text"), ("tenant_id", "text"), ("code", "text"), ("type", "text"), ("normal_side", "text"),
        ("currency", "text"), ("status", "text"), ("name", "text"), ("parent_id", "text"),
        ("credit_limit", "bigint"), ("floor_policy", "text"), ("metadata", "text"), ("created_us", "bigint"),
        ("updated_us", "bigint"))),
    "p_new_balances": ("balances", (
        ("account_id", "text"), ("tenant_id", "text"), ("current", "bigint"), ("locked", "bigint"),
        ("previous_day", "bigint"), ("last_date", "text"), ("entry_count", "bigint"), ("updated_us", "bigint"))),
    "p_vouchers": ("vouchers", (
        ("id", "text"), ("tenant_id", "text"), ("sequence", "bigint"), ("flow_type", "text"),
        ("request_id", "text"), ("rule_id", "text"), ("rule_set_version", "text"), ("accounting_date", "text"),
        ("effective_us", "bigint"), ("posted_us", "bigint"), ("memo", "text"), ("metadata", "text"),
        ("reverses_id", "text"), ("previous_hash", "text"), ("hash", "text"))),
    "p_lines": ("voucher_lines", (
        ("voucher_id", "text"), ("line_no", "integer"), ("tenant_id", "text"), ("account_id", "text"),
        ("entry_number", "bigint"), ("side", "text"), ("amount", "bigint"), ("currency", "text"), ("memo", "text"),
        ("balance_after", "bigint"), ("accounting_date", "text"), ("posted_us", "bigint"))),
    "p_records": ("idempotency", (
        ("tenant_id", "text"), ("request_id", "text"), ("operation", "text"), ("fingerprint", "text"),
        ("body", "text"), ("result", "text"), ("created_us", "bigint"), ("actor", "text"))),
    "p_events": ("events", (
        ("tenant_id", "text"), ("sequence", "bigint"), ("type", "text"), ("account_id", "text"),
        ("voucher_id", "text"), ("hold_id", "text"), ("payload", "text"), ("created_us", "bigint"))),
}
# part -> (table, key, its keys' parameter, updated columns), run after the inserts: a balance row
# inserted above is updated here, in the same call, by a later statement that sees it.
UPDATES = {
    "p_balances": ("balances", "account_id", "p_balance_keys", (
        ("current", "bigint"), ("locked", "bigint"), ("previous_day", "bigint"), ("last_date", "text"),
        ("entry_count", "bigint"), ("updated_us", "bigint"))),
    "p_heads": ("ledger_heads", "tenant_id", "p_head_keys", (
        ("voucher_sequence", "bigint"), ("event_sequence", "bigint"), ("last_hash", "text"),
        ("accounting_date", "text"), ("posted_us", "bigint"))),
}


def _insert(part: str, table: str, columns: tuple) -> str:
    names = ", ".join(f'"{name}"' for name, _ in columns)
    values = ", ".join(f"(r->>{i})::{cast}" for i, (_, cast) in enumerate(columns))
    return (f"IF jsonb_array_length({part}) > 0 THEN\n"
            f"        INSERT INTO {table} ({names}) SELECT {values} FROM jsonb_array_elements({part}) AS r;\n"
            "    END IF;")


def _update(part: str, table: str, key: str, keys: str, columns: tuple) -> str:
    sets = ", ".join(f'"{name}" = (r->>{i})::{cast}' for i, (name, cast) in enumerate(columns, start=1))
    return (f"IF jsonb_array_length({part}) > 0 THEN\n"
            f"        UPDATE {table} AS t SET {sets} FROM jsonb_array_elements({part}) AS r\n"
            f"        WHERE t.{key} = ANY({keys}) AND t.{key} = (r->>0);\n"
            "    END IF;")


def _signature() -> str:
    parts = [f"{part} jsonb" for part in INSERTS]
    for part, (_, _, keys, _) in UPDATES.items():
        parts += [f"{part} jsonb", f"{keys} text[]"]
    return f"{NAME}({', '.join(parts)})"


def _body() -> str:
    statements = [_insert(part, table, columns) for part, (table, columns) in INSERTS.items()]
    statements += [_update(part, *rest) for part, rest in UPDATES.items()]
    return "BEGIN\n    " + "\n    ".join(statements) + "\nEND"


# Each statement's one plan, made once per session: its shape does not depend on how many rows come (each
# key an index probe, each row an insert). Left to choose, PostgreSQL planned every call afresh (measured on
# a function of the opening reads, not kept: 0.56 ms a call against 0.18 ms with the plan kept).
_GENERIC = "SET plan_cache_mode = force_generic_plan"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE FUNCTION {_signature()} RETURNS void LANGUAGE plpgsql SECURITY INVOKER {_GENERIC} "
               f"AS $${_body()}$$")
    op.execute(f"REVOKE ALL ON FUNCTION {_signature()} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {_signature()}")
