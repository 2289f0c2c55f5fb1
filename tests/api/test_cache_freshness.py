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
