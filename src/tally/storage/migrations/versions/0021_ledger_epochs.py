"""ledger epochs: every write transaction of a tenant moves its epoch

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

Issue 18 (a posting in one round trip): `ledger_heads.epoch` counts a tenant's write transactions. The unit of
work moves it at the end of every write transaction that wrote anything (storage/epochs.py). A batch writer
that starts from what it remembers of its own last commit checks, with `tally_check_epochs`, that the epochs
are still those that commit left; the check fails the transaction (SQLSTATE TL409) when somebody else wrote
meanwhile. On SQLite the check is a plain read (storage/epochs.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

STALE_SQLSTATE = "TL409"  # storage/epochs.STALE_SQLSTATE
# SECURITY INVOKER: the caller's privileges and row security bind it. The tenants come distinct.
CHECK = f"""
CREATE OR REPLACE FUNCTION tally_check_epochs(p_tenants text[], p_epochs bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    IF (SELECT count(*) FROM ledger_heads AS h JOIN unnest(p_tenants, p_epochs) AS x(tenant_id, epoch)
        ON h.tenant_id = x.tenant_id AND h.epoch = x.epoch) <> cardinality(p_tenants) THEN
        RAISE EXCEPTION 'a tenant was written since this writer last committed'
            USING ERRCODE = '{STALE_SQLSTATE}';
    END IF;
END
$$"""


def upgrade() -> None:
    with op.batch_alter_table("ledger_heads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tally_check_epochs(text[], bigint[])")
    with op.batch_alter_table("ledger_heads", schema=None) as batch_op:
        batch_op.drop_column("epoch")
