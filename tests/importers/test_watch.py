"""`exportctl watch` against a local HTTP server standing in for the eCFR and Federal Register APIs."""

import json

import pytest
from sqlalchemy import select
from werkzeug import Response

from service import close_app
from service.importers.fetch import Fetcher
from service.models import AuditEntry, Proposal
from tests.conftest import make_app
from tests.importers.helpers import ECFR_DECEMBER, FILED_JSON, RULE_JSON, RULE_XML, counts

TITLES = {
    "titles": [
        {"number": 14, "latest_issue_date": "2026-11-30"},
        {"number": 15, "latest_issue_date": "2026-12-01", "up_to_date_as_of": "2026-12-01"},
    ]
}
ECFR_PATH = "/api/versioner/v1/full/2026-12-01/title-15.xml"


@pytest.fixture
def remote(httpserver):
    """The remote APIs, each answering once with its fixture (ordered handlers are not needed)."""
    rule = json.loads(RULE_JSON.read_text(encoding="utf-8"))
    rule["full_text_xml_url"] = httpserver.url_for("/documents/full_text/xml/2026/11/27/2026-23871.xml")
    filed = json.loads(FILED_JSON.read_text(encoding="utf-8"))
    unrelated = {  # BIS, but not about country groups: not proposed
        **filed,
        "document_number": "2026-23999",
        "title": "Additions to the Entity List",
        "toc_doc": "Entity List; Additions",
        "subject_1": "Additions to the Entity List",
    }
    httpserver.expect_request("/api/versioner/v1/titles").respond_with_json(TITLES)
    httpserver.expect_request(ECFR_PATH, query_string={"part": "740"}).respond_with_data(
        ECFR_DECEMBER.read_bytes(), content_type="application/xml"
    )
    httpserver.expect_request("/api/v1/documents.json").respond_with_json(
        {"count": 1, "total_pages": 1, "results": [rule]}
    )
    httpserver.expect_request("/documents/full_text/xml/2026/11/27/2026-23871.xml").respond_with_data(
        RULE_XML.read_bytes(), content_type="application/xml"
    )
    httpserver.expect_request("/api/v1/public-inspection-documents/current.json").respond_with_json(
        {"count": 2, "results": [filed, unrelated]}
    )
    return httpserver


@pytest.fixture
def watch_app(database_url, remote, frozen_clock):
    frozen_clock.advance(days=9)
    app = make_app(
        database_url,
        ECFR_BASE_URL=remote.url_for(""),
        FEDERAL_REGISTER_BASE_URL=remote.url_for(""),
        IMPORT_BACKOFF="0s",
        IMPORT_RETRIES=2,
        IMPORT_READ_TIMEOUT="5s",
    )
    yield app
    close_app(app)


def watch(app, *args):
    return app.test_cli_runner().invoke(args=["watch", *args])


def test_one_pass_reads_every_source_and_proposes(watch_app, remote, session):
    with watch_app.app_context():
        result = watch(watch_app, "--once")

    assert result.exit_code == 0, result.output
    proposals = session.scalars(select(Proposal).order_by(Proposal.id)).all()
    assert [(p.origin, p.kind, p.status) for p in proposals] == [
        ("ecfr", "change", "removed"),  # VN off D:1 in the eCFR of 2026-12-01
        ("federal-register", "review", None),  # the filing: its text is a PDF, a person reads it
    ]  # the rule's own removal is already proposed (by the eCFR): not twice
    audit = session.scalars(
        select(AuditEntry.subject).where(AuditEntry.action.like("import.%")).order_by(AuditEntry.id)
    ).all()
    assert audit == ["document:ecfr:15-740:2026-12-01", "document:fr:2026-23871", "document:fr-pi:2026-23871"]
    requests = [request for request, _ in remote.log]
    assert {r.headers["User-Agent"] for r in requests} == {watch_app.config["IMPORT_USER_AGENT"]}
    documents = next(r for r in requests if r.path == "/api/v1/documents.json")
    assert documents.args.getlist("conditions[agencies][]") == ["industry-and-security-bureau"]
    assert documents.args["conditions[type][]"] == "RULE"
    assert documents.args["conditions[publication_date][gte]"] == "2026-11-02"  # 30 days back


