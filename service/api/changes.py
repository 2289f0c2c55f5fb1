"""What changed between two dates, across lists: the re-screening question."""

from flask.views import MethodView

from service import clock, db
from service.api import Blueprint
from service.api.countries import resolve_country
from service.domain.between import changes_between
from service.schemas import ChangesBetweenQuery, ChangesBetweenSchema

blp = Blueprint(
    "changes",
    __name__,
    url_prefix="/v1/changes",
    description="What changed between two dates: entries to re-screen.",
)


@blp.route("")
class ChangesBetween(MethodView):
    @blp.arguments(ChangesBetweenQuery(), location="query", as_kwargs=True)
    @blp.cached_response(ChangesBetweenSchema)
    @blp.problems(404)
    @blp.doc(operationId="list_changes_between")
    def get(self, from_, to=None, country=None, list=None, jurisdiction=None, known_at=None):  # noqa: A002
        """Every entry whose status on `to` differs from its status on `from`, with both states and
        the changes between; entries `unknown` on either date are reported apart."""
        return changes_between(
            db.session(),
            from_,
            to or clock.today(),
            known_at=known_at,
            country=resolve_country(country) if country is not None else None,
            list_id=list,
            jurisdiction=jurisdiction,
        )
