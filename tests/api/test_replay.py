"""Replayed responses (service.replay): a repeated plain GET of a cached document is answered
without running the app, byte for byte as the app answered it, and never once what it was built
from has moved (a write, the day) or when the request carries something the app must see."""

import gzip
import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from service import clock
from service.domain.events import DATA_VERSION_QUERY
from service.replay import ResponseReplay
from tests.conftest import a_change, make_app

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


@pytest.fixture
def app_runs(app):
    """How many requests reached the app behind the replay (the rest were replayed)."""
    replay = app.extensions["exportctl.replay"]
    assert isinstance(replay, ResponseReplay)
    inner = replay.wsgi_app
    calls = []

    def counting(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    replay.wsgi_app = counting
    return calls


def asked_twice(client, path: str, **options):
    """GET `path` twice: a response is kept from the second time a request is asked."""
    first = client.get(path, **options)
    client.get(path, **options)
    return first


def d1_status(response) -> str:
    lists = {entry["list"]["id"]: entry for entry in response.get_json()["entries"]}
    return lists["us-ear-d1"]["status"]


def test_a_repeated_lookup_is_replayed_byte_for_byte_with_its_own_request_id(client, app_runs):
    first = asked_twice(client, "/v1/countries/VN")
    again = client.get("/v1/countries/VN")

    assert app_runs == ["/v1/countries/VN"] * 2  # the third never reached the app
    assert again.status_code == first.status_code == 200
    assert again.data == first.data
    differing = {"X-Request-ID"}
    assert [h for h in again.headers if h[0] not in differing] == [
        h for h in first.headers if h[0] not in differing
    ]
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert len(again.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("path", ["/countries/VN", "/countries/VN/statuses.csv?as_of=2020-01-01", "/lists"])
def test_the_analysts_pages_are_replayed_to_anonymous_requests_too(client, app_runs, path):
    first = asked_twice(client, path)
    again = client.get(path)

    assert again.status_code == first.status_code == 200
    assert again.data == first.data
    assert again.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]
    assert app_runs == [path.split("?")[0]] * 2


@pytest.mark.parametrize(
    "headers",
    [
        lambda n: {"traceparent": f"00-{n:032x}-{n:016x}-01"},
        lambda n: {"X-B3-TraceId": f"{n:032x}", "X-B3-SpanId": f"{n:016x}", "X-B3-Sampled": "1"},
        lambda n: {"b3": f"{n:032x}-{n:016x}-1"},
        lambda n: {"uber-trace-id": f"{n:x}:{n:x}:0:1"},
        lambda n: {"sentry-trace": f"{n:032x}-{n:016x}-1", "baggage": f"sentry-trace_id={n:032x}"},
        lambda n: {"X-Datadog-Trace-Id": str(n), "X-Datadog-Parent-Id": str(n + 1)},
        lambda n: {"X-Request-Start": f"t={n}"},
    ],
)
def test_a_tracing_header_new_at_every_request_does_not_keep_it_from_replay(client, app_runs, headers):
    """Tracers (W3C, Zipkin B3, Jaeger, Sentry, Datadog) and proxies stamp every request with
    a new id that no code here reads: were it part of the key, no request would be asked twice."""
    for n in range(1, 4):
        client.get("/v1/countries/VN", headers=headers(n))

    assert app_runs == ["/v1/countries/VN"] * 2


def test_a_request_asked_once_is_not_kept(client, app_runs):
    client.get("/v1/countries/VN?as_of=2020-01-01")
    client.get("/v1/countries/VN?as_of=2020-01-02")

    assert len(client.application.extensions["exportctl.replay"].cache) == 0


def test_a_write_is_seen_by_the_next_request(client, editor, app_runs):
    before = asked_twice(client, "/v1/countries/VN")
    assert client.get("/v1/countries/VN").data == before.data  # replayed
    assert client.post(D1_VN, json=a_change(), headers=editor).status_code == 201

    after = client.get("/v1/countries/VN")

    assert d1_status(before) == "pending_removal"
    assert d1_status(after) == "removed"
    assert app_runs.count("/v1/countries/VN") == 3  # the first two, and the one after the write


def test_a_new_day_is_answered_anew_when_an_effective_date_arrives(client, editor, frozen_clock, app_runs):
    soon = clock.today() + timedelta(days=2)
    assert client.post(D1_VN, json=a_change(effective_on=soon.isoformat()), headers=editor).status_code == 201
    today = asked_twice(client, "/v1/countries/VN")
    assert client.get("/v1/countries/VN").data == today.data  # replayed

    frozen_clock.advance(days=2)
    that_day = client.get("/v1/countries/VN")

    assert d1_status(today) == "pending_removal"
    assert d1_status(that_day) == "removed"
    assert app_runs.count("/v1/countries/VN") == 3


@pytest.mark.parametrize(
    ("header", "value", "seen"),
    [
        ("X-Request-ID", "client-chosen-id-1", lambda r: r.headers["X-Request-ID"] == "client-chosen-id-1"),
        ("Origin", "https://analyst.example", lambda r: r.headers["Access-Control-Allow-Origin"] == "*"),
        ("Authorization", "Bearer exk_not-a-real-key", lambda r: r.status_code == 401),
    ],
)
def test_a_request_that_carries_what_the_app_must_see_reaches_it(client, app_runs, header, value, seen):
    asked_twice(client, "/v1/countries/VN")

    responses = [client.get("/v1/countries/VN", headers={header: value}) for _ in range(3)]

    assert all(seen(response) for response in responses)
    assert app_runs.count("/v1/countries/VN") == 5


def test_a_request_with_a_cookie_reaches_the_app(client, app_runs):
    """A signed-in analyst's pages say who is signed in: a session cookie is the app's to read."""
    asked_twice(client, "/countries/VN")
    client.set_cookie("session", "not-a-session")

    assert client.get("/countries/VN").status_code == 200
    assert app_runs == ["/countries/VN"] * 3


def test_a_conditional_request_gets_its_304_from_the_app(client, app_runs):
    etag = asked_twice(client, "/v1/countries/VN").headers["ETag"]

    assert client.get("/v1/countries/VN", headers={"If-None-Match": etag}).status_code == 304
    assert app_runs.count("/v1/countries/VN") == 3


def test_each_encoding_gets_its_own_response(client):
    plain = asked_twice(client, "/v1/countries/VN")
    zipped = asked_twice(client, "/v1/countries/VN", headers={"Accept-Encoding": "gzip"})
    zipped_again = client.get("/v1/countries/VN", headers={"Accept-Encoding": "gzip"})
    plain_again = client.get("/v1/countries/VN")

    assert zipped.headers["Content-Encoding"] == zipped_again.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped_again.data) == plain.data == plain_again.data
    assert "Content-Encoding" not in plain_again.headers


