"""The Atom feed, written from a string template, read back by a maintained feed parser (feedparser):
well-formed Atom 1.0 whatever the stored text holds (markup characters, control characters)."""

import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import feedparser
import pytest

from service import db
from service.api.events import FEED_TITLE
from service.domain.audit import Actor
from service.domain.lists import create_list
from tests.api.test_list_admin import EU_LIST
from tests.conftest import a_change

MARKUP = "A&B <b>bold</b> \"quoted\" 'single' ]]> &amp; &#1;"
D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


@pytest.fixture
def varied_events(app, client, admin, editor, frozen_clock):
    """Events whose text holds XML's special characters (through the API) and control
    characters (stored directly, as data written before input was checked would be; not NUL,
    which PostgreSQL cannot store at all)."""
    frozen_clock.advance(minutes=1)
    created = client.post(
        "/v1/lists",
        json={**EU_LIST, "id": "markup-list", "code": "M&<'\">", "name": MARKUP, "description": MARKUP},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    frozen_clock.advance(minutes=1)
    with app.app_context():
        session = db.session()
        create_list(
            session,
            {
                **EU_LIST,
                "id": "legacy-list",
                "code": "P\u0001",
                "name": "Odd\u0085name\u001b[31m",
                "description": "tab\there, bell\u0007, NEL\u0085, FFFE\ufffe",
                "membership_complete_from": date(2021, 9, 9),
            },
            actor=Actor(name="legacy\u0002", request_id=None),
        )
        session.commit()
    frozen_clock.advance(minutes=1, microseconds=123456)
    change = client.post(D1_VN, json=a_change(note=MARKUP), headers=editor)
    assert change.status_code == 201, change.get_json()


def newest_events(client, count):
    """The newest events as the JSON API serves them, newest first."""
    ids = []
    after = 0
    while True:
        page = client.get(f"/v1/events?after={after}&limit=500").get_json()
        ids.extend(e["id"] for e in page["items"])
        if not page["has_more"]:
            break
        after = page["next_after"]
    return [client.get(f"/v1/events/{i}").get_json() for i in reversed(ids[-count:])]


def parsed(response):
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    result = feedparser.parse(response.data)
    assert not result.bozo, result.get("bozo_exception")
    assert result.version == "atom10"
    return result


def test_the_feed_parses_as_atom_with_every_field(client, varied_events):
    response = client.get("/v1/events.atom?limit=5")
    result = parsed(response)
    events = newest_events(client, 5)

    feed = result.feed
    assert feed.id == "http://localhost/v1/events.atom?limit=5"
    assert feed.title == FEED_TITLE
    assert feed.updated == events[0]["occurred_at"]
    assert feed.updated_parsed is not None
    links = {(link.rel, link.type): link.href for link in feed.links}
    assert links[("self", "application/atom+xml")] == "http://localhost/v1/events.atom?limit=5"
    assert links[("alternate", "application/json")] == "http://localhost/v1/events"

    assert len(result.entries) == 5
    for entry, event in zip(result.entries, events, strict=True):
        url = f"http://localhost/v1/events/{event['id']}"
        assert entry.id == url
        assert entry.updated == event["occurred_at"] and entry.updated_parsed is not None
        assert [t.term for t in entry.tags] == [event["type"]]
        by_rel = {link.rel: link for link in entry.links}
        assert by_rel["alternate"].href == url
        assert by_rel["alternate"].type == "application/json"
        entry_link = (event["data"].get("links") or {}).get("entry")
        if entry_link:
            assert by_rel["related"].href == "http://localhost" + entry_link
        else:
            assert "related" not in by_rel
        [content] = entry.content
        assert content.type == "text/plain"
        assert json.loads(content.value) == event  # every character, the markup ones included
        assert entry.title

    change, legacy, markup = result.entries[0], result.entries[1], result.entries[2]
    assert change.title == "Vietnam on D:1: pending_removal → removed (effective 2026-11-20)"
    assert json.loads(change.content[0].value)["data"]["note"] == MARKUP
    assert markup.title == "List markup-list (M&<'\">): created"
    assert json.loads(markup.content[0].value)["data"]["name"] == MARKUP
    # What XML cannot carry is shown as U+FFFD; the JSON content keeps it, escaped.
    assert legacy.title == "List legacy-list (P\ufffd): created"
    assert json.loads(legacy.content[0].value)["data"]["code"] == "P\u0001"
    assert json.loads(legacy.content[0].value)["data"]["name"] == "Odd\u0085name\u001b[31m"


@pytest.mark.parametrize("query", ["", "?type=list.created&limit=500", "?list=legacy-list", "?country=VN"])
def test_every_filtered_feed_parses_without_errors(client, varied_events, query):
    result = parsed(client.get(f"/v1/events.atom{query}"))
    assert result.entries
    for entry in result.entries:
        assert entry.id and entry.title and entry.updated_parsed and entry.content


def test_an_empty_feed_is_valid_atom(client, frozen_clock):
    later = (frozen_clock() + timedelta(days=1)).isoformat()
    result = parsed(client.get("/v1/events.atom", query_string={"since": later}))
    assert result.entries == []
    assert result.feed.title == FEED_TITLE and result.feed.updated_parsed is not None


@pytest.mark.parametrize(
    ("base_url", "entry_link"),
    [
        ("http://localhost/", "/v1/lists/us-ear-d1/entries/VN"),
        ("http://a&b'c/", "/v1/lists/x/entries/VN"),
        ("http://localhost/", '/v1/lists/a"b&c<d>/entries/VN'),
        ("http://h\u00e9/", "/v1/lists/\u00e9\u2028/entries/VN"),
    ],
)
def test_links_are_escaped_whatever_the_base_url_and_link(base_url, entry_link):
    """Plain URLs skip the escaping calls; anything else goes through them, and parses back as given."""
    from service.api.events import atom_feed

    data = {"id": "x", "code": "X", "links": {"entry": entry_link}}
    rows = [(7, "list.created", "2026-11-23T12:00:00Z", json.dumps(data))]

    feed = ET.fromstring(atom_feed(rows, f"{base_url}v1/events.atom", base_url))
    ATOM = "{http://www.w3.org/2005/Atom}"  # noqa: N806

    entry = feed.find(f"{ATOM}entry")
    hrefs = {link.get("rel"): link.get("href") for link in entry.findall(f"{ATOM}link")}
    assert hrefs == {"alternate": f"{base_url}v1/events/evt_7", "related": base_url + entry_link.lstrip("/")}
    assert entry.find(f"{ATOM}id").text == f"{base_url}v1/events/evt_7"


def test_kept_entries_are_the_ones_written_now():
    """Entries are kept by the whole row and base URL: the same row gives the same bytes, and a
    row that differs (another database, say) never gets another's entry."""
    from service.api.events import AtomEntries, atom_feed

    entries = AtomEntries(1 << 20)
    data = {"id": "x", "code": "X", "links": {"entry": "/v1/lists/x"}}
    row = (7, "list.created", "2026-11-23T12:00:00Z", json.dumps(data))
    other = (7, "list.created", "2026-11-23T12:00:00Z", json.dumps({**data, "code": "Y"}))

    for rows in ([row], [row], [other], [row, other]):
        for base in ("http://localhost/", "http://example.org/"):
            fresh = atom_feed(rows, f"{base}v1/events.atom", base)
            assert atom_feed(rows, f"{base}v1/events.atom", base, entries) == fresh
