"""The values per-value checks (IBAN, BIC, VAT) found good in each kind's last run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the checked-values table (empty: the next run checks every value once)."""
    op.create_table(
        "checked_values",
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("rules", sa.String(), nullable=False),
        sa.Column("good", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company", "kind", "name", name="pk_checked_values"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    op.drop_table("checked_values")
