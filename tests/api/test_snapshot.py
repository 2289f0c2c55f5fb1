"""GET /v1/snapshot: every entry, streamed as CSV or JSON Lines, with ETag and versions."""

import csv
import io
import json
from datetime import timedelta

import pytest

from service import clock
from tests.conftest import a_change


def test_the_csv_has_a_row_per_entry_and_opens_in_a_spreadsheet(client):
    response = client.get("/v1/snapshot?format=csv")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    assert "\r\n" in body
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    entries = json.loads(client.get("/v1/lists/us-ear-d1/entries?limit=500").get_data())["items"]
    d1 = [r for r in rows if r["list_id"] == "us-ear-d1"]
    assert {r["country"] for r in d1} >= {e["country"]["alpha_2"] for e in entries}
    [vn] = [r for r in d1 if r["country"] == "VN"]
    assert vn["status"] == "pending_removal"
    assert vn["restrictions_apply"] == "true"
    assert vn["announced_on"] == "2026-02-20"
    assert vn["source_urls"]
    assert len({(r["list_id"], r["country"]) for r in rows}) == len(rows)


def test_jsonl_rows_carry_the_api_fields(client):
    response = client.get("/v1/snapshot?format=jsonl")
    assert response.status_code == 200
    assert response.mimetype == "application/jsonl"
    lines = response.get_data(as_text=True).splitlines()
    rows = [json.loads(line) for line in lines]
    [vn] = [r for r in rows if r["list"]["id"] == "us-ear-d1" and r["country"]["alpha_2"] == "VN"]
    api = client.get("/v1/lists/us-ear-d1/entries/VN").get_json()
    for field in ("status", "restrictions_apply", "basis", "since", "pending", "sources", "evidence", "list"):
        assert vn[field] == api[field], field
    csv_rows = client.get("/v1/snapshot").get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert len(csv_rows) - 1 == len(rows)


def test_headers_name_the_versions_and_the_etag_moves_with_the_data(client, editor):
    first = client.get("/v1/snapshot")
    etag = first.headers["ETag"]
    sequence = int(first.headers["X-Event-Sequence"])
    version = int(first.headers["X-Data-Version"])
    first.close()
    assert client.get("/v1/snapshot", headers={"If-None-Match": etag}).status_code == 304
    other = client.get("/v1/snapshot?format=jsonl")
    assert other.headers["ETag"] != etag
    other.close()
    client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)
    after = client.get("/v1/snapshot", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert int(after.headers["X-Event-Sequence"]) > sequence
    assert int(after.headers["X-Data-Version"]) > version
    after.close()
    events = client.get(f"/v1/events?after={sequence}").get_json()["items"]
    assert [e["type"] for e in events] == ["entry.status_changed"]


def test_as_of_and_known_at_answer_for_another_moment(client, editor):
    before = (clock.utcnow() - timedelta(seconds=1)).isoformat()
    client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)

    def vn(query):
        body = client.get("/v1/snapshot", query_string={"format": "jsonl", **query}).get_data(as_text=True)
        rows = [json.loads(line) for line in body.splitlines()]
        return next(r for r in rows if r["list"]["id"] == "us-ear-d1" and r["country"]["alpha_2"] == "VN")

    assert vn({})["status"] == "removed"
    assert vn({"known_at": before})["status"] == "pending_removal"
    assert vn({"as_of": "2026-11-19"})["status"] == "pending_removal"
    assert vn({"as_of": "2026-01-01"})["status"] == "listed"


@pytest.mark.parametrize(
    "query, field",
    [("format=xlsx", "format"), ("as_of=2026-02-30", "as_of"), ("known_at=noon", "known_at"), ("x=1", "x")],
)
def test_bad_queries_are_problems(client, query, field):
    response = client.get(f"/v1/snapshot?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_the_cli_exports_the_same_file(app, client, tmp_path):
    path = tmp_path / "all.csv"
    result = app.test_cli_runner().invoke(args=["export", "--format", "csv", "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_bytes().decode("utf-8") == client.get("/v1/snapshot").get_data(as_text=True)
