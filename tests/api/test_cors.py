"""CORS: browser apps may read from the configured origins; writes only where configured."""

import pytest

from service import close_app
from tests.conftest import a_change, create_key, make_app

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"
APP = "https://app.example.com"


def preflight(client, path, method, headers="authorization"):
    return client.options(
        path,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_reads_are_open_to_any_origin_by_default(client):
    response = client.get("/v1/countries?limit=2", headers={"Origin": APP})

    assert response.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "link", "ratelimit", "ratelimit-policy", "retry-after", "x-request-id"} <= exposed


def test_a_read_preflight_allows_get_with_a_key(client):
    response = preflight(client, "/v1/countries/VN", "GET")

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_writes_get_no_cors_by_default(client, editor):
    ask = preflight(client, D1_VN, "POST", "authorization,content-type")
    write = client.post(D1_VN, json=a_change(), headers={**editor, "Origin": APP})

    assert "Access-Control-Allow-Origin" not in ask.headers
    assert "Access-Control-Allow-Methods" not in ask.headers
    assert write.status_code == 201  # not a browser: the server does not block, it just grants nothing
    assert "Access-Control-Allow-Origin" not in write.headers


def test_pages_are_not_cross_origin(client):
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": APP}).headers


@pytest.fixture
def configured_app(database_url):
    app = make_app(
        database_url,
        CORS_READ_ORIGINS=f"{APP}, https://other.example.org",
        CORS_WRITE_ORIGINS=APP,
    )
    yield app
    close_app(app)


def test_configured_origins_are_echoed_and_others_refused(configured_app):
    client = configured_app.test_client()

    allowed = client.get("/v1/countries/VN", headers={"Origin": "https://other.example.org"})
    refused = client.get("/v1/countries/VN", headers={"Origin": "https://evil.example.net"})

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://other.example.org"
    assert "Origin" in ", ".join(allowed.headers.getlist("Vary"))
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_configured_write_origins_may_write_and_only_they(configured_app):
    client = configured_app.test_client()
    key = {"Authorization": f"Bearer {create_key(configured_app, 'alice', 'editor')}"}

    ask = preflight(client, D1_VN, "POST", "authorization,content-type,idempotency-key")
    write = client.post(D1_VN, json=a_change(), headers={**key, "Origin": APP})
    reader_only = client.options(
        D1_VN,
        headers={"Origin": "https://other.example.org", "Access-Control-Request-Method": "POST"},
    )

    assert ask.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in ask.headers["Access-Control-Allow-Methods"]
    assert "idempotency-key" in ask.headers["Access-Control-Allow-Headers"].lower()
    assert write.status_code == 201
    assert write.headers["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Origin" not in reader_only.headers


def test_cors_can_be_turned_off(database_url):
    app = make_app(database_url, CORS_READ_ORIGINS="none")
    try:
        response = app.test_client().get("/v1/countries/VN", headers={"Origin": APP})
        assert "Access-Control-Allow-Origin" not in response.headers
    finally:
        close_app(app)
