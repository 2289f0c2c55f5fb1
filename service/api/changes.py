"""What changed between two dates, across lists: the re-screening question."""

from typing import Any

from flask.views import MethodView

from service import clock, db
from service.api import Blueprint
from service.api.countries import query_country, resolve_lists
from service.domain.between import CHANGES_SHOWN, MoveKey, changes_between
from service.domain.errors import InvalidInput
from service.schemas import ChangesBetweenQuery, ChangesBetweenSchema, encode_cursor

blp = Blueprint(
    "changes",
    __name__,
    url_prefix="/v1/changes",
    description="What changed between two dates: entries to re-screen.",
)

SUMMARY = "Every entry whose status on `to` differs from its status on `from`"
DESCRIPTION = f"""\
Every entry whose status on `to` differs from its status on `from`, with both states and the
changes between; entries `unknown` on either date are reported apart.

Paged over one sequence: the entries that moved, then those `unknown` on a date, each by
country code, then list (by jurisdiction, then id). A page holds the next `limit` items of it,
each in its section, so moves always come first and `unknown` starts filling once they are
all served. `count` and `unknown_count` are the totals over every page.
`next_cursor` (and the `Link: rel="next"` header) fetch the next page. Each item lists at most
the {CHANGES_SHOWN} most recent of its changes between the dates (`changes_total` counts them
all); `links.history` pages through the entry's whole history.
"""


@blp.route("")
class ChangesBetween(MethodView):
    @blp.arguments(ChangesBetweenQuery(), location="query", as_kwargs=True)
    @blp.cached_response(ChangesBetweenSchema)
    @blp.doc(operationId="list_changes_between", summary=SUMMARY, description=DESCRIPTION)
    def get(
        self,
        from_,
        limit,
        cursor=None,
        to=None,
        country=None,
        list=None,  # noqa: A002
        jurisdiction=None,
        known_at=None,
    ):
        session = db.session()
        document = changes_between(
            session,
            from_,
            to or clock.today(),
            known_at=known_at,
            country=query_country(country, "country") if country is not None else None,
            list_id=resolve_lists(session, [list], "list", body=False)[0] if list is not None else None,
            jurisdiction=jurisdiction,
            limit=limit,
            cursor=move_cursor(cursor),
        )
        following = document["next_cursor"]
        return {**document, "next_cursor": encode_cursor(following) if following is not None else None}


def move_cursor(cursor: Any) -> MoveKey | None:
    """A page's cursor, [section, country, jurisdiction, list id] as issued, checked."""
    if cursor is None:
        return None
    if (
        not isinstance(cursor, list)
        or len(cursor) != 4
        or type(cursor[0]) is not int
        or cursor[0] not in (0, 1)
        or not all(isinstance(part, str) and 0 < len(part) <= 64 for part in cursor[1:])
    ):
        raise InvalidInput(
            "Invalid query parameter 'cursor'.", {"cursor": ["Not a cursor for this collection."]}
        )
    section, country, jurisdiction, list_id = cursor
    return (section, country, jurisdiction, list_id)
