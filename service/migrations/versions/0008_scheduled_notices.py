"""scheduled notices (events a change owes on a later date); what a list check found

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = ("pending_removal", "pending_addition")


def upgrade() -> None:
    notices = op.create_table(
        "scheduled_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('entry.took_effect', 'entry.pending_overdue')", name=op.f("ck_scheduled_notices_kind")
        ),
        sa.CheckConstraint(
            "state IN ('scheduled', 'emitted', 'superseded')", name=op.f("ck_scheduled_notices_state")
        ),
        sa.ForeignKeyConstraint(
            ["change_id"], ["status_changes.id"], name=op.f("fk_scheduled_notices_change_id_status_changes")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_scheduled_notices_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_notices")),
        sa.UniqueConstraint("change_id", "kind", name=op.f("uq_scheduled_notices_change_id_kind")),
    )
    with op.batch_alter_table("scheduled_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scheduled_notices_state_due_on_id"), ["state", "due_on", "id"], unique=False
        )

    # list_checks is referenced by nothing: SQLite can rebuild it for the CHECK constraint.
    with op.batch_alter_table("list_checks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("found", sa.String(length=16), server_default="unchanged", nullable=False)
        )
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.create_check_constraint(
            batch_op.f("ck_list_checks_found"), "found IN ('unchanged', 'differences')"
        )

    # Changes recorded before this revision whose date is still to come get their notice
    # (a date already passed was told by the change's own entry.status_changed).
    changes = sa.table(
        "status_changes",
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("effective_on", sa.Date()),
        sa.column("expected_effective_on", sa.Date()),
        sa.column("recorded_at", service.db.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    now = datetime.now(UTC)
    rows = []
    for change in bind.execute(sa.select(changes)):
        recorded_on = max(change.recorded_at.date(), now.date())
        if change.status not in PENDING and change.effective_on and change.effective_on > recorded_on:
            rows.append((change.id, "entry.took_effect", change.effective_on))
        expected = change.expected_effective_on
        if change.status in PENDING and expected and expected + timedelta(days=1) > recorded_on:
            rows.append((change.id, "entry.pending_overdue", expected + timedelta(days=1)))
    if rows:
        op.bulk_insert(
            notices,
            [
                {"change_id": i, "kind": k, "due_on": d, "state": "scheduled", "created_at": now}
                for i, k, d in rows
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("list_checks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_list_checks_found"), type_="check")
        batch_op.drop_column("note")
        batch_op.drop_column("found")
    with op.batch_alter_table("scheduled_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduled_notices_state_due_on_id"))
    op.drop_table("scheduled_notices")
