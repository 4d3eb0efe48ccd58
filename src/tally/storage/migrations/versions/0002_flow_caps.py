"""flow caps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_caps",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("cap_key", sa.String(length=200), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("cap_limit", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("used >= 0 AND used <= cap_limit", name=op.f("ck_flow_caps_used_within_limit")),
        sa.PrimaryKeyConstraint("tenant_id", "cap_key", name=op.f("pk_flow_caps")),
    )


def downgrade() -> None:
    op.drop_table("flow_caps")
