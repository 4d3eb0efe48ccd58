"""idempotency actor

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

Who asked for each request, kept with its idempotency record in the request's own transaction. The audit
log is written apart, in batches, so a crash can lose its last rows; the record of a change that committed
now names its actor all the same. Records written before this revision have an empty actor.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=128), nullable=False, server_default=sa.text("''")))


def downgrade() -> None:
    with op.batch_alter_table("idempotency", schema=None) as batch_op:
        batch_op.drop_column("actor")
