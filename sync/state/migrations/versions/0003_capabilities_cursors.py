"""The live service: learned capabilities, poll cursors, the ledger's journal channel.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the capability and poll-cursor tables; add the ledger's journal channel."""
    op.create_table(
        "capabilities",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("supported", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("checked_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "operation", name="pk_capabilities"),
    )
    op.create_table(
        "poll_cursors",
        sa.Column("company_id", sa.String(), nullable=False),
        sa.Column("tx_type", sa.String(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("ids", sa.Text(), nullable=False),
        sa.Column("swept_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("company_id", "tx_type", name="pk_poll_cursors"),
    )
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("journal_channel", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added (for development, not operations)."""
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("journal_channel")
    op.drop_table("poll_cursors")
    op.drop_table("capabilities")
