"""GET /v1/changes?from=&to=: what changed between two dates (what to re-screen)."""

from datetime import timedelta

import pytest
from sqlalchemy import event

from service import clock, db
from tests.conftest import a_change


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
    assert body["count"] == len(body["entries"])
    assert body["unknown_count"] == len(body["unknown"])
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
        ("to=2026-01-01", "from"),
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("from=2026-06-01&to=2026-01-01", "to"),
        ("from=2026-01-01&to=1800-01-01", "to"),
        ("from=2026-01-01&known_at=soon", "known_at"),
        ("from=2026-01-01&jurisdiction=Atlantis", "jurisdiction"),
        ("from=2026-01-01&bogus=1", "bogus"),
    ],
)
def test_bad_queries_are_problems_naming_the_field(client, query, field):
    response = client.get(f"/v1/changes?{query}")
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize("query", ["country=Atlantis", "list=us-ear-z9"])
def test_unknown_country_or_list_is_404(client, query):
    response = client.get(f"/v1/changes?from=2026-01-01&{query}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
