"""GET /v1/changes?from=&to=: what changed between two dates (what to re-screen)."""

from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event

from service import clock, db
from service.domain.between import CHANGES_SHOWN
from service.schemas import encode_cursor
from tests.conftest import a_change, alternating_history


def moves(body, list_id=None, country=None):
    return [
        item
        for item in body["entries"]
        if (list_id is None or item["list"]["id"] == list_id)
        and (country is None or item["country"]["alpha_2"] == country)
    ]


def test_a_year_shows_vietnam_moving_to_pending_removal(client):
    response = client.get("/v1/changes?from=2026-01-01&to=2026-12-31")
    assert response.status_code == 200
    body = response.get_json()
    [d3] = moves(body, "us-ear-d3", "VN")
    assert d3["from"]["status"] == "listed"
    assert d3["to"]["status"] == "pending_removal"
    assert d3["restrictions_changed"] is False
    assert [c["status"] for c in d3["changes"]] == ["pending_removal"]
    assert d3["changes"][0]["effective_on"] == "2026-02-20"
    assert body["count"] == len(body["entries"])  # moves come first: all on the first page
    assert body["unknown_count"] > len(body["unknown"])  # hundreds: paged
    for item in body["entries"]:
        assert "unknown" not in (item["from"]["status"], item["to"]["status"])
        assert item["from"]["status"] != item["to"]["status"]
    for item in body["unknown"]:
        assert "unknown" in (item["from"]["status"], item["to"]["status"])
    assert response.headers["ETag"]


def test_nothing_moved_between_two_equal_dates(client):
    body = client.get("/v1/changes?from=2026-06-01&to=2026-06-01").get_json()
    assert body["count"] == 0 and body["entries"] == [] and body["unknown"] == []


def test_a_recorded_removal_shows_up_with_restrictions_lifted(client, editor):
    change = client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)
    assert change.status_code == 201
    body = client.get("/v1/changes?from=2026-11-01&country=Vietnam").get_json()
    [d1] = body["entries"]
    assert d1["list"]["id"] == "us-ear-d1"
    assert (d1["from"]["status"], d1["to"]["status"]) == ("pending_removal", "removed")
    assert (d1["from"]["restrictions_apply"], d1["to"]["restrictions_apply"]) == (True, False)
    assert d1["restrictions_changed"] is True
    assert [c["id"] for c in d1["changes"]] == [change.get_json()["change"]["id"]]
    before = (clock.utcnow() - timedelta(hours=1)).isoformat()
    earlier = client.get(
        "/v1/changes", query_string={"from": "2026-11-01", "country": "VN", "known_at": before}
    )
    assert earlier.get_json()["entries"] == []


def test_filters_by_list_and_jurisdiction(client):
    year = "from=2026-01-01&to=2026-12-31"
    one = client.get(f"/v1/changes?{year}&list=us-ear-d3").get_json()
    assert {i["list"]["id"] for i in one["entries"]} == {"us-ear-d3"}
    us = client.get(f"/v1/changes?{year}&jurisdiction=US").get_json()
    assert us["entries"] and {i["list"]["jurisdiction"] for i in us["entries"]} == {"US"}


def test_the_answer_costs_a_few_queries(app, client):
    with app.app_context():
        engine = db.database().engine
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/v1/changes?from=2025-01-01&to=2026-12-31").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 12


@pytest.mark.parametrize(
    "query, field",
    [
        ("", "from"),  # no query string at all: the required `from` is missing all the same
        ("to=2026-01-01", "from"),
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("from=2026-06-01&to=2026-01-01", "to"),
        ("from=2026-01-01&to=1800-01-01", "to"),
        ("from=2026-01-01&known_at=soon", "known_at"),
        ("from=2026-01-01&jurisdiction=Atlantis", "jurisdiction"),
        ("from=2026-01-01&bogus=1", "bogus"),
        # As on /v1/events and /v1/countries/{ref}: the collection exists, a filter is wrong.
        ("from=2026-01-01&country=Atlantis", "country"),
        ("from=2026-01-01&list=us-ear-z9", "list"),
    ],
)
def test_bad_queries_are_problems_naming_the_field(client, query, field):
    response = client.get(f"/v1/changes?{query}")
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_a_list_is_named_by_its_code_too(client):
    by_code = client.get("/v1/changes?from=2025-01-01&to=2026-12-31&list=D:5")
    by_id = client.get("/v1/changes?from=2025-01-01&to=2026-12-31&list=us-ear-d5")

    assert by_code.status_code == 200
    assert by_code.get_json() == by_id.get_json()


