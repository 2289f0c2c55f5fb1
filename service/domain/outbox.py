"""The outbox: one delivery row per matching subscription, in the transaction that emits the event.

Nothing is sent here. The worker picks the rows up after the commit, so an
event is delivered exactly when its change is committed, never before.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import clock
from service.domain.events import OPT_IN_EVENT_TYPES
from service.models import Delivery, Event, Webhook


def matches(webhook: Webhook, event: Event) -> bool:
    """A subscription's filters; an empty filter matches everything but opt-in types (proposal.*)."""
    if event.type in OPT_IN_EVENT_TYPES and event.type not in webhook.event_types:
        return False
    return (
        (not webhook.event_types or event.type in webhook.event_types)
        and (not webhook.countries or event.country_code in webhook.countries)
        and (not webhook.lists or event.list_id in webhook.lists)
    )


def active_webhooks(session: Session) -> list[Webhook]:
    return list(
        session.scalars(select(Webhook).where(Webhook.deleted_at.is_(None), Webhook.enabled.is_(True)))
    )


def enqueue(session: Session, webhook_id: int, event: Event, reason: str = "event") -> Delivery:
    now = clock.utcnow()
    delivery = Delivery(
        webhook_id=webhook_id,
        event_id=event.id,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        reason=reason,
        created_at=now,
    )
    session.add(delivery)
    return delivery


def fan_out(session: Session, event: Event, *, exclude_webhook_id: int | None = None) -> list[Delivery]:
    """Queue `event` for every enabled subscription whose filters match it."""
    deliveries = [
        enqueue(session, webhook.id, event)
        for webhook in active_webhooks(session)
        if webhook.id != exclude_webhook_id and matches(webhook, event)
    ]
    session.flush()
    return deliveries
