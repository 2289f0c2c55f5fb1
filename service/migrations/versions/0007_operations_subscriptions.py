"""operations subscriptions: which subscriptions receive every subscription's webhook.* events

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): deliveries reference webhooks, so SQLite cannot rebuild it.
    op.add_column(
        "webhooks", sa.Column("operations", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): deliveries reference webhooks.
    with op.batch_alter_table("webhooks", recreate="never") as batch_op:
        batch_op.drop_column("operations")
