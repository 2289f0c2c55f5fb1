"""write path: find a change's neighbours in its entry's timeline through an index

Revision ID: 0009_write_path_indexes
Revises: 0008
Create Date: 2026-12-02 03:50:00

Placing a change needs only the change in force before it and the one after it (by
effective_on, then recording order), and evidence before the entry's first dated
change: two indexes make those lookups independent of the timeline's length.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_write_path_indexes"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_status_changes_entry_id_effective_on_id"),
        "status_changes",
        ["entry_id", "effective_on", "id"],
    )
    op.create_index(op.f("ix_observations_entry_id_observed_on"), "observations", ["entry_id", "observed_on"])


def downgrade() -> None:
    op.drop_index(op.f("ix_observations_entry_id_observed_on"), table_name="observations")
    op.drop_index(op.f("ix_status_changes_entry_id_effective_on_id"), table_name="status_changes")
