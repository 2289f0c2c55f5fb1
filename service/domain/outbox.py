"""The outbox: one delivery row per matching subscription, in the transaction that emits the event.

Nothing is sent here. The worker picks the rows up after the commit, so an
event is delivered exactly when its change is committed, never before.
"""

from typing import Any, Protocol

from sqlalchemy import event, insert, select, text
from sqlalchemy.orm import Session, SessionTransaction

from service import clock
from service.domain.events import OPT_IN_EVENT_TYPES
from service.models import Delivery, Event, Webhook
from service.vocabulary import DeliveryState


class Subscriber(Protocol):
    """What `matches` reads of a subscription: a Webhook, or a row of just these columns."""

    @property
    def id(self) -> int: ...
    @property
    def event_types(self) -> list[Any]: ...
    @property
    def countries(self) -> list[Any]: ...
    @property
    def lists(self) -> list[Any]: ...
    @property
    def operations(self) -> bool: ...


def matches(webhook: Subscriber, event: Event) -> bool:
    """Whether `webhook` receives `event`.

    Data events: a subscription's filters; empty event_types means every data event.
    Events outside the public feed go only to subscriptions that name their type:
    proposal.* (editors' tooling) with the country and list filters; webhook.* tell of one
    subscriber's URL and failures, so only to the subscription they concern, or to
    operations subscriptions (`operations`, which only an admin key can make).
    """
    if not event.public:
        if event.type not in webhook.event_types:
            return False
        if event.type not in OPT_IN_EVENT_TYPES:  # webhook.*: about one subscription
            concerned = isinstance(event.data, dict) and event.data.get("webhook_id") == webhook.id
            return concerned or webhook.operations
    return (
        (not webhook.event_types or event.type in webhook.event_types)
        and (not webhook.countries or event.country_code in webhook.countries)
        and (not webhook.lists or event.list_id in webhook.lists)
    )


# Workers LISTEN here on PostgreSQL, so a committed delivery is sent at once, not at the next poll.
WAKE_CHANNEL = "exportctl_deliveries"
_WOKEN = "exportctl.workers_woken"


def wake_workers(session: Session) -> None:
    """NOTIFY listening workers that deliveries are queued (PostgreSQL; SQLite workers poll).

    NOTIFY is transactional: it reaches them when this transaction commits, and never if it
    rolls back, so a worker cannot look before the rows are there. Once per transaction.
    """
    if session.info.get(_WOKEN) or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
    session.info[_WOKEN] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_wake(session: Session, _transaction: SessionTransaction) -> None:
    # Any end, savepoints too: a NOTIFY in a rolled-back savepoint is discarded with it.
    session.info.pop(_WOKEN, None)


def enqueue(session: Session, webhook_id: int, event: Event, reason: str = "event") -> Delivery:
    wake_workers(session)
    now = clock.utcnow()
    delivery = Delivery(
        webhook_id=webhook_id,
        event_id=event.id,
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        reason=reason,
        created_at=now,
    )
    session.add(delivery)
    return delivery


# Every write runs this: built once (its cache key is memoised), run on the session's connection
# (columns only, so the ORM's execute path would add cost and nothing else).
_SUBSCRIBERS = select(
    Webhook.id, Webhook.event_types, Webhook.countries, Webhook.lists, Webhook.operations
).where(Webhook.deleted_at.is_(None), Webhook.enabled.is_(True))


def fan_out(session: Session, event: Event) -> int:
    """Queue `event` for every enabled subscription that receives it (see `matches`); how many.

    The subscriptions' filter columns only (no ORM objects) and one bulk INSERT: a change
    fanned out to thousands of subscriptions costs its write milliseconds, not seconds.
    """
    subscribers = session.connection().execute(_SUBSCRIBERS).all()
    now = clock.utcnow()
    rows = [
        {
            "webhook_id": subscriber.id,
            "event_id": event.id,
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "reason": "event",
            "created_at": now,
        }
        for subscriber in subscribers
        if matches(subscriber, event)
    ]
    if rows:
        wake_workers(session)
        session.execute(insert(Delivery), rows)
    return len(rows)
