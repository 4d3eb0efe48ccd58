"""ledger audit

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

The ledger audit (VerifyChain, `tally verify`, the scheduled audit):
- audit_checkpoints: per tenant, how far the last audit verified the journal, events and audit log, with
  the head hash there and a digest of audit_account_sums, so a routine audit reads only what is new;
- audit_account_sums: each account's journal (line count, signed sum, last balance_after, last date,
  previous-day balance) as of its tenant's checkpoint;
- the audit log becomes a hash chain per tenant: previous_hash and hash on every row, the chain's head in
  audit_heads. Rows written before this revision are chained here, in id order per tenant.
- accounts.status may read 'inconsistent' (set by the audit; String(12) holds it, nothing to change).
Row-level security as in 0008 on the new tables (PostgreSQL).
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

POLICY = "tally_tenant_scope"
NEW_TENANT_TABLES = ("audit_heads", "audit_checkpoints", "audit_account_sums")
GENESIS = "0" * 64
# Frozen copy of tally.domain.audit_trail as of this revision.
_FIELDS = ("tenant_id", "actor", "role", "action", "target", "outcome", "request_id", "peer", "time_us")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_BACKFILL_ROWS = 5000


def _row_hash(previous: str, values) -> str:
    return hashlib.sha256((previous + _JSON.encode(list(values))).encode()).hexdigest()


def _in_scope(column: str) -> str:
    scope = "current_setting('tally.tenants', true)"
    return f"{column} = NULLIF({scope}, '') OR {scope} = '*' OR {column} = ANY (string_to_array({scope}, ','))"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("voucher_sequence", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.Column("audit_log_id", sa.BigInteger(), nullable=False),
        sa.Column("audit_log_hash", sa.String(length=64), nullable=False),
        sa.Column("audit_log_count", sa.BigInteger(), nullable=False),
        sa.Column("sums_digest", sa.String(length=64), nullable=False),
        sa.Column("account_count", sa.BigInteger(), nullable=False),
        sa.Column("findings", sa.BigInteger(), nullable=False),
        sa.Column("full_us", sa.BigInteger(), nullable=False),
        sa.Column("verified_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_account_sums",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("line_sum", sa.BigInteger(), nullable=False),
        sa.Column("last_balance", sa.BigInteger(), nullable=False),
        sa.Column("last_date", sa.String(length=10), nullable=False),
        sa.Column("previous_day", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_audit_account_sums")),
    )
    with op.batch_alter_table("audit_account_sums", schema=None) as batch_op:
        batch_op.create_index("ix_audit_account_sums_tenant_id", ["tenant_id"], unique=False)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_hash", sa.String(length=64), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=False, server_default=sa.text("''")))
    _chain_existing_rows()
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({_in_scope('tenant_id')}) "
                       f"WITH CHECK ({_in_scope('tenant_id')})")


def _chain_existing_rows() -> None:
    """Chains the rows already written, per tenant in id order, and records each chain's head."""
    conn = op.get_bind()
    if _postgresql():
        conn.execute(sa.text("SELECT set_config('tally.tenants', '*', true)"))  # row security binds the owner
    log = sa.table("audit_log", sa.column("id"), sa.column("previous_hash"), sa.column("hash"),
                   *(sa.column(f) for f in _FIELDS))
    heads: dict[str, tuple[str, int]] = {}
    after = 0
    while True:
        rows = conn.execute(sa.select(log.c.id, *(log.c[f] for f in _FIELDS)).where(log.c.id > after)
                            .order_by(log.c.id).limit(_BACKFILL_ROWS)).all()
        if not rows:
            break
        updates = []
        for row in rows:
            previous, count = heads.get(row.tenant_id, (GENESIS, 0))
            digest = _row_hash(previous, tuple(row[1:]))
            updates.append({"row_id": row.id, "p": previous, "h": digest})
            heads[row.tenant_id] = (digest, count + 1)
        conn.execute(sa.update(log).where(log.c.id == sa.bindparam("row_id"))
                     .values(previous_hash=sa.bindparam("p"), hash=sa.bindparam("h")), updates)
        after = rows[-1].id
    if heads:
        head_table = sa.table("audit_heads", sa.column("tenant_id"), sa.column("last_hash"), sa.column("row_count"))
        conn.execute(sa.insert(head_table), [{"tenant_id": t, "last_hash": h, "row_count": n}
                                             for t, (h, n) in heads.items()])


def downgrade() -> None:
    if _postgresql():
        for table in NEW_TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("previous_hash")
    with op.batch_alter_table("audit_account_sums", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_account_sums_tenant_id")
    op.drop_table("audit_account_sums")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_heads")