def test_a_second_pass_proposes_nothing_new(watch_app, session):
    with watch_app.app_context():
        assert watch(watch_app, "--once").exit_code == 0
        before = counts(session)
        assert watch(watch_app, "--once").exit_code == 0

    assert counts(session)["Proposal"] == before["Proposal"]


def test_a_failing_fetch_is_retried_with_backoff(watch_app, remote, session):
    remote.clear()
    remote.expect_oneshot_request("/api/versioner/v1/titles").respond_with_data("busy", status=503)
    remote.expect_request("/api/versioner/v1/titles").respond_with_json(TITLES)
    remote.expect_request(ECFR_PATH).respond_with_data(ECFR_DECEMBER.read_bytes())
    remote.expect_request("/api/v1/documents.json").respond_with_json({"count": 0, "description": "none"})
    remote.expect_request("/api/v1/public-inspection-documents/current.json").respond_with_json(
        {"results": []}
    )

    with watch_app.app_context():
        result = watch(watch_app, "--once")

    assert result.exit_code == 0, result.output
    assert [r.path for r, _ in remote.log][:2] == ["/api/versioner/v1/titles"] * 2
    assert [r.status_code for _, r in remote.log][:2] == [503, 200]
    assert [p.status for p in session.scalars(select(Proposal))] == ["removed"]


def test_a_fetch_that_keeps_failing_is_logged_and_leaves_nothing_half_done(
    watch_app, remote, session, caplog
):
    remote.clear()
    remote.expect_request("/api/versioner/v1/titles").respond_with_json(TITLES)
    remote.expect_request(ECFR_PATH).respond_with_data("down", status=502)
    remote.expect_request("/api/v1/documents.json").respond_with_json({"count": 0, "description": "none"})
    remote.expect_request("/api/v1/public-inspection-documents/current.json").respond_with_json(
        {"results": []}
    )
    before = counts(session)

    with watch_app.app_context():
        result = watch(watch_app, "--once")

    assert result.exit_code == 1
    assert "HTTP 502" in result.output
    assert sum(r.path == ECFR_PATH for r, _ in remote.log) == 3  # the first try and two retries
    assert counts(session) == before  # nothing from the eCFR; the other sources had nothing new
    assert any("fetch failed" in record.getMessage() for record in caplog.records)


def test_a_response_in_a_shape_not_recognised_fails_that_source_only(watch_app, remote, session):
    remote.clear()
    remote.expect_request("/api/versioner/v1/titles").respond_with_json({"titles": "none"})
    remote.expect_request("/api/v1/documents.json").respond_with_handler(
        lambda request: Response(RULE_JSON.read_bytes(), content_type="application/json")
    )  # a document, not a page
    remote.expect_request("/api/v1/public-inspection-documents/current.json").respond_with_json(
        {"results": [json.loads(FILED_JSON.read_text(encoding="utf-8"))]}
    )

    with watch_app.app_context():
        result = watch(watch_app, "--once")

    assert result.exit_code == 1
    assert "title 15" in result.output
    assert "no `results`" in result.output
    assert [p.document_key for p in session.scalars(select(Proposal))] == ["fr-pi:2026-23871"]


def test_watching_is_off_unless_configured(app):
    result = watch(app)

    assert result.exit_code == 1
    assert "EXPORTCTL_IMPORT_WATCH" in result.output


def test_timeouts_and_user_agent_come_from_the_configuration(app):
    fetcher = Fetcher(app.config)
    assert fetcher.timeout == (5.0, 60.0)
    assert fetcher.session.headers["User-Agent"].startswith("exportctl-importer/")
    fetcher.close()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_worker_runs_the_import_schedule_only_when_configured(database_url, monkeypatch, enabled):
    from service.importers import watch as watch_module
    from service.webhooks.worker import DeliveryWorker

    passes = []

    def one_pass(watcher, stop, interval):
        passes.append(interval)

    monkeypatch.setattr(watch_module, "watch_on_schedule", one_pass)
    monkeypatch.setattr(DeliveryWorker, "run", lambda self, stop: None)  # deliver nothing, return
    app = make_app(database_url, IMPORT_WATCH=enabled, IMPORT_WATCH_INTERVAL="1h")
    try:
        result = app.test_cli_runner().invoke(args=["worker"])
    finally:
        close_app(app)

    assert result.exit_code == 0, result.output
    assert passes == ([3600.0] if enabled else [])
