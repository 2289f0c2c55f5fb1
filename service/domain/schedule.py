"""Events a change owes on a later date: when it takes effect, and when a pending status's
expected effective date passes with nothing recorded.

Recording a change writes its notices (`ScheduledNotice`, one per change and kind) in the
same transaction; a change already in effect when recorded owes none (its
`entry.status_changed` says it). From 00:00 UTC of a notice's `due_on`, the scheduler
(the webhook worker's loop, or `exportctl schedule run`) claims it with a conditional UPDATE
whose row count says who won, and emits its event in that same transaction: exactly once,
however many workers run, on SQLite and PostgreSQL. Due notices are taken oldest first, so a
worker that was off for a week catches up in order. Whether the change still takes effect is
decided then, from everything recorded by then: a change that a backdated correction
overrode (or that no longer moves the status) is marked `superseded` and emits nothing.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from service import clock
from service.domain import lookups
from service.domain.events import emit
from service.domain.jsonable import jsonable
from service.domain.outbox import fan_out
from service.domain.statuses import PENDING, Status, restrictions_apply
from service.domain.timeline import ordered, standing, visible
from service.models import Entry, Event, ScheduledNotice, StatusChange
from service.vocabulary import EventType

log = logging.getLogger(__name__)


def notices_owed(change: StatusChange, recorded_at: datetime) -> list[tuple[EventType, date]]:
    """The notices a change recorded at `recorded_at` owes, with the day each falls due.

    A date that has come by the time the change is written owes nothing: its
    `entry.status_changed` already says it (seeds write history with past `recorded_at`).
    """
    recorded_on = max(recorded_at.date(), clock.today())
    owed = []
    pending = Status(change.status) in PENDING
    if not pending and change.effective_on is not None and change.effective_on > recorded_on:
        owed.append((EventType.ENTRY_TOOK_EFFECT, change.effective_on))
    if pending and change.expected_effective_on is not None:
        # Overdue once the expected day has passed: from the next day's 00:00 UTC.
        due = change.expected_effective_on + timedelta(days=1)
        if due > recorded_on:
            owed.append((EventType.ENTRY_PENDING_OVERDUE, due))
    return owed


def schedule_notices(session: Session, change: StatusChange, recorded_at: datetime) -> list[ScheduledNotice]:
    """Write the notices `change` owes, in the caller's transaction."""
    notices = [
        ScheduledNotice(
            change_id=change.id, kind=kind.value, due_on=due_on, state="scheduled", created_at=recorded_at
        )
        for kind, due_on in notices_owed(change, recorded_at)
    ]
    session.add_all(notices)
    return notices


def due_notices(session: Session, today: date, limit: int) -> list[int]:
    """Ids of notices due on or before `today`, oldest first."""
    return list(
        session.scalars(
            select(ScheduledNotice.id)
            .where(ScheduledNotice.state == "scheduled", ScheduledNotice.due_on <= today)
            .order_by(ScheduledNotice.due_on, ScheduledNotice.id)
            .limit(limit)
        )
    )


