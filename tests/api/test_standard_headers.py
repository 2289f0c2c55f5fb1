"""Standard headers a client library understands: Link rel="next" on every paged collection,
RateLimit / RateLimit-Policy on limited writes."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from service import close_app
from tests.conftest import a_change, create_key, make_app

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def next_link(response) -> str | None:
    links = response.headers.getlist("Link")
    assert len(links) <= 1
    if not links:
        return None
    match = LINK.match(links[0])
    assert match, links[0]
    return match.group("url")


def follow(client, url, headers=None):
    """Every item of a collection, by following Link headers only (as a generic client would)."""
    seen, pages = [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        seen.extend(response.json["items"])
        pages += 1
        url = next_link(response)
        if url:
            parts = urlsplit(url)
            assert parts.scheme == "http" and parts.netloc == "localhost"
            url = f"{parts.path}?{parts.query}"
    return seen, pages


@pytest.mark.parametrize(
    "path",
    ["/v1/countries?limit=7", "/v1/lists?limit=2", "/v1/lists/us-ear-d1/entries?limit=3"],
)
def test_link_headers_walk_a_collection_to_its_end(client, path):
    everything, pages_of_100 = follow(client, path.split("?")[0] + "?limit=100")

    walked, pages = follow(client, path)

    assert [str(item) for item in walked] == [str(item) for item in everything]
    assert len(walked) == len({str(item) for item in walked})
    assert pages > pages_of_100


def test_the_next_link_keeps_filters_and_page_size_and_only_moves_the_cursor(client):
    first = client.get("/v1/countries?limit=2")
    url = next_link(first)

    query = parse_qs(urlsplit(url).query)
    assert query["limit"] == ["2"]
    assert query["cursor"] == [first.json["next_cursor"]]
    assert url.startswith("http://localhost/v1/countries?")


def test_the_last_page_has_no_next_link(client):
    response = client.get("/v1/lists?limit=100")

    assert response.json["next_cursor"] is None
    assert next_link(response) is None


def test_a_304_of_a_paged_collection_still_links_its_next_page(client):
    first = client.get("/v1/countries?limit=2")
    again = client.get("/v1/countries?limit=2", headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304
    assert next_link(again) == next_link(first)


def test_the_events_feed_links_the_next_batch_by_after(client, editor):
    for day in range(20, 23):
        status = "removed" if day % 2 == 0 else "listed"
        assert (
            client.post(
                D1_VN, json=a_change(status=status, effective_on=f"2026-11-{day}"), headers=editor
            ).status_code
            == 201
        )
    feed = "/v1/events?country=VN&list=us-ear-d1"
    total = len(client.get(feed + "&limit=100").json["items"])

    walked, pages = follow(client, feed + "&limit=2")
    last = client.get(feed + "&limit=100")

    assert len(walked) == total >= 3
    assert [e["sequence"] for e in walked] == sorted(e["sequence"] for e in walked)
    assert pages == -(-total // 2)
    assert next_link(last) is None


def test_uncached_collections_link_their_next_page_too(client, editor, admin):
    for day in range(20, 23):
        status = "removed" if day % 2 == 0 else "listed"
        client.post(D1_VN, json=a_change(status=status, effective_on=f"2026-11-{day}"), headers=editor)
    hook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=editor)
    assert hook.status_code == 201

    walked, pages = follow(client, "/v1/audit?limit=1", headers=admin)

    assert pages == len(walked) >= 4


def test_paged_operations_document_the_link_header(app):
    from service.api import spec_config  # noqa: F401  (the spec is the app's)

    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    for path in ("/v1/countries", "/v1/lists", "/v1/events", "/v1/proposals", "/v1/audit"):
        assert "Link" in spec["paths"][path]["get"]["responses"]["200"]["headers"], path


@pytest.fixture
def limited_app(database_url):
    app = make_app(database_url, WRITE_RATE_LIMIT="2 per minute")
    yield app
    close_app(app)


RATELIMIT = re.compile(r'^"writes";r=(?P<r>\d+);t=(?P<t>\d+)$')


def test_writes_advertise_their_budget_and_a_limited_write_says_when_to_retry(limited_app):
    client = limited_app.test_client()
    alice = {"Authorization": f"Bearer {create_key(limited_app, 'alice', 'editor')}"}

    first = client.post(D1_VN, json=a_change(), headers=alice)
    second = client.post(D1_VN, json=a_change(status="listed", effective_on="2026-11-21"), headers=alice)
    limited = client.post(D1_VN, json=a_change(effective_on="2026-11-22"), headers=alice)

    assert [first.status_code, second.status_code, limited.status_code] == [201, 201, 429]
    for response in (first, second, limited):
        assert response.headers["RateLimit-Policy"] == '"writes";q=2;w=60'
    remaining = [int(RATELIMIT.match(r.headers["RateLimit"])["r"]) for r in (first, second, limited)]
    assert remaining == [1, 0, 0]
    reset = int(RATELIMIT.match(limited.headers["RateLimit"])["t"])
    assert 1 <= reset <= 60
    assert int(limited.headers["Retry-After"]) == reset
    assert limited.json["type"].endswith("/rate-limited")


def test_a_refused_write_still_counts_and_says_so(limited_app):
    client = limited_app.test_client()
    alice = {"Authorization": f"Bearer {create_key(limited_app, 'alice', 'editor')}"}

    bad = client.post(D1_VN, json={"status": "nonsense"}, headers=alice)

    assert bad.status_code == 422
    assert RATELIMIT.match(bad.headers["RateLimit"])["r"] == "1"


def test_reads_and_unauthenticated_writes_carry_no_write_budget(limited_app):
    client = limited_app.test_client()

    assert "RateLimit" not in client.get("/v1/countries/VN").headers
    assert "RateLimit" not in client.post(D1_VN, json=a_change()).headers


def test_the_429_documents_its_ratelimit_headers(app):
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    headers = spec["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(headers)
