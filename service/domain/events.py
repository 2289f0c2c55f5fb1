"""Events: every change to the data becomes a numbered event, in the writer's transaction."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import clock
from service.models import Counter, Event

EVENTS_COUNTER = "events"
# Bumped by every public event (a change to what the API serves): the version that
# cached documents are keyed by. Operational events do not move it.
DATA_COUNTER = "data"
DATA_VERSION_QUERY = "SELECT value FROM counters WHERE name = 'data'"  # the raw read lookups make


class EventType(StrEnum):
    ENTRY_STATUS_CHANGED = "entry.status_changed"
    ENTRY_TOOK_EFFECT = "entry.took_effect"
    ENTRY_PENDING_OVERDUE = "entry.pending_overdue"
    LIST_CREATED = "list.created"
    LIST_UPDATED = "list.updated"
    WEBHOOK_PING = "webhook.ping"
    WEBHOOK_FAILING = "webhook.failing"
    WEBHOOK_RECOVERED = "webhook.recovered"
    WEBHOOK_DISABLED = "webhook.disabled"
    PROPOSAL_CREATED = "proposal.created"
    LIST_STALE = "list.stale"

    @property
    def public(self) -> bool:
        """Data changes are public (the feed); webhook.*, proposal.* and list.stale events are not."""
        return not self.value.startswith(("webhook.", "proposal.")) and self is not EventType.LIST_STALE

    @property
    def opt_in(self) -> bool:
        """Sent only to subscriptions that name the type (editors' tooling: proposals, lists turning
        stale), never to catch-alls."""
        return self.value.startswith("proposal.") or self is EventType.LIST_STALE


PUBLIC_EVENT_TYPES = [t.value for t in EventType if t.public]
OPT_IN_EVENT_TYPES = frozenset(t.value for t in EventType if t.opt_in)


def next_sequence(session: Session) -> int:
    """Take the next event number. The row lock it takes is held until commit,
    so concurrent writers commit their events in number order."""
    session.execute(update(Counter).where(Counter.name == EVENTS_COUNTER).values(value=Counter.value + 1))
    return session.execute(select(Counter.value).where(Counter.name == EVENTS_COUNTER)).scalar_one()


def current_sequence(connection) -> int:
    """The last event number."""
    return connection.execute(select(Counter.value).where(Counter.name == EVENTS_COUNTER)).scalar_one()


def touch_data(session: Session) -> None:
    """Move the data version: what the API serves changed (without an event of its own)."""
    session.execute(update(Counter).where(Counter.name == DATA_COUNTER).values(value=Counter.value + 1))


def emit(
    session: Session,
    type: EventType,
    data: dict[str, Any],
    *,
    country_code: str | None = None,
    list_id: str | None = None,
    change_id: int | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    event = Event(
        id=next_sequence(session),
        type=type.value,
        occurred_at=occurred_at or clock.utcnow(),
        country_code=country_code,
        list_id=list_id,
        change_id=change_id,
        data=data,
        public=type.public,
    )
    if type.public:
        touch_data(session)
    session.add(event)
    session.flush()
    return event


def public_id(sequence: int) -> str:
    return f"evt_{sequence}"


def event_document(event: Event) -> dict[str, Any]:
    """The event as the feed serves it and webhooks carry it (Standard Webhooks shape)."""
    occurred_at = event.occurred_at.isoformat().replace("+00:00", "Z")
    return {
        "id": public_id(event.id),
        "sequence": event.id,
        "type": event.type,
        "timestamp": occurred_at,
        "occurred_at": occurred_at,
        "data": event.data,
    }
