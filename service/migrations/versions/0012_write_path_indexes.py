"""write path: an entry's observations by date, so that placing a change reads only the
evidence before the entry's first dated change (its changes are found through 0011's index)

Revision ID: 0012_write_path
Revises: 0011_lookups
Create Date: 2026-12-02 03:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_write_path"
down_revision: str | None = "0011_lookups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch_op:
        batch_op.create_index(batch_op.f("ix_observations_entry_id_observed_on"), ["entry_id", "observed_on"])


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_observations_entry_id_observed_on"))
