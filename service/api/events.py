"""The change feed: every event in sequence order, as JSON pages or as an Atom feed."""

import json
import re
import threading
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import cachetools
from flask import Flask, current_app, request
from flask.views import MethodView

from service import db
from service.api import Blueprint
from service.api.countries import query_country, resolve_lists
from service.domain import feed
from service.domain.errors import NotFound
from service.domain.events import event_document, public_id, timestamp
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


def init_app(app: Flask) -> None:
    app.extensions["exportctl.feed"] = feed.FeedReader(app.extensions["exportctl.db"].engine)
    app.extensions["exportctl.atom_entries"] = AtomEntries(ATOM_ENTRIES_MAX_BYTES)


def reader() -> feed.FeedReader:
    return current_app.extensions["exportctl.feed"]


def feed_filter(args: dict) -> feed.FeedFilter:
    """Query filters as domain values; an unknown country or list names the parameter."""
    country_code = query_country(args["country"], "country").alpha_2 if args.get("country") else None
    list_ids = resolve_lists(db.session(), [args["list"]], "list", body=False) if args.get("list") else None
    return feed.FeedFilter(
        country_code=country_code,
        list_id=list_ids[0] if list_ids else None,
        type=args.get("type"),
        since=args.get("since"),
        until=args.get("until"),
    )


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(EventQuery(), location="query")
    # A full page never changes: events are append-only, and numbered in commit order (the
    # counter's row lock), so none can appear later before the page's last one.
    @blp.cached_response(
        EventPageSchema, serialize=lambda page: page_json(page), settled=lambda page: page["has_more"]
    )
    @blp.doc(operationId="list_events")
    def get(self, args):
        """Events after a sequence number, oldest first. Poll with `after=<next_after>` to follow the feed."""
        rows, has_more = reader().page_after(args["after"], args["limit"], feed_filter(args))
        return {"items": rows, "next_after": rows[-1][0] if rows else args["after"], "has_more": has_more}


def page_json(page: dict) -> bytes:
    """EventPageSchema's document, written from the events' stored JSON (see feed.FeedRow)."""
    items = feed.items_json(page["items"])
    more = "true" if page["has_more"] else "false"
    return f'{{"has_more":{more},"items":[{items}],"next_after":{int(page["next_after"])}}}'.encode()


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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def xml_text(text: str) -> str:
    if text.isascii() and text.isprintable():  # most text (stored JSON is ASCII): no scan
        return text
    return _NOT_XML.sub("\ufffd", text)


def _describe(document: dict) -> str:
    data = document["data"]
    if document["type"] == "entry.status_changed":
        change = f"{data.get('from_status') or 'new'} → {data['status']}"
        effective = data.get("effective_on") or "an unrecorded date"
        return f"{data['country']['name']} on {data['list']['code']}: {change} (effective {effective})"
    if document["type"].startswith("list."):
        return f"List {data.get('id')} ({data.get('code')}): {document['type'].split('.')[1]}"
    return f"Webhook {data.get('webhook_id')}: {document['type'].split('.')[1]}"


ATOM = "http://www.w3.org/2005/Atom"
FEED_TITLE = "exportctl: export-control status changes"
FEED_SUBTITLE = "Every recorded change to countries' entries on export-control lists."


def _text(value: str) -> str:
    """Element text: what XML cannot carry replaced, markup escaped (the standard library's)."""
    return escape(xml_text(value))


def _attribute(value: str) -> str:
    """An attribute value, quoted and escaped (the standard library's quoteattr)."""
    return quoteattr(xml_text(value))


_MARKUP = re.compile("[&<>\"']")


def _plain(value: str) -> bool:
    """Whether _attribute would only put double quotes around `value` (the usual URL)."""
    return value.isascii() and value.isprintable() and _MARKUP.search(value) is None


_TYPE_ATTRIBUTES: dict[str, str] = {}


def _type_attribute(type: str) -> str:
    found = _TYPE_ATTRIBUTES.get(type)
    if found is None:
        if len(_TYPE_ATTRIBUTES) > 1000:  # event types are a vocabulary: never more than a few
            _TYPE_ATTRIBUTES.clear()
        _TYPE_ATTRIBUTES[type] = found = _attribute(type)
    return found