def walk(client, url, limit):
    """Every page of `url`, following `next_cursor`; checks each page's Link header on the way."""
    pages, cursor = [], None
    for _ in range(1000):
        response = client.get(f"{url}&limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.get_json()
        document = response.get_json()
        pages.append(document)
        cursor = document["next_cursor"]
        links = response.headers.getlist("Link")
        if cursor is None:
            assert links == []
            return pages
        [link] = links
        target, rel = link.split(";")
        assert rel.strip() == 'rel="next"'
        following = urlsplit(target.strip("<>"))
        assert following.path == "/v1/changes"
        assert parse_qs(following.query) == {
            **parse_qs(urlsplit(url).query),
            "limit": [str(limit)],
            "cursor": [cursor],
        }
    raise AssertionError("paging did not end")


def item_key(item):
    return (item["country"]["alpha_2"], item["list"]["jurisdiction"], item["list"]["id"])


@pytest.mark.parametrize("limit", [1, 2, 7, 500])
def test_walking_the_pages_gives_every_item_once_moves_first_with_constant_totals(client, limit):
    url = "/v1/changes?from=2025-01-01&to=2026-12-31&list=us-ear-d5"
    whole = client.get(url + "&limit=500").get_json()
    assert whole["next_cursor"] is None
    assert whole["count"] >= 1 and whole["unknown_count"] >= 10  # both sections span pages below

    pages = walk(client, url, limit)

    assert len(pages) == -(-(whole["count"] + whole["unknown_count"]) // limit)
    for page in pages:
        assert (page["count"], page["unknown_count"]) == (whole["count"], whole["unknown_count"])
        assert 0 < len(page["entries"]) + len(page["unknown"]) <= limit
    sequence = [("moved", item_key(i)) for p in pages for i in p["entries"]] + [
        ("unknown", item_key(i)) for p in pages for i in p["unknown"]
    ]
    assert len(sequence) == len(set(sequence)) == whole["count"] + whole["unknown_count"]
    assert [i for p in pages for i in p["entries"]] == whole["entries"]
    assert [i for p in pages for i in p["unknown"]] == whole["unknown"]
    # One sequence: moves before unknowns, each by country then list; no page has a move after an unknown.
    assert [k for _, k in sequence[: whole["count"]]] == sorted(k for _, k in sequence[: whole["count"]])
    assert [k for _, k in sequence[whole["count"] :]] == sorted(k for _, k in sequence[whole["count"] :])
    started_unknown = False
    for page in pages:
        assert not (started_unknown and page["entries"])
        started_unknown = started_unknown or bool(page["unknown"])


def test_a_year_over_every_list_pages_at_the_default_size(client):
    response = client.get("/v1/changes?from=2026-01-01&to=2026-12-31")
    first = response.get_json()
    assert len(first["entries"]) + len(first["unknown"]) == 100  # the default page size
    assert first["next_cursor"] and 'rel="next"' in response.headers["Link"]
    pages = walk(client, "/v1/changes?from=2026-01-01&to=2026-12-31", 100)
    assert (
        sum(len(p["entries"]) + len(p["unknown"]) for p in pages) == first["count"] + first["unknown_count"]
    )


def test_following_the_link_header_gives_the_next_page(client):
    first = client.get("/v1/changes?from=2025-01-01&to=2026-12-31&list=us-ear-d5&limit=3")
    target = first.headers["Link"].split(";")[0].strip("<>")
    by_link = client.get(target)
    by_cursor = client.get(
        "/v1/changes",
        query_string={
            "from": "2025-01-01",
            "to": "2026-12-31",
            "list": "us-ear-d5",
            "limit": 3,
            "cursor": first.get_json()["next_cursor"],
        },
    )
    assert by_link.status_code == 200
    assert by_link.get_json() == by_cursor.get_json()
    assert by_link.get_json()["unknown"][0] != first.get_json()["unknown"][0]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        encode_cursor("VN"),  # a countries or entries page's cursor
        encode_cursor(["2026-02-20", 1, 5]),  # a history page's cursor
        encode_cursor([0, "VN", "US"]),
        encode_cursor([2, "VN", "US", "us-ear-d1"]),
        encode_cursor([True, "VN", "US", "us-ear-d1"]),
        encode_cursor([0, "VN", "US", 7]),
        encode_cursor([0, "", "US", "us-ear-d1"]),
    ],
)
def test_a_foreign_or_forged_cursor_is_a_422_naming_it(client, cursor):
    response = client.get("/v1/changes", query_string={"from": "2026-01-01", "cursor": cursor})
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert list(response.get_json()["errors"]) == ["cursor"]


def test_another_collections_real_cursor_is_a_422(client):
    countries = client.get("/v1/countries?limit=1").get_json()["next_cursor"]
    response = client.get("/v1/changes", query_string={"from": "2026-01-01", "cursor": countries})
    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]


def test_a_deep_entrys_changes_are_capped_to_the_most_recent_with_their_total(client, session):
    """An entry that moved thousands of times in the period must not make the answer unbounded."""
    start, days = date(2025, 12, 1), 121  # alternately listed and removed, daily; listed at the end
    alternating_history(session, "FR", start, days)
    from_, to = date(2026, 1, 1), date(2026, 12, 31)
    between = [start + timedelta(days=i) for i in range(days) if from_ < start + timedelta(days=i) <= to]
    assert len(between) > CHANGES_SHOWN

    body = client.get(f"/v1/changes?from={from_}&to={to}&country=FR&list=us-ear-d1").get_json()

    [item] = body["entries"]
    assert (item["from"]["status"], item["to"]["status"]) == ("removed", "listed")
    assert item["changes_total"] == len(between)
    assert [c["effective_on"] for c in item["changes"]] == [
        d.isoformat() for d in between[-CHANGES_SHOWN:]
    ]  # the most recent, oldest first
    history = client.get(item["links"]["history"], query_string={"limit": 10})
    assert history.status_code == 200
    assert history.get_json()["history"][0]["effective_on"] == between[-1].isoformat()
    assert history.get_json()["next_cursor"]

    known_at = clock.utcnow().isoformat()
    as_known = client.get(
        "/v1/changes",
        query_string={"from": from_, "to": to, "country": "FR", "list": "us-ear-d1", "known_at": known_at},
    ).get_json()
    link = as_known["entries"][0]["links"]["history"]
    assert parse_qs(urlsplit(link).query) == {"known_at": [clock.utcnow().isoformat().replace("+00:00", "Z")]}
    assert client.get(link).status_code == 200
