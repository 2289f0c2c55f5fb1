"""Subscriptions: create, change, delete, ping, rotate the secret, redeliver, replay."""

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from service import clock
from service.domain import audit
from service.domain.audit import Actor
from service.domain.countries import registry
from service.domain.errors import Conflict, InvalidInput, NotFound
from service.domain.events import emit
from service.domain.outbox import enqueue, matches
from service.models import ControlList, Delivery, Event, Webhook
from service.vocabulary import DeliveryState, EventType, Role
from service.webhooks.signing import new_secret
from service.webhooks.targets import check_target

MAX_REPLAY = 10_000


def webhook_document(webhook: Webhook) -> dict[str, Any]:
    """A subscription as the API shows it: never its secrets."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "description": webhook.description,
        "countries": webhook.countries,
        "lists": webhook.lists,
        "event_types": webhook.event_types,
        "operations": webhook.operations,
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "disabled_at": webhook.disabled_at,
        "failing_since": webhook.failing_since,
        "previous_secret_expires_at": webhook.previous_secret_expires_at,
        "created_by": webhook.created_by,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
        "links": {
            "self": f"/v1/webhooks/{webhook.id}",
            "deliveries": f"/v1/webhooks/{webhook.id}/deliveries",
        },
    }


def _check_url(url: str, config: Mapping[str, Any]) -> None:
    check_target(
        url,
        allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE_TARGETS"]),
        require_https=bool(config["WEBHOOK_REQUIRE_HTTPS"]),
    )


def _filters(session: Session, fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """Resolve country references and check list ids; sorted and de-duplicated."""
    errors: dict[str, list[str]] = {}
    resolved: dict[str, list[str]] = {}
    if "countries" in fields:
        codes = set()
        for index, reference in enumerate(fields["countries"]):
            country = registry().resolve(reference)
            if country is None:
                errors[f"countries.{index}"] = [f"No country matches {reference!r}."]
            else:
                codes.add(country.alpha_2)
        resolved["countries"] = sorted(codes)
    if "lists" in fields:
        wanted = set(fields["lists"])
        known = set(session.scalars(select(ControlList.id).where(ControlList.id.in_(wanted))))
        for index, list_id in enumerate(fields["lists"]):
            if list_id not in known:
                errors[f"lists.{index}"] = [f"No list has the id {list_id!r}."]
        resolved["lists"] = sorted(wanted)
    if "event_types" in fields:
        resolved["event_types"] = sorted(set(fields["event_types"]))
    if errors:
        raise InvalidInput("Invalid " + ", ".join(f"'{name}'" for name in errors) + ".", errors)
    return resolved


def _operations(event_types: list[str], actor: Actor) -> bool:
    """Whether a subscription naming `event_types` receives every subscription's webhook.* events:
    when an admin key names them (operations tooling). Anyone else who names them gets only
    those about their own subscription."""
    operational = (EventType(name) for name in event_types)
    return actor.role is Role.ADMIN and any(not t.public and not t.opt_in for t in operational)


def create_webhook(
    session: Session, fields: Mapping[str, Any], *, actor: Actor, config: Mapping[str, Any]
) -> tuple[Webhook, str]:
    _check_url(fields["url"], config)
    filters = _filters(session, {"countries": [], "lists": [], "event_types": [], **fields})
    now = clock.utcnow()
    secret = new_secret()
    webhook = Webhook(
        url=fields["url"],
        description=fields.get("description"),
        **filters,
        operations=_operations(filters["event_types"], actor),
        enabled=True,
        secret=secret,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    session.flush()
    audit.record(session, actor, "webhook.created", _subject(webhook), url=webhook.url, **filters)
    return webhook, secret


def _subject(webhook: Webhook) -> str:
    return f"webhook:{webhook.id}"


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    webhook = session.get(Webhook, webhook_id) if webhook_id < 2**31 else None
    if webhook is None or webhook.deleted_at is not None:
        raise NotFound(f"No webhook {webhook_id}.")
    return webhook


def list_webhooks(session: Session, *, limit: int, after: int | None = None) -> list[Webhook]:
    """Subscriptions by id after `after` (keyset): up to limit + 1 rows (the extra says there is more)."""
    query = select(Webhook).where(Webhook.deleted_at.is_(None)).order_by(Webhook.id).limit(limit + 1)
    if after is not None:
        query = query.where(Webhook.id > after)
    return list(session.scalars(query))


def update_webhook(
    session: Session, webhook: Webhook, changes: Mapping[str, Any], *, actor: Actor, config: Mapping[str, Any]
) -> Webhook:
    if "url" in changes:
        _check_url(changes["url"], config)
        webhook.url = changes["url"]
    if "description" in changes:
        webhook.description = changes["description"]
    filters = _filters(session, changes)
    if "event_types" in filters:
        webhook.operations = _operations(filters["event_types"], actor)
    for name, value in filters.items():
        setattr(webhook, name, value)
    if "enabled" in changes:
        if changes["enabled"] and not webhook.enabled:
            webhook.enabled = True
            webhook.disabled_reason = None
            webhook.disabled_at = None
            webhook.failing_since = None
        elif not changes["enabled"] and webhook.enabled:
            webhook.enabled = False
            webhook.disabled_reason = "disabled through the API"
            webhook.disabled_at = clock.utcnow()
    webhook.updated_at = clock.utcnow()
    session.flush()
    audit.record(session, actor, "webhook.updated", _subject(webhook), **changes)
    return webhook


def delete_webhook(session: Session, webhook: Webhook, *, actor: Actor) -> None:
    """Soft-delete (the delivery log stays) and cancel what is still queued.

    Deliveries are locked before the subscription, the order the worker takes
    them in, so the two never deadlock on PostgreSQL.
    """
    now = clock.utcnow()
    session.execute(
        update(Delivery)
        .where(
            Delivery.webhook_id == webhook.id,
            Delivery.state.in_([DeliveryState.PENDING, DeliveryState.DELIVERING]),
        )
        .values(state=DeliveryState.CANCELLED, completed_at=now, leased_by=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    webhook.deleted_at = now
    webhook.enabled = False
    session.flush()
    audit.record(session, actor, "webhook.deleted", _subject(webhook))


def _require_enabled(webhook: Webhook) -> None:
    if not webhook.enabled:
        raise Conflict(f"Webhook {webhook.id} is disabled ({webhook.disabled_reason}); enable it first.")


def ping(session: Session, webhook: Webhook, *, actor: Actor) -> Delivery:
    """A `webhook.ping` event, sent to this subscription only."""
    _require_enabled(webhook)
    event = emit(
        session, EventType.WEBHOOK_PING, {"webhook_id": webhook.id, "message": "ping from exportctl"}
    )
    delivery = enqueue(session, webhook.id, event, reason="ping")
    session.flush()
    audit.record(session, actor, "webhook.pinged", _subject(webhook), delivery_id=delivery.id)
    return delivery


def rotate_secret(session: Session, webhook: Webhook, *, overlap: timedelta, actor: Actor) -> str:
    """A new secret; for `overlap` (24 h by default) deliveries are signed with the old one too.

    Retry a rotation with an Idempotency-Key: a second rotation makes the one
    before it the 'previous' secret, and the one before that stops working.
    """
    now = clock.utcnow()
    secret = new_secret()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + overlap
    webhook.secret = secret
    webhook.updated_at = now
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.secret_rotated",
        _subject(webhook),
        previous_valid_until=webhook.previous_secret_expires_at,
    )
    return secret


def without_secret(document: dict[str, Any], webhook: Webhook) -> dict[str, Any]:
    """What an Idempotency-Key may keep of a response that shows a secret: everything but the
    secret, and its SHA-256 to tell on replay whether it is still the subscription's secret."""
    kept = {key: value for key, value in document.items() if key != "secret"}
    digest = hashlib.sha256(webhook.secret.encode()).hexdigest()
    return {**kept, "_replay": {"webhook_id": webhook.id, "secret_sha256": digest}}


