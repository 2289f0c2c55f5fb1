"""Defects an outside probe found (issue 7's closing run): each failed before its fix."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.models import AuditEntry, ControlList
from tests.conftest import a_change


def test_patching_a_list_honours_if_match(client, admin, session):
    etag = client.get("/v1/lists/us-ear-d1").headers["ETag"]

    stale = client.patch(
        "/v1/lists/us-ear-d1", json={"name": "Renamed"}, headers={**admin, "If-Match": '"not-this-one"'}
    )
    assert stale.status_code == 412
    assert stale.content_type == "application/problem+json"
    session.expire_all()
    assert session.get(ControlList, "us-ear-d1").name != "Renamed"

    fresh = client.patch("/v1/lists/us-ear-d1", json={"name": "Renamed"}, headers={**admin, "If-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag  # the new state's tag, for the next conditional write
    again = client.patch("/v1/lists/us-ear-d1", json={"name": "Again"}, headers={**admin, "If-Match": etag})
    assert again.status_code == 412  # someone (we) changed it since that tag was read


def test_the_audit_log_keeps_what_a_list_update_replaced(client, admin, session):
    before = client.get("/v1/lists/us-ear-d1").get_json()

    client.patch("/v1/lists/us-ear-d1", json={"authority": "Someone else"}, headers=admin)

    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "list.updated").order_by(AuditEntry.id.desc())
    ).first()
    assert entry.details["authority"] == "Someone else"
    assert entry.details["previous"] == {"authority": before["authority"]}


def test_a_patch_cannot_strip_a_list_of_its_sources(client, admin, session):
    session.expire_all()
    response = client.patch("/v1/lists/us-ear-d1", json={"sources": []}, headers=admin)

    assert response.status_code == 422
    assert "sources" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=latin-1", "application/json; charset=utf-16"]
)
def test_a_json_body_declared_in_another_charset_is_a_415(client, editor, content_type, session):
    before = session.scalar(select(func.count()).select_from(AuditEntry))
    import json

    response = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes",
        data=json.dumps(a_change()).encode(),
        headers={**editor, "Content-Type": content_type},
    )

    assert response.status_code == 415
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_utf8_charset_is_fine(client, editor):
    import json

    response = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes",
        data=json.dumps(a_change()).encode(),
        headers={**editor, "Content-Type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 201


@pytest.mark.parametrize("known_at", ["2026-06-01t00:00:00z", "2026-06-01T00:00:00z", "2026-06-01t00:00:00Z"])
def test_known_at_accepts_the_lower_case_t_and_z_rfc_3339_allows(client, known_at):
    # RFC 3339 §5.6: "T" and "Z" may alternatively be lower case.
    upper = client.get("/v1/countries/VN?known_at=2026-06-01T00:00:00Z")
    response = client.get(f"/v1/countries/VN?known_at={known_at}")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["known_at"] == upper.get_json()["known_at"]


@pytest.mark.parametrize("known_at", ["0001-01-01T00:00:00Z", "1899-12-31T23:59:59Z"])
def test_known_at_before_1900_is_refused_like_dates(client, known_at):
    response = client.get(f"/v1/countries/VN?known_at={known_at}")

    assert response.status_code == 422
    assert "known_at" in response.get_json()["errors"]


def _new_list(code: str) -> dict:
    return {
        "id": "probe-dup",
        "code": code,
        "name": "A list",
        "authority": "Someone",
        "jurisdiction": "US",
        "legal_basis": "A rule",
        "effect": "restrictive",
        "url": "https://example.org/list",
        "sources": [{"title": "A rule", "publisher": "Someone", "url": "https://example.org/list"}],
    }


@pytest.mark.parametrize("code", ["D:2", "d:2"])
def test_a_list_code_already_taken_is_refused_at_creation(client, admin, session, code):
    # `?list=D:2` and receipts name lists by code: a second D:2 broke them for everyone.
    response = client.post("/v1/lists", json=_new_list(code), headers=admin)

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert "code" in response.get_json()["detail"]
    session.expire_all()
    assert session.get(ControlList, "probe-dup") is None
    assert client.get("/v1/countries/VN?list=D:2").status_code == 200


def test_a_list_code_already_taken_is_refused_by_a_patch(client, admin, session):
    response = client.patch("/v1/lists/us-ear-d1", json={"code": "d:5"}, headers=admin)

    assert response.status_code == 409
    session.expire_all()
    assert session.get(ControlList, "us-ear-d1").code == "D:1"
    # A list may keep (or re-case) its own code.
    assert client.patch("/v1/lists/us-ear-d1", json={"code": "D:1"}, headers=admin).status_code == 200


def test_changes_says_from_is_after_today_when_to_is_left_out(client, frozen_clock):
    later = (frozen_clock.now.date() + timedelta(days=30)).isoformat()
    response = client.get(f"/v1/changes?from={later}")

    assert response.status_code == 422
    message = response.get_json()["errors"]["from"][0]
    assert "after" in message and "today" in message


def test_metrics_name_their_charset_once(client):
    content_type = client.get("/metrics").headers["Content-Type"]

    assert content_type.count("charset") == 1


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/countries/VN?as_of=2026-01-01&as_of=2026-02-01", "as_of"),
        ("/v1/events?after=1&after=5", "after"),
        ("/v1/changes?from=2025-01-01&to=2026-01-01&to=2026-02-01", "to"),
    ],
)
def test_a_single_valued_query_parameter_given_twice_is_refused(client, path, name):
    # Which of the two would be answered for? As a JSON key given twice, it is a 422.
    response = client.get(path)

    assert response.status_code == 422
    assert response.get_json()["errors"][name] == ["Given more than once."]


def test_a_list_query_parameter_may_repeat(client):
    assert client.get("/v1/countries/VN?list=us-ear-d1&list=us-ear-d3").status_code == 200


def test_a_request_id_that_holds_a_key_is_replaced_not_published(client, editor):
    """An X-Request-ID is echoed, stored with what the request changed and shown to anyone who
    reads the change; one that carries an API key (found by the second outside probe: the log
    blanked it, the history published it) is replaced by a generated id."""
    key = editor["Authorization"].split(" ", 1)[1]
    response = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes",
        json=a_change(),
        headers={**editor, "X-Request-ID": f"req_{key}"},
    )
    assert response.status_code == 201
    assert key not in response.headers["X-Request-ID"]
    assert len(response.headers["X-Request-ID"]) == 32
    history = client.get("/v1/countries/VN/history")
    assert key not in history.get_data(as_text=True)
    assert (
        client.get("/v1/countries/VN", headers={"X-Request-ID": "req-1234"}).headers["X-Request-ID"]
        == "req-1234"
    )
