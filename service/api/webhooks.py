"""Webhook subscriptions: manage them, inspect their delivery log, redeliver and replay (editor keys)."""

from flask import current_app
from flask.views import MethodView

from service import db
from service.api import Blueprint, writes
from service.api.paging import id_cursor, id_page
from service.domain import subscriptions
from service.domain.events import public_id
from service.models import Delivery
from service.schemas import (
    ConditionalHeaders,
    DeliveriesQuery,
    DeliveryPage,
    DeliverySchema,
    PageQuery,
    ReplayResultSchema,
    ReplaySchema,
    SecretSchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookPage,
    WebhookPatchSchema,
    WebhookSchema,
    WriteHeaders,
    encode_cursor,
)
from service.vocabulary import DeliveryState, Role

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Signed pushes of events (Standard Webhooks v1), retried and logged. Needs an editor key.",
)

WEBHOOK_PARAMETER = {
    "in": "path",
    "name": "webhook_id",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}
DELIVERY_PARAMETER = {
    "in": "path",
    "name": "delivery_id",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}
LOCATION = {"Location": {"description": "URL of the created resource.", "schema": {"type": "string"}}}
ETAG = {
    "ETag": {
        "description": "The subscription's current state: send it as `If-Match` with a PATCH.",
        "schema": {"type": "string"},
    }
}


def delivery_document(delivery: Delivery) -> dict:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event_id": public_id(delivery.event_id),
        "event_sequence": delivery.event_id,
        "event_type": delivery.event.type,
        "state": delivery.state,
        "reason": delivery.reason,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.state == DeliveryState.PENDING else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
        "attempt_log": [
            {
                "attempted_at": a.attempted_at,
                "duration_ms": a.duration_ms,
                "http_status": a.http_status,
                "error": a.error,
                "response_body": a.response_body,
            }
            for a in delivery.attempt_log
        ],
    }


def _accepted(delivery: Delivery, session) -> writes.Outcome:
    session.refresh(delivery)
    document = delivery_document(delivery)
    location = f"/v1/webhooks/{delivery.webhook_id}/deliveries/{delivery.id}"
    return writes.Outcome(document, 202, {"Location": location})


