"""Large responses are compressed for clients that accept it, with their own ETag, and still 304."""

import gzip

import pytest

from service import close_app
from tests.conftest import make_app

GZIP = {"Accept-Encoding": "gzip"}


def test_a_country_document_is_gzipped_when_accepted(client):
    plain = client.get("/v1/countries/VN")
    packed = client.get("/v1/countries/VN", headers=GZIP)

    assert len(plain.data) > 1024
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert len(packed.data) < len(plain.data) / 2
    assert gzip.decompress(packed.data) == plain.data
    for response in (plain, packed):
        assert "Accept-Encoding" in response.headers["Vary"]
    assert packed.headers["ETag"] != plain.headers["ETag"]


def test_if_none_match_answers_304_for_each_encoding(client):
    plain = client.get("/v1/countries/VN")
    packed = client.get("/v1/countries/VN", headers=GZIP)

    again_packed = client.get("/v1/countries/VN", headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    again_plain = client.get("/v1/countries/VN", headers={"If-None-Match": plain.headers["ETag"]})
    # An identity validator does not name the gzipped representation: send it whole.
    crossed = client.get("/v1/countries/VN", headers={**GZIP, "If-None-Match": plain.headers["ETag"]})

    assert again_packed.status_code == 304
    assert again_packed.headers["ETag"] == packed.headers["ETag"]
    assert again_plain.status_code == 304
    assert crossed.status_code == 200
    assert crossed.headers["Content-Encoding"] == "gzip"


def test_small_documents_and_refused_encodings_stay_identity(client):
    small = client.get("/healthz", headers=GZIP)
    refused = client.get("/v1/countries/VN", headers={"Accept-Encoding": "gzip;q=0, identity"})

    assert "Content-Encoding" not in small.headers
    assert "Content-Encoding" not in refused.headers


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip;q=0", None),  # RFC 9110 12.5.3: q=0 is "not acceptable"
        ("gzip;q=0, br;q=0", None),
        ("gzip;q=0, *", "br"),  # anything but gzip
        ("br;q=0, gzip;q=0.5", "gzip"),
        ("*;q=0, identity", None),
        ("x-gzip;q=0, *", "br"),  # RFC 9110 8.4.1.3: x-gzip is gzip
        ("x-gzip, br;q=0", "gzip"),
        ("X-GZIP;q=0, br;q=0, *", None),
    ],
)
@pytest.mark.parametrize("path", ["/v1/countries/VN", "/countries/VN", "/openapi.yaml"])
def test_a_refused_coding_is_never_used(client, path, accept, coding):
    """Cached documents, pages (flask-compress) and files alike: the first two asks, and the
    third (a replay of a cached document) too."""
    for _ in range(3):
        response = client.get(path, headers={"Accept-Encoding": accept})
        assert response.status_code == 200
        assert response.headers.get("Content-Encoding") == coding, (path, accept)


def test_uncached_responses_are_compressed_by_flask_compress(client):
    page = client.get("/countries/VN", headers=GZIP)  # the analysts' HTML page

    assert page.status_code == 200
    assert page.headers["Content-Encoding"] == "gzip"
    assert b"<html" in gzip.decompress(page.data).lower()


@pytest.fixture
def plain_app(database_url):
    app = make_app(database_url, COMPRESS_RESPONSES=False)
    yield app
    close_app(app)


def test_compression_can_be_turned_off(plain_app):
    client = plain_app.test_client()

    assert "Content-Encoding" not in client.get("/v1/countries/VN", headers=GZIP).headers
    assert "Content-Encoding" not in client.get("/countries/VN", headers=GZIP).headers


def test_the_gzipped_entry_tag_works_for_if_match(client, editor):
    from tests.conftest import a_change

    entry = client.get("/v1/lists/us-ear-d1/entries/VN", headers=GZIP)
    assert entry.headers.get("Content-Encoding") == "gzip"
    tag = entry.headers["ETag"]

    first = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers={**editor, "If-Match": tag}
    )
    stale = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes",
        json=a_change(status="listed", effective_on="2026-11-21"),
        headers={**editor, "If-Match": tag},
    )

    assert first.status_code == 201
    assert stale.status_code == 412


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/v1/snapshot", "zstd"),  # streamed: flask-compress compresses it (zstd or deflate)
        ("/v1/snapshot", "deflate"),
        ("/v1/countries/VN", "gzip;q=0, br"),  # a cached document, when gzip is refused
        ("/v1/snapshot?format=jsonl", "gzip"),
    ],
)
def test_the_etag_a_compressed_response_carries_gets_its_304(client, path, accept):
    """flask-compress gives a response it compresses its own ETag (`"...:br"`); sent back in
    If-None-Match, it is the representation the client holds: a 304, not the whole body again."""
    first = client.get(path, headers={"Accept-Encoding": accept})
    assert first.data  # read a streamed body to its end

    again = client.get(path, headers={"Accept-Encoding": accept, "If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    assert first.headers.get("Content-Encoding") == (None if accept == "gzip" else accept.split()[-1])
    assert again.status_code == 304
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.data == b""


@pytest.mark.parametrize("path", ["/v1/snapshot", "/v1/snapshot?format=jsonl"])
@pytest.mark.parametrize("accept", ["br", "deflate", "zstd", "gzip, br"])
def test_a_compressed_snapshot_is_streamed_not_built_whole_first(client, path, accept):
    """Its bytes leave as they are made, whatever the client accepts.

    - Checking If-None-Match after compressing made werkzeug count the body's length first: the
      whole file built before the first byte, even for a 304 (second outside probe).
    - flask-compress feeds a brotli compressor chunk by chunk and never flushes it; brotli keeps
      ~8 MB before it writes anything, so a br snapshot came out in one piece at the end (third
      probe). Streams are not offered br."""
    response = client.get(path, headers={"Accept-Encoding": accept}, buffered=False)

    chunks = [chunk for chunk in response.response if chunk]
    response.close()

    assert response.status_code == 200
    assert "Content-Length" not in response.headers
    assert response.headers.get("Content-Encoding") in (None, "deflate", "zstd")
    assert len(chunks) > 1
