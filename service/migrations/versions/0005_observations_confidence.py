"""observations beside changes; confidence of changes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:20:00

Additive only: an existing database keeps every change. Changes with no
effective date (the old seeds' table memberships) stay as they were; the
timeline reads them as evidence of their status on the day they were recorded,
and `exportctl seed` adds the observations and dated history of the new seeds
beside them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("observed_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('listed', 'pending_removal', 'removed', 'pending_addition', 'not_listed')",
            name=op.f("ck_observations_status"),
        ),
        sa.CheckConstraint(
            "confidence IS NULL OR confidence IN ('high', 'medium', 'low')",
            name=op.f("ck_observations_confidence"),
        ),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_observations_entry_id_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_observations_entry_id_id"), ["entry_id", "id"], unique=False)

    # Plain ADD COLUMN (no batch): rebuilding status_changes would drop a table events reference.
    op.add_column("status_changes", sa.Column("confidence", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("status_changes", recreate="never") as batch_op:
        batch_op.drop_column("confidence")
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observations_entry_id_id"))
    op.drop_table("observations")