def _entry(row: feed.FeedRow, base_url: str, plain_base: bool) -> str:
    """One entry. Where the standard library's escaping would change nothing (a plain base
    URL, an ASCII link, the type's attribute once per type), it is not called per entry."""
    sequence, type, stamp, data_json = row
    data = json.loads(data_json or "null")
    if plain_base:
        href = f'"{base_url}v1/events/{public_id(sequence)}"'
    else:
        href = _attribute(f"{base_url}v1/events/{public_id(sequence)}")
    links = data.get("links") if isinstance(data, dict) else None
    entry_link = links.get("entry") if isinstance(links, dict) else None
    related = ""
    if isinstance(entry_link, str) and entry_link:
        target = base_url + entry_link.lstrip("/")
        quoted = f'"{target}"' if plain_base and _plain(target) else _attribute(target)
        related = f'<link href={quoted} rel="related" type="application/json"/>'
    moment = _text(stamp)
    content = _text(feed.row_json(row))
    return (
        f"<entry><id>{href[1:-1]}</id><title>{_text(_describe({'type': type, 'data': data}))}</title>"
        f"<updated>{moment}</updated><published>{moment}</published>"
        f'<link href={href} rel="alternate" type="application/json"/>{related}'
        f'<category term={_type_attribute(type)}/><content type="text">{content}</content></entry>'
    )


def atom_feed(
    rows: list[feed.FeedRow], self_url: str, base_url: str, entries: "AtomEntries | None" = None
) -> bytes:
    """The Atom 1.0 document of `rows` (newest first).

    Written from a fixed template, every value escaped by the standard library (escape,
    quoteattr) after xml_text has replaced what XML cannot carry. Not feedgen: it re-parsed
    every timestamp it was given as text (dateutil) and its per-element bookkeeping cost four
    times the document; nor lxml or XMLGenerator, whose per-element calls alone cost more than
    the whole JSON page (the goal: Atom at least half as fast as JSON). Each entry's content
    is the event's JSON as the feed serves it (its data as stored, never re-encoded); only
    the title needs the payload decoded.
    """
    updated = rows[0][2] if rows else timestamp(EPOCH)
    head = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="{ATOM}"><id>{_text(self_url)}</id>'
        f"<title>{_text(FEED_TITLE)}</title><subtitle>{_text(FEED_SUBTITLE)}</subtitle>"
        f"<updated>{_text(updated)}</updated><author><name>exportctl</name></author>"
        f'<link href={_attribute(self_url)} rel="self" type="application/atom+xml"/>'
        f'<link href={_attribute(f"{base_url}v1/events")} rel="alternate" type="application/json"/>'
    )
    plain_base = _plain(base_url)
    if entries is None:
        return "".join([head, *(_entry(row, base_url, plain_base) for row in rows), "</feed>"]).encode()
    written = [entries.get(row, base_url, plain_base) for row in rows]
    return b"".join([head.encode(), *written, b"</feed>"])


# The newest events are in every poll of the Atom feed: their entries are kept, UTF-8 encoded.
ATOM_ENTRIES_MAX_BYTES = 4 * 1024 * 1024


class AtomEntries:
    """Atom entries already written, by the row they were written from and the base URL.

    An event never changes (the feed is append-only), and the key holds the whole row, so a
    kept entry is always the one _entry would write now. Each feed reader's poll asks for the
    same newest events: decoding each payload (for its title) and escaping it again per poll
    cost most of an Atom document. Bounded in bytes (key and entry), least recently used out.
    """

    def __init__(self, max_bytes: int):
        self._cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=max_bytes, getsizeof=_entry_size)
        self._lock = threading.Lock()

    def get(self, row: feed.FeedRow, base_url: str, plain_base: bool) -> bytes:
        key = (row, base_url)
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = _entry(row, base_url, plain_base).encode()
            with self._lock:
                self._cache[key] = found
        return found


def _entry_size(entry: bytes) -> int:
    return 2 * len(entry) + 200  # the entry, the row in its key (a little smaller), the bookkeeping


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
        rows = reader().latest_page(args["limit"], feed_filter(args), args["after"])
        entries = current_app.extensions["exportctl.atom_entries"]
        return atom_feed(rows, request.url, request.host_url, entries)
