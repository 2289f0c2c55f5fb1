"""GET /v1/events, /v1/events/{id} and /v1/events.atom: the change feed."""

import json
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select, text

from service import db
from service.domain.events import event_json
from service.models import Event
from tests.conftest import a_change

PROBLEM = "application/problem+json"
ATOM = "{http://www.w3.org/2005/Atom}"
D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def test_seeded_history_is_in_the_feed_in_sequence_order(client):
    page = client.get("/v1/events?limit=50").get_json()

    sequences = [e["sequence"] for e in page["items"]]
    assert sequences == list(range(1, len(sequences) + 1))  # gap-free from the start
    assert page["items"][0]["type"] == "list.created"
    assert page["has_more"] is True
    assert page["next_after"] == sequences[-1]


def test_following_the_feed_with_after_sees_every_event_once(client, editor):
    seen, after = [], 0
    while True:
        page = client.get(f"/v1/events?after={after}&limit=200").get_json()
        seen += [e["sequence"] for e in page["items"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    client.post(D1_VN, json=a_change(), headers=editor)
    new = client.get(f"/v1/events?after={after}").get_json()

    assert len(seen) == len(set(seen)) == seen[-1]
    assert [e["type"] for e in new["items"]] == ["entry.status_changed"]
    assert new["items"][0]["sequence"] == seen[-1] + 1
    assert new["next_after"] == seen[-1] + 1
    assert client.get(f"/v1/events?after={new['next_after']}").get_json() == {
        "items": [],
        "next_after": new["next_after"],
        "has_more": False,
    }


def test_an_event_carries_what_subscribers_need(client, editor):
    client.post(D1_VN, json=a_change(), headers=editor)

    event = client.get("/v1/events?type=entry.status_changed&country=VN&list=us-ear-d1&after=100").get_json()[
        "items"
    ][-1]

    assert event["id"] == f"evt_{event['sequence']}"
    assert event["occurred_at"] == event["timestamp"] == "2026-11-23T12:00:00Z"
    data = event["data"]
    assert (data["country"]["alpha_2"], data["list"]["id"]) == ("VN", "us-ear-d1")
    assert (data["from_status"], data["status"]) == ("pending_removal", "removed")
    assert data["effective_on"] == "2026-11-20"
    assert data["expected_effective_on"] is None
    assert data["restrictions_apply"] is False
    assert data["sources"][0]["url"].startswith("https://")
    assert data["links"]["entry"] == "/v1/lists/us-ear-d1/entries/VN"
    assert data["links"]["self"] == f"/v1/lists/us-ear-d1/entries/VN/changes/{data['id']}"


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("country=Vietnam", lambda e: e["data"]["country"]["alpha_2"] == "VN"),
        ("country=vn", lambda e: e["data"]["country"]["alpha_2"] == "VN"),
        ("list=us-ear-e1", lambda e: e["data"].get("list", {}).get("id", e["data"].get("id")) == "us-ear-e1"),
        ("type=list.created", lambda e: e["type"] == "list.created"),
    ],
)
def test_filters(client, query, check):
    items = client.get(f"/v1/events?{query}&limit=500").get_json()["items"]

    assert items
    assert all(check(e) for e in items)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events.atom"])
def test_the_list_filter_takes_a_lists_code_as_lookups_and_changes_do(client, path):
    by_code = client.get(f"{path}?list=e:1&limit=500")
    by_id = client.get(f"{path}?list=us-ear-e1&limit=500")

    assert by_code.status_code == 200
    assert by_code.data.replace(b"list=e:1", b"list=us-ear-e1").replace(b"list=e%3A1", b"list=us-ear-e1") == (
        by_id.data
    )


def test_since_and_until_filter_on_occurred_at(client, editor, frozen_clock):
    frozen_clock.advance(hours=1)
    client.post(D1_VN, json=a_change(), headers=editor)

    recent = client.get("/v1/events?since=2026-11-23T12:30:00Z").get_json()["items"]
    older = client.get("/v1/events?until=2026-11-23T12:30:00Z&limit=5").get_json()["items"]

    assert [e["type"] for e in recent] == ["entry.status_changed"]
    assert all(e["occurred_at"] < "2026-11-23T12:30:00Z" for e in older)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after=-1", "after"),
        ("after=x", "after"),
        # Decimal digits only: not read as 3, 5, 10 or 100 (int() would).
        ("after=%2B3", "after"),
        ("limit=%205", "limit"),
        ("limit=%D9%A5", "limit"),  # ARABIC-INDIC DIGIT FIVE
        ("limit=1_0", "limit"),
        ("limit=100%0A", "limit"),
        ("country=Atlantis", "country"),
        ("list=us-ear-zz", "list"),
        ("type=entry.deleted", "type"),
        ("since=yesterday", "since"),
        ("until=2026-11-23", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),  # as /v1/changes' from and to
        ("cursor=abc", "cursor"),
    ],
)
def test_bad_feed_parameters_are_422s_naming_them(client, query, parameter):
    response = client.get(f"/v1/events?{query}")

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert list(response.get_json()["errors"]) == [parameter]


