"""writers gate per tenant

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Write transactions no longer lock the table `write_gate`, which made every writer of every tenant, in every
process, wait for the one before it: each now takes an advisory lock per tenant (storage/engine.py), so
writers of different tenants run side by side. The table goes. A server from before this migration locks
it before every write: stop such servers before migrating (their writes would fail, not go wrong).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("write_gate")


def downgrade() -> None:
    op.create_table("write_gate", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_write_gate")))