def test_the_same_path_on_another_host_links_to_that_host(client):
    asked_twice(client, "/v1/events?limit=2", base_url="http://one.example")

    other = client.get("/v1/events?limit=2", base_url="http://two.example")

    assert "http://two.example/v1/events" in other.headers["Link"]


def the_feeds_tail(client) -> str:
    """The path of the feed's last page, which holds the newest event (and may grow)."""
    after = 0
    while (page := client.get(f"/v1/events?after={after}&limit=100").get_json())["has_more"]:
        after = page["next_after"]
    return f"/v1/events?after={page['next_after'] - 1}"


def test_an_error_is_never_kept(client, app_runs):
    for _ in range(3):
        client.get("/v1/countries/XX-nonsense")

    assert app_runs == ["/v1/countries/XX-nonsense"] * 3


def test_the_feeds_tail_is_never_kept_as_it_can_grow(client, app_runs, editor):
    """Built as read, not from a cache (see Blueprint.cached_response): a response kept from it
    would hide the next event, whose number may have been taken before the tail was read."""
    tail = the_feeds_tail(client)
    app_runs.clear()
    before = client.get(tail).get_json()
    client.get(tail)
    client.get(tail)
    assert app_runs == ["/v1/events"] * 3

    assert client.post(D1_VN, json=a_change(), headers=editor).status_code == 201
    assert len(client.get(tail).get_json()["items"]) > len(before["items"])


def test_a_head_request_reaches_the_app(client, app_runs):
    asked_twice(client, "/v1/countries/VN")
    head = client.head("/v1/countries/VN")

    assert head.status_code == 200 and head.data == b""
    assert app_runs == ["/v1/countries/VN"] * 3


def test_a_replayed_request_is_logged_and_counted_as_the_app_would(client, caplog):
    caplog.set_level(logging.INFO, logger="exportctl.requests")
    asked_twice(client, "/v1/countries/VN")
    replayed = client.get("/v1/countries/VN")

    lines = [record for record in caplog.records if record.name == "exportctl.requests"]
    assert [line.getMessage() for line in lines] == ["GET /v1/countries/VN 200"] * 3
    fields = ("method", "route", "path", "status", "actor")
    assert [getattr(lines[2], name) for name in fields] == [getattr(lines[0], name) for name in fields]
    assert lines[2].request_id == replayed.headers["X-Request-ID"]
    assert lines[2].duration_ms is not None

    metrics = client.get("/metrics").get_data(as_text=True)
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    route = (("method", "GET"), ("route", "/v1/countries/<ref>"), ("status", "200"))
    assert found[("exportctl_http_requests_total", route)] == 3
    assert found[("exportctl_document_cache_lookups_total", (("result", "hit"),))] == 2  # app, replay


def test_when_reads_require_a_key_nothing_is_replayed_to_anyone_without_one(database_url):
    app = make_app(database_url, READS_REQUIRE_KEY="true")
    client = app.test_client()

    assert client.get("/v1/countries/VN").status_code == 401
    assert client.get("/v1/countries/VN").status_code == 401
    assert len(app.extensions["exportctl.replay"].cache) == 0


def test_nothing_is_replayed_when_the_data_version_cannot_be_read(app, client, monkeypatch):
    """Without the version, a kept response could be stale: the app answers (503, as it does)."""
    asked_twice(client, "/v1/countries/VN")

    def unreachable():
        raise OperationalError(DATA_VERSION_QUERY, None, Exception("server closed the connection"))

    monkeypatch.setattr(app.extensions["exportctl.version"], "read", unreachable)
    response = client.get("/v1/countries/VN")

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"


def test_a_replayed_request_line_names_the_path_as_the_app_decoded_it(client, caplog):
    caplog.set_level(logging.INFO, logger="exportctl.requests")
    path = "/v1/countries/C%C3%B4te%20d%27Ivoire"
    asked_twice(client, path)
    assert client.get(path).status_code == 200

    lines = [record for record in caplog.records if record.name == "exportctl.requests"]
    assert [line.path for line in lines] == ["/v1/countries/Côte d'Ivoire"] * 3


def test_a_kept_response_counts_its_request_headers_in_the_cache_budget(app, client):
    """The key holds every header the app may read: a client sending 40 KB of them (gunicorn
    allows 100 of 8 KB) must pay for them in the byte budget, or the cache could grow unbounded."""
    padding = {f"X-Pad-{index}": "x" * 4000 for index in range(10)}
    body = asked_twice(client, "/v1/events/evt_1", headers=padding).data

    cache = app.extensions["exportctl.replay"].cache
    assert len(cache) == 1
    assert cache.bytes >= len(body) + 40_000
