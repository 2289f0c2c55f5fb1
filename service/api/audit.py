"""The audit log (admin keys): who changed lists and webhook subscriptions, and in which request."""

from flask.views import MethodView

from service import db
from service.api import Blueprint
from service.api.paging import id_cursor, id_page
from service.domain import audit
from service.schemas import AuditPage, AuditQuery
from service.vocabulary import Role

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/v1/audit",
    description="Who changed lists and webhook subscriptions (status changes carry their own actor).",
)


@blp.route("")
class AuditLog(MethodView):
    @blp.authorized(Role.ADMIN)
    @blp.arguments(AuditQuery(), location="query", as_kwargs=True)
    @blp.response(200, AuditPage)
    @blp.doc(operationId="list_audit_entries")
    def get(self, limit, cursor=None, subject=None):
        """Audit entries, newest first."""
        return id_page(
            audit.entries(db.session(), limit=limit, before=id_cursor(cursor), subject=subject), limit
        )
