"""The change feed: every event in sequence order, as JSON pages or as an Atom feed."""

import re

from feedgen.feed import FeedGenerator
from flask import json, request
from flask.views import MethodView

from service import db
from service.api import Blueprint
from service.api.countries import resolve_country
from service.domain import feed, lookups
from service.domain.errors import InvalidInput, NotFound, UnknownCountry, UnknownList
from service.domain.events import event_document
from service.schemas import EventPageSchema, EventQuery, EventSchema

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/v1",
    description="Every recorded change as an event, in sequence order: a feed to pull (JSON or Atom).",
)

EVENT_ID = re.compile(r"^(?:evt_)?([0-9]{1,18})$")
EVENT_PARAMETER = {
    "in": "path",
    "name": "event_id",
    "required": True,
    "description": "The event's id (`evt_512`) or sequence number (`512`).",
    "schema": {"type": "string", "pattern": EVENT_ID.pattern},
}


def feed_filter(args: dict) -> feed.FeedFilter:
    """Query filters as domain values; an unknown country or list names the parameter."""
    country_code = None
    if args.get("country"):
        try:
            country_code = resolve_country(args["country"]).alpha_2
        except UnknownCountry as exc:
            raise InvalidInput("Invalid query parameter 'country'.", {"country": [exc.detail]}) from exc
    if args.get("list"):
        try:
            lookups.get_list(db.session(), args["list"])
        except UnknownList as exc:
            raise InvalidInput("Invalid query parameter 'list'.", {"list": [exc.detail]}) from exc
    return feed.FeedFilter(
        country_code=country_code,
        list_id=args.get("list"),
        type=args.get("type"),
        since=args.get("since"),
        until=args.get("until"),
    )


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(EventQuery(), location="query")
    @blp.cached_response(EventPageSchema)
    @blp.doc(operationId="list_events")
    def get(self, args):
        """Events after a sequence number, oldest first. Poll with `after=<next_after>` to follow the feed."""
        events, has_more = feed.events_after(db.session(), args["after"], args["limit"], feed_filter(args))
        return {
            "items": [event_document(e) for e in events],
            "next_after": events[-1].id if events else args["after"],
            "has_more": has_more,
        }


@blp.route("/events/<event_id>", parameters=[EVENT_PARAMETER])
class EventDetail(MethodView):
    @blp.cached_response(EventSchema)
    @blp.problems(404)
    @blp.doc(operationId="get_event")
    def get(self, event_id):
        """One event."""
        match = EVENT_ID.match(event_id)
        if match is None:
            raise NotFound(f"No event {event_id!r}: ids look like evt_512.")
        return event_document(feed.get_event(db.session(), int(match.group(1))))


# Characters XML 1.0 cannot carry; stored text is shown with U+FFFD in their place, so no
# stored value (written before input was checked, or by a tool) can break the feed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _title(document: dict) -> str:
    return xml_text(_describe(document))


def _describe(document: dict) -> str:
    data = document["data"]
    if document["type"] == "entry.status_changed":
        change = f"{data.get('from_status') or 'new'} → {data['status']}"
        effective = data.get("effective_on") or "an unrecorded date"
        return f"{data['country']['name']} on {data['list']['code']}: {change} (effective {effective})"
    if document["type"].startswith("list."):
        return f"List {data.get('id')} ({data.get('code')}): {document['type'].split('.')[1]}"
    return f"Webhook {data.get('webhook_id')}: {document['type'].split('.')[1]}"


def atom_feed(documents: list[dict], self_url: str, base_url: str) -> bytes:
    generator = FeedGenerator()
    generator.id(self_url)
    generator.title("exportctl: export-control status changes")
    generator.subtitle("Every recorded change to countries' entries on export-control lists.")
    generator.link(href=self_url, rel="self", type="application/atom+xml")
    generator.link(href=f"{base_url}v1/events", rel="alternate", type="application/json")
    generator.author({"name": "exportctl"})
    generator.updated(documents[0]["occurred_at"] if documents else "1970-01-01T00:00:00Z")
    for document in reversed(documents):  # feedgen prepends: add oldest first, newest ends on top
        entry = generator.add_entry()
        entry.id(f"{base_url}v1/events/{document['id']}")
        entry.title(_title(document))
        entry.updated(document["occurred_at"])
        entry.published(document["occurred_at"])
        entry.link(href=f"{base_url}v1/events/{document['id']}", rel="alternate", type="application/json")
        entry_link = document["data"].get("links", {}).get("entry")
        if entry_link:
            entry.link(href=base_url + entry_link.lstrip("/"), rel="related", type="application/json")
        entry.category(term=xml_text(document["type"]))
        entry.content(json.dumps(document, indent=2), type="text")  # ASCII: JSON escapes the rest
    return generator.atom_str(pretty=True)


@blp.route("/events.atom")
class EventsAtom(MethodView):
    @blp.arguments(EventQuery(), location="query")
    @blp.cached_response(
        None, serialize=bytes, mimetype="application/atom+xml", vary=lambda: (request.url, request.host_url)
    )
    @blp.doc(
        responses={
            "200": {
                "description": "An Atom 1.0 feed of the newest matching events (newest first).",
                "content": {"application/atom+xml": {"schema": {"type": "string"}}},
            }
        }
    )
    @blp.doc(operationId="get_events_atom")
    def get(self, args):
        """The same feed as Atom, newest first, with the same filters (for feed readers)."""
        events = feed.latest_events(db.session(), args["limit"], feed_filter(args), args["after"])
        return atom_feed([event_document(e) for e in events], request.url, request.host_url)