def restore_secret(session: Session, stored: dict[str, Any]) -> dict[str, Any]:
    """A replayed response gets its secret back while it is still the subscription's secret;
    after a rotation or deletion the client gets a 409 saying what to do instead."""
    replay = stored.pop("_replay")
    webhook = session.get(Webhook, replay["webhook_id"])
    if webhook is None or webhook.deleted_at is not None:
        raise Conflict(f"Webhook {replay['webhook_id']}, which this request changed, has since been deleted.")
    if hashlib.sha256(webhook.secret.encode()).hexdigest() != replay["secret_sha256"]:
        raise Conflict(
            f"The secret this request returned for webhook {webhook.id} has been rotated since: "
            f"POST /v1/webhooks/{webhook.id}/rotate-secret for a new one."
        )
    return {**stored, "secret": webhook.secret}


def get_delivery(session: Session, webhook: Webhook, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id) if delivery_id < 2**31 else None
    if delivery is None or delivery.webhook_id != webhook.id:
        raise NotFound(f"No delivery {delivery_id} for webhook {webhook.id}.")
    return delivery


def deliveries(
    session: Session, webhook: Webhook, *, limit: int, before: int | None = None, state: str | None = None
) -> list[Delivery]:
    """The subscription's delivery log, newest first: up to limit + 1 rows (the extra says there is more)."""
    query = (
        select(Delivery)
        .where(Delivery.webhook_id == webhook.id)
        .options(selectinload(Delivery.attempt_log), selectinload(Delivery.event))
        .order_by(Delivery.id.desc())
        .limit(limit + 1)
    )
    if state:
        query = query.where(Delivery.state == state)
    if before is not None:
        query = query.where(Delivery.id < before)
    return list(session.scalars(query))


def redeliver(session: Session, webhook: Webhook, delivery_id: int, *, actor: Actor) -> Delivery:
    """Send a delivery's event again, as a new delivery (the log keeps the old one)."""
    _require_enabled(webhook)
    original = get_delivery(session, webhook, delivery_id)
    delivery = enqueue(session, webhook.id, original.event, reason="redelivery")
    session.flush()
    audit.record(
        session, actor, "webhook.redelivered", _subject(webhook), of=original.id, delivery_id=delivery.id
    )
    return delivery


def replay(session: Session, webhook: Webhook, since: datetime, until: datetime, *, actor: Actor) -> int:
    """Queue again every event in [since, until) that the subscription's filters match."""
    _require_enabled(webhook)
    if until <= since:
        raise InvalidInput("Invalid 'until'.", {"until": ["Must be after 'since'."]})
    window = (
        Event.occurred_at >= since,
        Event.occurred_at < until,
        Event.type != EventType.WEBHOOK_PING.value,
    )
    total = session.execute(select(func.count()).select_from(Event).where(*window)).scalar_one()
    if total > MAX_REPLAY:
        raise InvalidInput(
            "Invalid 'since'.",
            {"since": [f"The window holds {total} events; replay at most {MAX_REPLAY} at a time."]},
        )
    queued = 0
    for event in session.scalars(select(Event).where(*window).order_by(Event.id)):
        if matches(webhook, event):
            enqueue(session, webhook.id, event, reason="replay")
            queued += 1
    session.flush()
    audit.record(
        session, actor, "webhook.replayed", _subject(webhook), since=since, until=until, queued=queued
    )
    return queued