@blp.route("")
class Webhooks(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.arguments(PageQuery(), location="query", as_kwargs=True)
    @blp.response(200, WebhookPage)
    @blp.doc(operationId="list_webhooks")
    def get(self, limit, cursor=None):
        """Every subscription (without secrets)."""
        rows = subscriptions.list_webhooks(db.session(), limit=limit, after=id_cursor(cursor))
        more = len(rows) > limit
        return {
            "items": [subscriptions.webhook_document(w) for w in rows[:limit]],
            "next_cursor": encode_cursor(rows[limit - 1].id) if more else None,
        }

    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(WebhookCreateSchema())
    @blp.response(201, WebhookCreatedSchema, headers=LOCATION)
    @blp.problems(409)
    @blp.doc(operationId="create_webhook")
    def post(self, body, idempotency_key=None):
        """Subscribe a URL to events (filters: countries, lists, event_types; empty means all).

        The response carries the signing secret (`whsec_…`) once; it is never shown again,
        except to a retry with the same Idempotency-Key while it is still the secret (after a
        rotation such a retry is a 409).
        """

        def operation(session, principal):
            webhook, secret = subscriptions.create_webhook(
                session, body, actor=writes.actor(principal), config=current_app.config
            )
            document = {**subscriptions.webhook_document(webhook), "secret": secret}
            return writes.Outcome(
                document,
                201,
                {"Location": document["links"]["self"]},
                store=lambda rendered: subscriptions.without_secret(rendered, webhook),
                replay="webhook-secret",
            )

        return writes.perform(operation, idempotency_key)


@blp.route("/<int:webhook_id>", parameters=[WEBHOOK_PARAMETER])
class WebhookDetail(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.response(200, WebhookSchema, headers=ETAG)
    @blp.problems(404)
    @blp.doc(operationId="get_webhook")
    def get(self, webhook_id):
        """One subscription (without its secret), with an ETag to send as If-Match when you change it."""
        document = subscriptions.webhook_document(subscriptions.get_webhook(db.session(), webhook_id))
        return document, 200, {"ETag": f'"{writes.rendered_etag(document)}"'}

    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(ConditionalHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(WebhookPatchSchema())
    @blp.response(200, WebhookSchema, headers=ETAG)
    @blp.problems(404, 412)
    @blp.doc(operationId="update_webhook")
    def patch(self, body, webhook_id, if_match=None):
        """Change the URL, filters or description; `enabled: true` re-enables a disabled subscription.

        Send the ETag of your GET as `If-Match` so that two editors cannot overwrite each
        other: if the subscription changed since, the answer is 412 and nothing changes.
        """

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            writes.require_if_match(lambda: subscriptions.webhook_document(webhook))
            subscriptions.update_webhook(
                session, webhook, body, actor=writes.actor(principal), config=current_app.config
            )
            document = subscriptions.webhook_document(webhook)
            return writes.Outcome(document, 200, {"ETag": f'"{writes.rendered_etag(document)}"'})

        return writes.perform(operation)

    @blp.authorized(Role.EDITOR, write=True)
    @blp.response(204)
    @blp.problems(404)
    @blp.doc(operationId="delete_webhook")
    def delete(self, webhook_id):
        """Unsubscribe; deliveries still queued are cancelled (the log is kept)."""

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            subscriptions.delete_webhook(session, webhook, actor=writes.actor(principal))
            return writes.Outcome(None, 204)

        return writes.perform(operation)


@blp.route("/<int:webhook_id>/ping", parameters=[WEBHOOK_PARAMETER])
class WebhookPing(MethodView):
    @blp.authorized(Role.EDITOR, write=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.response(202, DeliverySchema, headers=LOCATION)
    @blp.problems(404, 409)
    @blp.doc(operationId="ping_webhook")
    def post(self, webhook_id, idempotency_key=None):
        """Send a `webhook.ping` event to this subscription only."""

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            return _accepted(subscriptions.ping(session, webhook, actor=writes.actor(principal)), session)

        return writes.perform(operation, idempotency_key)


@blp.route("/<int:webhook_id>/rotate-secret", parameters=[WEBHOOK_PARAMETER])
class WebhookSecret(MethodView):
    @blp.authorized(Role.EDITOR, write=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.response(200, SecretSchema)
    @blp.problems(404, 409)
    @blp.doc(operationId="rotate_webhook_secret")
    def post(self, webhook_id, idempotency_key=None):
        """A new signing secret, shown once. For 24 hours deliveries carry signatures from both secrets.

        Send an Idempotency-Key to retry safely: a retry returns the same new secret (a 409 if
        it was rotated again since), where a second rotation would replace it.
        """

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            secret = subscriptions.rotate_secret(
                session,
                webhook,
                overlap=current_app.config["WEBHOOK_SECRET_OVERLAP"],
                actor=writes.actor(principal),
            )
            return writes.Outcome(
                {"secret": secret, "previous_secret_expires_at": webhook.previous_secret_expires_at},
                200,
                store=lambda rendered: subscriptions.without_secret(rendered, webhook),
                replay="webhook-secret",
            )

        return writes.perform(operation, idempotency_key)


@blp.route("/<int:webhook_id>/deliveries", parameters=[WEBHOOK_PARAMETER])
class WebhookDeliveries(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.arguments(DeliveriesQuery(), location="query", as_kwargs=True)
    @blp.response(200, DeliveryPage)
    @blp.problems(404)
    @blp.doc(operationId="list_webhook_deliveries")
    def get(self, webhook_id, limit, cursor=None, state=None):
        """The delivery log, newest first: state, and every attempt with time, status, duration and error."""
        before = id_cursor(cursor)
        session = db.session()
        webhook = subscriptions.get_webhook(session, webhook_id)
        found = id_page(
            subscriptions.deliveries(session, webhook, limit=limit, before=before, state=state), limit
        )
        return {**found, "items": [delivery_document(d) for d in found["items"]]}


@blp.route(
    "/<int:webhook_id>/deliveries/<int:delivery_id>", parameters=[WEBHOOK_PARAMETER, DELIVERY_PARAMETER]
)
class WebhookDelivery(MethodView):
    @blp.authorized(Role.EDITOR)
    @blp.response(200, DeliverySchema)
    @blp.problems(404)
    @blp.doc(operationId="get_webhook_delivery")
    def get(self, webhook_id, delivery_id):
        """One delivery and its attempts."""
        session = db.session()
        webhook = subscriptions.get_webhook(session, webhook_id)
        return delivery_document(subscriptions.get_delivery(session, webhook, delivery_id))


@blp.route(
    "/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver",
    parameters=[WEBHOOK_PARAMETER, DELIVERY_PARAMETER],
)
class WebhookRedeliver(MethodView):
    @blp.authorized(Role.EDITOR, write=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.response(202, DeliverySchema, headers=LOCATION)
    @blp.problems(404, 409)
    @blp.doc(operationId="redeliver_webhook_delivery")
    def post(self, webhook_id, delivery_id, idempotency_key=None):
        """Send a delivery's event again as a new delivery (same webhook-id: receivers can deduplicate)."""

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            delivery = subscriptions.redeliver(session, webhook, delivery_id, actor=writes.actor(principal))
            return _accepted(delivery, session)

        return writes.perform(operation, idempotency_key)


@blp.route("/<int:webhook_id>/replay", parameters=[WEBHOOK_PARAMETER])
class WebhookReplay(MethodView):
    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ReplaySchema())
    @blp.response(202, ReplayResultSchema)
    @blp.problems(404, 409)
    @blp.doc(operationId="replay_webhook_events")
    def post(self, body, webhook_id, idempotency_key=None):
        """Queue again every event in `[since, until)` that the subscription's filters match."""

        def operation(session, principal):
            webhook = subscriptions.get_webhook(session, webhook_id)
            queued = subscriptions.replay(
                session, webhook, body["since"], body["until"], actor=writes.actor(principal)
            )
            return writes.Outcome({"queued": queued}, 202)

        return writes.perform(operation, idempotency_key)
