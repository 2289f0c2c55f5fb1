"""lookup indexes: an entry's changes by (effective_on, id), so that a lookup on any date reads
only the change in force (and the first of its run), whatever the history's depth

Revision ID: 0011_lookups
Revises: 0010
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_lookups"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("status_changes") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_status_changes_entry_id_effective_on_id_recorded_at"),
            ["entry_id", "effective_on", "id", "recorded_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("status_changes") as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_changes_entry_id_effective_on_id_recorded_at"))
