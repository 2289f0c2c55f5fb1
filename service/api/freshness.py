"""Freshness: when each list was last checked against its source, and recording a check."""

from flask import current_app
from flask.views import MethodView

from service import clock, db
from service.api import Blueprint, writes
from service.domain import freshness, lookups
from service.schemas import ListCheckCreateSchema, ListCheckSchema, ServiceStatusSchema, WriteHeaders
from service.vocabulary import Role

blp = Blueprint(
    "freshness",
    __name__,
    description="Freshness: when each list's membership was last checked against its source.",
)

LIST_PARAMETER = {
    "in": "path",
    "name": "list_id",
    "required": True,
    "description": "A list id, such as `us-ear-d1`.",
    "schema": {"type": "string", "minLength": 1},
}


@blp.route("/v1/status")
class ServiceStatus(MethodView):
    @blp.response(200, ServiceStatusSchema)
    @blp.doc(operationId="get_status")
    def get(self):
        """Every list with `checked_at`, `changed_at`, its age and whether it is stale (judged by
        the UTC calendar day), and `now`, when this was asked: built at every request."""
        now = clock.utcnow()
        lists = freshness.statuses(db.session(), current_app.config, now)
        return {"now": now, "stale_count": sum(1 for s in lists if s["stale"]), "lists": lists}


@blp.route("/v1/lists/<list_id>/checks", parameters=[LIST_PARAMETER])
class ListChecks(MethodView):
    @blp.authorized(Role.EDITOR, write=True, json=True)
    @blp.arguments(WriteHeaders(), location="headers", as_kwargs=True)
    @blp.arguments(ListCheckCreateSchema())
    @blp.response(201, ListCheckSchema)
    @blp.problems(404)
    @blp.doc(operationId="record_list_check")
    def post(self, body, list_id, idempotency_key=None):
        """Record that the list was checked against its source (editor), and what was found.
        A check records no change: found differences are recorded as changes separately."""

        def operation(session, principal):
            control_list = lookups.get_list(session, list_id)
            check = freshness.record_check(
                session,
                control_list,
                as_of=body["as_of"] or clock.today(),
                source=body["source"],
                found=body["found"],
                note=body["note"],
                actor=principal.name,
                now=clock.utcnow(),
            )
            return writes.Outcome(freshness.check_document(check), 201)

        return writes.perform(operation, idempotency_key)
