"""compact journal

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

Fewer bytes per voucher (storage/compact.py): `vouchers.previous_hash` and `hash` and
`idempotency.fingerprint` hold a SHA-256's 32 bytes instead of its 64 hex characters, and
`idempotency.body` and `result` hold their JSON deflated against a preset dictionary. The API and the
service still see hex and JSON text. Existing rows are converted as compact.digest_bytes converts: 64
lowercase hex characters to their 32 bytes, any other value (which the service never wrote) to its UTF-8,
which reads back as it was (unless it is 32 bytes long: then it reads as a digest, which the ledger audit
reports); bodies and results are copied as they are and read back as they are. On PostgreSQL each table is
rewritten once, holding its lock meanwhile.

`voucher_lines` loses its primary key (voucher_id, line_no) for a plain index of voucher_id: B-tree
deduplication keeps one entry per voucher in it, where the unique key kept one per line.

`tally_write_journal` (migration 0011) is redefined with the same parameters, casting these columns from
the bytea hex text the writer sends (`\\x...`, storage/compact.py `bytea_json`).
"""

import sqlalchemy as sa
from alembic import op

from tally.storage.compact import digest_bytes, digest_text, unpack

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

DIGESTS = {"vouchers": ("previous_hash", "hash"), "idempotency": ("fingerprint",)}
PACKED = {"idempotency": ("body", "result")}
KEYS = {"vouchers": ("id",), "idempotency": ("tenant_id", "request_id")}

# voucher_lines: the primary key (voucher_id, line_no) gives way to a plain index of voucher_id, which keeps one
# entry per voucher (deduplicated) where the key kept one per line.
LINES_KEY, LINES_BY_VOUCHER = "pk_voucher_lines", "ix_voucher_lines_voucher_id"
NAME = "tally_write_journal"
# part -> (table, columns as (name, cast)), for the inserts, in the order they run: 0011's, with bytea casts.
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
        ("reverses_id", "text"), ("previous_hash", "bytea"), ("hash", "bytea"))),
    "p_lines": ("voucher_lines", (
        ("voucher_id", "text"), ("line_no", "integer"), ("tenant_id", "text"), ("account_id", "text"),
        ("entry_number", "bigint"), ("side", "text"), ("amount", "bigint"), ("currency", "text"), ("memo", "text"),
        ("balance_after", "bigint"), ("accounting_date", "text"), ("posted_us", "bigint"))),
    "p_records": ("idempotency", (
        ("tenant_id", "text"), ("request_id", "text"), ("operation", "text"), ("fingerprint", "bytea"),
        ("body", "bytea"), ("result", "bytea"), ("created_us", "bigint"), ("actor", "text"))),
    "p_events": ("events", (
        ("tenant_id", "text"), ("sequence", "bigint"), ("type", "text"), ("account_id", "text"),
        ("voucher_id", "text"), ("hold_id", "text"), ("payload", "text"), ("created_us", "bigint"))),
}
UPDATES = {
    "p_balances": ("balances", "account_id", "p_balance_keys", (
        ("current", "bigint"), ("locked", "bigint"), ("previous_day", "bigint"), ("last_date", "text"),
        ("entry_count", "bigint"), ("updated_us", "bigint"))),
    "p_heads": ("ledger_heads", "tenant_id", "p_head_keys", (
        ("voucher_sequence", "bigint"), ("event_sequence", "bigint"), ("last_hash", "text"),
        ("accounting_date", "text"), ("posted_us", "bigint"))),
}
_GENERIC = "SET plan_cache_mode = force_generic_plan"  # as 0011: one plan per statement and session


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


def _function(inserts: dict) -> str:
    statements = [_insert(part, table, columns) for part, (table, columns) in inserts.items()]
    statements += [_update(part, *rest) for part, rest in UPDATES.items()]
    body = "BEGIN\n    " + "\n    ".join(statements) + "\nEND"
    return (f"CREATE OR REPLACE FUNCTION {_signature()} RETURNS void LANGUAGE plpgsql SECURITY INVOKER "
            f"{_GENERIC} AS $${body}$$")


def _as_text(inserts: dict) -> dict:
    """0011's casts: every bytea column back to text."""
    return {part: (table, tuple((name, "text" if cast == "bytea" else cast) for name, cast in columns))
            for part, (table, columns) in inserts.items()}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.drop_constraint(LINES_KEY, type_="primary")
        batch_op.create_index(LINES_BY_VOUCHER, ["voucher_id"], unique=False)