def test_one_event_by_id_or_sequence(client):
    by_id = client.get("/v1/events/evt_3")
    by_sequence = client.get("/v1/events/3")

    assert by_id.status_code == 200
    assert by_id.get_json() == by_sequence.get_json()
    assert by_id.get_json()["sequence"] == 3


@pytest.mark.parametrize("ref", ["evt_999999", "999999999999999999", "evt_x", "abc", "0"])
def test_unknown_events_are_404_problems(client, ref):
    response = client.get(f"/v1/events/{ref}")

    assert response.status_code == 404
    assert response.content_type == PROBLEM


def test_the_atom_feed_has_the_newest_events_first(client, editor):
    client.post(D1_VN, json=a_change(), headers=editor)

    response = client.get("/v1/events.atom?country=VN&limit=3")

    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 3
    assert entries[0].find(f"{ATOM}title").text == (
        "Vietnam on D:1: pending_removal → removed (effective 2026-11-20)"
    )
    assert entries[0].find(f"{ATOM}id").text.startswith("http://localhost/v1/events/evt_")
    assert feed.find(f"{ATOM}link[@rel='self']").get("href").startswith("http://localhost/v1/events.atom")
    assert entries[0].find(f"{ATOM}category").get("term") == "entry.status_changed"


def test_the_atom_feed_takes_the_same_filters(client):
    assert client.get("/v1/events.atom?type=list.created&limit=500").status_code == 200
    assert (
        len(
            ET.fromstring(client.get("/v1/events.atom?type=list.created&limit=500").data).findall(
                f"{ATOM}entry"
            )
        )
        == 19
    )
    assert client.get("/v1/events.atom?country=Atlantis").status_code == 422


def test_the_feed_sends_etags(client):
    first = client.get("/v1/events?after=10")
    again = client.get("/v1/events?after=10", headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304


def test_a_page_keeps_its_etag_as_long_as_its_bytes_and_only_so_long(client, editor, frozen_clock):
    """The ETag is a digest of the bytes: a full page revalidates with 304 on any later day (its
    bytes never change), and a page whose bytes changed never matches an ETag given before."""
    full = client.get("/v1/events?after=2&limit=3")
    assert full.get_json()["has_more"] is True
    tail = client.get("/v1/events?after=0&limit=1000")
    assert tail.get_json()["has_more"] is False

    frozen_clock.advance(days=1)
    again = client.get("/v1/events?after=2&limit=3", headers={"If-None-Match": full.headers["ETag"]})
    assert again.status_code == 304

    client.post(D1_VN, json=a_change(), headers=editor)
    grown = client.get("/v1/events?after=0&limit=1000", headers={"If-None-Match": tail.headers["ETag"]})
    assert grown.status_code == 200
    assert grown.data != tail.data and grown.headers["ETag"] != tail.headers["ETag"]


def test_paging_deep_uses_the_index_not_a_scan(app):
    """A page after sequence N is an index range scan from N: no scan of what came before, no sort."""
    with app.app_context(), db.database().engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in connection.execute(
                    text("EXPLAIN QUERY PLAN SELECT * FROM events WHERE id > 400 ORDER BY id LIMIT 101")
                )
            )
            filtered = " ".join(
                str(row[-1])
                for row in connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT * FROM events WHERE country_code = 'VN' AND id > 400 "
                        "ORDER BY id LIMIT 101"
                    )
                )
            )
            assert "SEARCH events USING" in plan and ("(id>?)" in plan or "(rowid>?)" in plan)
            assert "ix_events_country_code_id" in filtered
            assert "TEMP B-TREE" not in plan + filtered
        else:
            # The seeded feed is small (observations emit no events), so the planner would
            # rather bitmap-scan and sort it: ask what it does when it cannot, as on a large feed.
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_bitmapscan = off"))
            plan = "\n".join(
                row[0]
                for row in connection.execute(
                    text("EXPLAIN SELECT * FROM events WHERE id > 400 ORDER BY id LIMIT 101")
                )
            )
            filtered = "\n".join(
                row[0]
                for row in connection.execute(
                    text(
                        "EXPLAIN SELECT * FROM events WHERE country_code = 'VN' AND id > 400 ORDER BY id LIMIT 101"
                    )
                )
            )
            assert "Index Scan using pk_events" in plan
            assert "Sort" not in plan
            # Filtered: the (country_code, id) index bounds the scan on both columns; the
            # planner may sort the few rows it finds, but never reads the ones before `after`.
            assert "ix_events_country_code_id" in filtered
            assert "id > 400" in filtered.split("Index Cond:")[1].splitlines()[0]


