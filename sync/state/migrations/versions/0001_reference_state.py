"""Reference sync state: remote copy, runs, operations journal, quarantine, refresh markers.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables of reference sync."""
    op.create_table(
        "remote_records",
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("synced_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("company", "kind", "key", name="pk_remote_records"),
    )
    op.create_table(
        "runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=True),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_company_id", "runs", ["company", "id"])
    op.create_table(
        "operations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("op", sa.String(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("payload_digest", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_operations_run_id_runs",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
    )
    op.create_index("ix_operations_open", "operations", ["company", "kind", "status"])
    op.create_table(
        "quarantine",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("source_digest", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen", WHEN, nullable=False),
        sa.Column("last_seen", WHEN, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        sa.UniqueConstraint("company", "kind", "key", "origin", name="uq_quarantine_company"),
    )
    op.create_table(
        "refresh_markers",
        sa.Column("company", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("last_token", sa.Text(), nullable=True),
        sa.Column("token_expires_at", WHEN, nullable=True),
        sa.Column("chunks_sent", sa.Integer(), nullable=False),
        sa.Column("total_chunks", sa.Integer(), nullable=False),
        sa.Column("plan_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("company", "kind", name="pk_refresh_markers"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created (its data with it: for development, not operations)."""
    op.drop_table("refresh_markers")
    op.drop_table("quarantine")
    op.drop_index("ix_operations_open", table_name="operations")
    op.drop_table("operations")
    op.drop_index("ix_runs_company_id", table_name="runs")
    op.drop_table("runs")
    op.drop_table("remote_records")
