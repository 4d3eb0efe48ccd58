"""account children index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

A parent's children are found by (tenant_id, parent_id): a roll-up walks a subtree level by level, and
opening a child counts its siblings against the fan-out bound.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_accounts_tenant_id_parent_id", "accounts", ["tenant_id", "parent_id"])


def downgrade() -> None:
    op.drop_index("ix_accounts_tenant_id_parent_id", table_name="accounts")