@pytest.mark.parametrize("microseconds", [0, 5])
def test_a_page_serves_each_event_exactly_as_its_own_document(
    app, client, editor, frozen_clock, microseconds
):
    """Pages are written from the stored JSON text (no decoding): the same documents, timestamps
    included (Python writes no fraction for a whole second, and neither does the page)."""
    frozen_clock.now = frozen_clock.now.replace(microsecond=microseconds)
    client.post(D1_VN, json=a_change(note="Zoë's note\u2028with a line separator"), headers=editor)

    page = client.get("/v1/events?after=0&limit=500").get_json()

    for item in page["items"][:3] + page["items"][-1:]:
        assert client.get(f"/v1/events/{item['id']}").get_json() == item
    newest = page["items"][-1]
    assert newest["data"]["note"] == "Zoë's note\u2028with a line separator"
    assert newest["occurred_at"] == newest["timestamp"]
    assert newest["occurred_at"].endswith(".000005Z" if microseconds else ":00Z")


@pytest.mark.parametrize("microseconds", [0, 5])
def test_a_page_is_byte_for_byte_its_events_as_event_json_writes_them(
    app, client, session, editor, frozen_clock, microseconds
):
    """The page's bytes are written from the rows as the database gives them: they must be what
    event_json writes for each event (read through the ORM), in the page's envelope."""
    frozen_clock.now = frozen_clock.now.replace(microsecond=microseconds)
    client.post(D1_VN, json=a_change(note='Zoë\'s <note> & "quotes"'), headers=editor)
    events = session.scalars(select(Event).where(Event.public.is_(True)).order_by(Event.id)).all()
    after = events[-4].id - 1

    body = client.get(f"/v1/events?after={after}&limit=2").data
    last = client.get(f"/v1/events?after={after}&limit=10").data

    def written(page: list[Event]) -> list[str]:
        return [event_json(e.id, e.type, e.occurred_at, json.dumps(e.data)) for e in page]

    assert (
        body
        == (
            f'{{"has_more":true,"items":[{",".join(written(events[-4:-2]))}],"next_after":{events[-3].id}}}'
        ).encode()
    )
    assert (
        last
        == (
            f'{{"has_more":false,"items":[{",".join(written(events[-4:]))}],"next_after":{events[-1].id}}}'
        ).encode()
    )


def test_the_feed_reconnects_after_the_database_restarts(app, client):
    """Pages are read on a connection of the feed's own: a server restart must not make them fail."""
    assert client.get("/v1/events?after=3").status_code == 200
    assert client.get("/v1/events.atom?after=3").status_code == 200
    app.extensions["exportctl.feed"].local.connection.close()  # as a restarted server leaves it

    assert client.get("/v1/events?after=4").status_code == 200
    assert client.get("/v1/events.atom?after=4").status_code == 200


def test_a_page_sees_what_was_committed_after_the_feed_read_before(client, editor):
    """The feed's own connection reads outside any transaction: no snapshot outlives a request."""
    before = client.get("/v1/events?after=0&limit=1000").get_json()
    client.post(D1_VN, json=a_change(), headers=editor)

    after = client.get(f"/v1/events?after={before['next_after']}").get_json()
    atom = ET.fromstring(client.get(f"/v1/events.atom?after={before['next_after']}").data)

    assert [e["sequence"] for e in after["items"]] == [before["next_after"] + 1]
    assert len(atom.findall(f"{ATOM}entry")) == 1


def test_the_tail_of_the_feed_is_never_served_stale(client, editor):
    """A page that is not full can still grow: asked again after a write, it has the new event."""
    tail = client.get("/v1/events?after=0&limit=1000").get_json()
    assert tail["has_more"] is False
    url = f"/v1/events?after={tail['next_after'] - 1}"
    assert [e["sequence"] for e in client.get(url).get_json()["items"]] == [tail["next_after"]]

    client.post(D1_VN, json=a_change(), headers=editor)

    again = client.get(url).get_json()
    assert [e["sequence"] for e in again["items"]] == [tail["next_after"], tail["next_after"] + 1]


def test_a_full_page_is_settled_and_served_again_as_it_was(app, client, editor, monkeypatch):
    """A full page (has_more) never changes: events are append-only and numbered in commit order.
    It is kept without the data version, so writes do not evict it, and it answers the same."""
    first = client.get("/v1/events?after=2&limit=3")
    client.post(D1_VN, json=a_change(), headers=editor)

    def no_version_read():
        raise AssertionError("a settled page reads no data version")

    monkeypatch.setattr(app.extensions["exportctl.version"], "read", no_version_read)

    again = client.get("/v1/events?after=2&limit=3")

    assert first.get_json()["has_more"] is True
    assert (again.data, again.headers["ETag"], again.headers["Link"]) == (
        first.data,
        first.headers["ETag"],
        first.headers["Link"],
    )
