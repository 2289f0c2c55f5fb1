"""The lookup cache cannot go stale: any write to the tables it is built from moves the data version."""

from sqlalchemy import update

from service import db
from service.models import ControlList, Treatment


def test_a_writer_that_forgets_to_bump_the_version_cannot_make_the_cache_stale(app, client):
    before = client.get("/v1/lists/us-ear-d1")
    assert before.get_json()["name"] != "Renamed behind the API's back"

    with app.app_context(), db.database().sessionmaker() as session:
        control_list = session.get(ControlList, "us-ear-d1")
        control_list.name = "Renamed behind the API's back"  # no event, no explicit version bump
        session.commit()

    after = client.get("/v1/lists/us-ear-d1", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.get_json()["name"] == "Renamed behind the API's back"


def test_a_bulk_update_of_a_cached_table_moves_the_version_too(app, client):
    before = client.get("/v1/lists/us-ear-d1")
    assert before.get_json()["treatments"]

    with app.app_context(), db.database().sessionmaker() as session:
        session.execute(update(Treatment).values(note="Changed in bulk"))
        session.commit()

    after = client.get("/v1/lists/us-ear-d1", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert {t["note"] for t in after.get_json()["treatments"]} == {"Changed in bulk"}


def test_writes_to_other_tables_leave_the_cache_alone(app, client, editor):
    etag = client.get("/v1/countries/VN").headers["ETag"]
    client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=editor)  # not a cached table

    assert client.get("/v1/countries/VN", headers={"If-None-Match": etag}).status_code == 304


def test_the_document_cache_is_bounded_in_bytes_not_documents(build_app, database_url):
    """A feed page weighs as much as dozens of lookups: the cache evicts by the bytes it holds."""
    paths = ["/v1/countries/VN", "/v1/countries/CN", "/v1/countries/DE", "/v1/events?limit=20"]
    measuring = build_app(database_url)
    weights = []
    for path in paths:
        before = measuring.extensions["exportctl.documents"].bytes
        assert measuring.test_client().get(path).status_code == 200
        weights.append(measuring.extensions["exportctl.documents"].bytes - before)
    # Room for the three lookups, not for the page beside them (but for the page alone); documents
    # have half the budget (a quarter is for the parts lookups are assembled from, a quarter for
    # whole responses replayed: service.replay).
    limit = sum(weights[:3]) + weights[3] // 2
    app = build_app(database_url, CACHE_MAX_BYTES=str(limit * 2))
    client = app.test_client()
    cache = app.extensions["exportctl.documents"]
    assert limit <= cache.max_bytes < sum(weights)

    etags = [client.get(path).headers["ETag"] for path in paths[:3]]
    assert len(cache) == 3
    page = client.get(paths[3])

    assert page.status_code == 200
    assert cache.bytes <= cache.max_bytes
    assert len(cache) < 4
    # The least recently used lookup (VN) went first; the page itself is kept.
    assert client.get(paths[0], headers={"If-None-Match": etags[0]}).status_code == 304  # rebuilt, same bytes
    assert client.get(paths[3], headers={"If-None-Match": page.headers["ETag"]}).status_code == 304


def test_a_document_larger_than_the_whole_cache_is_served_but_not_kept(build_app, database_url):
    app = build_app(database_url, CACHE_MAX_BYTES="20KB")
    client = app.test_client()

    page = client.get("/v1/events?limit=100")

    assert page.status_code == 200 and len(page.data) > 20_000
    assert len(app.extensions["exportctl.documents"]) == 0
    assert app.extensions["exportctl.documents"].bytes == 0


def test_the_cache_size_is_a_setting_in_bytes():
    from service.config import load_config

    assert load_config({})["CACHE_MAX_BYTES"] == 64_000_000
    assert load_config({"EXPORTCTL_CACHE_MAX_BYTES": "256MiB"})["CACHE_MAX_BYTES"] == 256 * 2**20
    assert load_config({"EXPORTCTL_CACHE_MAX_BYTES": "1000"})["CACHE_MAX_BYTES"] == 1000


def test_lookups_at_dates_are_assembled_from_parts_no_document_can_push_out(app, client):
    """Each list's answer is kept once per decision, in a cache of its own: documents asked once
    (a lookup at some date) fill the documents' cache, never that one."""
    documents, parts = app.extensions["exportctl.documents"], app.extensions["exportctl.parts"]
    assert client.get("/v1/countries/VN?as_of=2020-01-01").status_code == 200
    held = len(parts)
    assert held > 0 and len(documents) == 1

    # Another date with the same decisions: a new document, no new part.
    assert client.get("/v1/countries/VN?as_of=2020-01-02").status_code == 200
    assert len(parts) == held and len(documents) == 2
    assert parts.max_bytes == app.config["CACHE_MAX_BYTES"] // 4