def _claim(session: Session, notice_id: int, now: datetime) -> bool:
    """Take the notice (one statement; the row count says whether this caller won it)."""
    # Session.execute is typed to return a Result; an UPDATE's is a CursorResult (sqlalchemy#9185).
    won = cast(
        CursorResult[Any],
        session.execute(
            update(ScheduledNotice)
            .where(ScheduledNotice.id == notice_id, ScheduledNotice.state == "scheduled")
            .values(state="superseded", processed_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    return won.rowcount == 1


def _state(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": answer["status"],
        "restrictions_apply": answer["restrictions_apply"],
        "basis": answer["basis"],
    }


def _took_effect(change: StatusChange, entry: Entry) -> dict[str, Any] | None:
    control_list = entry.control_list
    effective_on = change.effective_on
    assert effective_on is not None, "only a change with an effective date owes entry.took_effect"
    observations = visible(entry.observations)
    current = standing(ordered(entry.changes), effective_on, observations)
    if current is None or current.change is None or current.change.id != change.id:
        return None  # overridden: a correction recorded since puts another change in force that day
    before = lookups.answer(
        control_list,
        entry.country_code,
        entry.changes,
        effective_on - timedelta(days=1),
        None,
        entry.observations,
    )
    after = lookups.answer(
        control_list, entry.country_code, entry.changes, effective_on, None, entry.observations
    )
    if before["status"] == after["status"]:
        return None  # a correction since made the day before say the same: nothing takes effect
    return {
        "took_effect_on": effective_on,
        "list": lookups.list_ref(control_list),
        "country": lookups.country_summary(lookups._country(entry.country_code)),
        "before": _state(before),
        "after": _state(after),
        "change": lookups.change_document(change, control_list, entry.country_code),
        "sources": lookups.sources_with_kind(change.sources),
        "links": {"entry": lookups.entry_path(control_list.id, entry.country_code)},
    }


def _pending_overdue(change: StatusChange, entry: Entry, due_on: date) -> dict[str, Any] | None:
    control_list = entry.control_list
    current = standing(ordered(entry.changes), due_on, visible(entry.observations))
    if current is None or current.change is None or current.change.id != change.id:
        return None  # a change recorded since (taking effect, or restating the pending status) answers it
    return {
        "expected_effective_on": change.expected_effective_on,
        "overdue_since": due_on,
        "announced_on": current.announced_on,
        "list": lookups.list_ref(control_list),
        "country": lookups.country_summary(lookups._country(entry.country_code)),
        "status": change.status,
        "restrictions_apply": restrictions_apply(change.status, control_list.effect),
        "change": lookups.change_document(change, control_list, entry.country_code),
        "sources": lookups.sources_with_kind(change.sources),
        "links": {"entry": lookups.entry_path(control_list.id, entry.country_code)},
    }


def process_notice(session: Session, notice_id: int, now: datetime) -> Event | None:
    """Claim one notice and emit its event (queued for webhooks) if its change still calls for
    one. Returns the event, or None if another worker took the notice or it was superseded.
    The caller commits."""
    if not _claim(session, notice_id, now):
        return None
    notice = session.get(ScheduledNotice, notice_id, populate_existing=True)
    assert notice is not None, "the notice was just claimed"
    change = session.get(StatusChange, notice.change_id)
    assert change is not None, "a notice's change_id is a foreign key"
    entry = session.scalars(
        select(Entry)
        .where(Entry.id == change.entry_id)
        .options(
            selectinload(Entry.changes),
            selectinload(Entry.observations),
            selectinload(Entry.control_list),
        )
        .execution_options(populate_existing=True)
    ).one()
    kind = EventType(notice.kind)
    if kind is EventType.ENTRY_TOOK_EFFECT:
        data = _took_effect(change, entry)
    else:
        data = _pending_overdue(change, entry, notice.due_on)
    if data is None:
        return None
    event = emit(
        session,
        kind,
        jsonable(data),
        country_code=entry.country_code,
        list_id=entry.list_id,
        change_id=change.id,
        occurred_at=now,
    )
    fan_out(session, event)
    notice.state = "emitted"
    notice.event_id = event.id
    session.flush()
    return event


@dataclass(frozen=True)
class ScheduleRun:
    emitted: int  # events emitted
    skipped: int  # notices superseded, or taken by another worker
    failed: int  # left scheduled, retried on the next run


def run_due(
    sessionmaker: sessionmaker[Session],
    now: datetime,
    *,
    begin_write: Callable[[Session], None],
    batch: int = 100,
) -> ScheduleRun:
    """Process every notice due at `now`, oldest first, each in a transaction of its own:
    one notice's failure is its own (it stays scheduled and is retried on the next run)."""
    emitted = skipped = failed = 0
    seen: set[int] = set()
    while True:
        with sessionmaker() as session:
            ids = [i for i in due_notices(session, now.date(), batch + len(seen)) if i not in seen]
        if not ids:
            return ScheduleRun(emitted, skipped, failed)
        for notice_id in ids:
            seen.add(notice_id)
            try:
                with sessionmaker() as session:
                    begin_write(session)
                    event = process_notice(session, notice_id, now)
                    session.commit()
            except Exception:  # noqa: BLE001 - this notice only; the others go on
                log.exception("scheduled notice %s failed; it is retried on the next run", notice_id)
                failed += 1
                continue
            if event is not None:
                emitted += 1
            else:
                skipped += 1