def _upgrade_postgresql() -> None:
    for table, columns in DIGESTS.items():
        clauses = [f"ALTER COLUMN {c} TYPE bytea USING CASE WHEN {c} ~ '^[0-9a-f]{{64}}$' "
                   f"THEN decode({c}, 'hex') ELSE convert_to({c}, 'UTF8') END" for c in columns]
        clauses += [f"ALTER COLUMN {c} TYPE bytea USING convert_to({c}, 'UTF8')" for c in PACKED.get(table, ())]
        op.execute(f"ALTER TABLE {table} " + ", ".join(clauses))
    op.execute(_function(INSERTS))


def _upgrade_sqlite() -> None:
    """SQLite stores what it is given whatever the declared type: the values become blobs first, then the
    tables are rebuilt with the new declared types (the partial index by hand, as 0008 made it)."""
    conn = op.get_bind()
    for table, columns in DIGESTS.items():
        _rewrite(conn, table, columns, _digest_value)
    for table, columns in PACKED.items():
        op.execute(f"UPDATE {table} SET " + ", ".join(f"{c} = CAST({c} AS BLOB)" for c in columns))
    _retype_sqlite((sa.String(64), sa.LargeBinary()), (sa.Text(), sa.LargeBinary()))


def _digest_value(value):
    text = value.decode() if isinstance(value, bytes) else value
    try:
        return digest_bytes(text)
    except ValueError:  # 32 bytes of text, as PostgreSQL's conversion above keeps it
        return text.encode()


def _rewrite(conn, table: str, columns: tuple, convert) -> None:
    keys = KEYS[table]
    rows = conn.execute(sa.text(f"SELECT {', '.join(keys + columns)} FROM {table}")).all()
    if not rows:
        return
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    where = " AND ".join(f"{k} = :k_{k}" for k in keys)
    conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {where}"), [
        {**{f"k_{k}": row[i] for i, k in enumerate(keys)},
         **{c: convert(row[len(keys) + i]) for i, c in enumerate(columns)}} for row in rows])


def _retype_sqlite(digest: tuple, packed: tuple) -> None:
    """Each column from its type to the other: `digest` and `packed` are (existing type, new type)."""
    op.drop_index("uq_vouchers_reverses_id", table_name="vouchers")
    for table, columns in DIGESTS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for c in columns:
                batch_op.alter_column(c, existing_type=digest[0], type_=digest[1], existing_nullable=False)
            for c in PACKED.get(table, ()):
                batch_op.alter_column(c, existing_type=packed[0], type_=packed[1], existing_nullable=False)
    op.create_index("uq_vouchers_reverses_id", "vouchers", ["reverses_id"], unique=True,
                    sqlite_where=sa.text("reverses_id IS NOT NULL"))


def downgrade() -> None:
    """Back to hex and JSON text. Packed JSON unpacks in Python (storage/compact.py), read before the
    columns change and written back after."""
    conn = op.get_bind()
    with op.batch_alter_table("voucher_lines", schema=None) as batch_op:
        batch_op.drop_index(LINES_BY_VOUCHER)
        batch_op.create_primary_key(LINES_KEY, ["voucher_id", "line_no"])
    packed = {table: conn.execute(sa.text(
        f"SELECT {', '.join(KEYS[table] + columns)} FROM {table}")).all() for table, columns in PACKED.items()}
    if conn.dialect.name == "postgresql":
        op.execute(_function(_as_text(INSERTS)))
        for table, columns in DIGESTS.items():
            clauses = [f"ALTER COLUMN {c} TYPE varchar(64) USING CASE WHEN octet_length({c}) = 32 "
                       f"THEN encode({c}, 'hex') ELSE convert_from({c}, 'UTF8') END" for c in columns]
            clauses += [f"ALTER COLUMN {c} TYPE text USING ''" for c in PACKED.get(table, ())]
            op.execute(f"ALTER TABLE {table} " + ", ".join(clauses))
    else:
        for table, columns in DIGESTS.items():
            _rewrite(conn, table, columns, digest_text)
        _retype_sqlite((sa.LargeBinary(), sa.String(64)), (sa.LargeBinary(), sa.Text()))
    for table, columns in PACKED.items():
        keys = KEYS[table]
        where = " AND ".join(f"{k} = :k_{k}" for k in keys)
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        rows = [{**{f"k_{k}": row[i] for i, k in enumerate(keys)},
                 **{c: unpack(row[len(keys) + i]) for i, c in enumerate(columns)}} for row in packed[table]]
        if rows:
            conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {where}"), rows)
