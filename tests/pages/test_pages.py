"""The analysts' pages through the test client: content, dates, errors, CSV, caching."""

import csv
import io
import re
from pathlib import Path

import pytest

from tests.conftest import a_change

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PROBLEM = "application/problem+json"


def text(response) -> str:
    return response.get_data(as_text=True)


def row(html: str, row_id: str) -> str:
    """The HTML of one table row, by id."""
    start = html.index(f'id="{row_id}"')
    return html[start : html.index("</tr>", start)]


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text(response))))


# --- home and search ------------------------------------------------------------------------


def test_home_has_a_get_search_form_with_suggestions_and_what_is_pending(client):
    response = client.get("/")
    html = text(response)

    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert re.search(r'<form class="search" method="get" action="/search"', html)
    assert '<label for="q">' in html and 'list="country-names"' in html
    assert '<option value="Vietnam">VN · VNM</option>' in html
    pending = html[html.index('id="pending-title"') : html.index('id="recent-title"')]
    assert 'href="/countries/VN"' in pending
    assert 'announced <time datetime="2026-02-20">' in pending


@pytest.mark.parametrize("query", ["viet", "Viet Nam", "vnm", "704", "VN", "  vietnam  "])
def test_a_search_with_one_match_goes_to_the_country(client, query):
    response = client.get("/search", query_string={"q": query})

    assert response.status_code == 302
    assert response.headers["Location"] == "/countries/VN"


def test_a_search_with_several_matches_lists_them(client):
    response = client.get("/search?q=united")
    html = text(response)

    assert response.status_code == 200
    for code in ("GB", "US", "AE"):
        assert f'href="/countries/{code}"' in html


def test_a_search_with_no_match_says_so(client):
    response = client.get("/search?q=qqqqzzzz")

    assert response.status_code == 200
    assert "No country matches" in text(response)


def test_an_empty_search_returns_home(client):
    assert client.get("/search?q=+").headers["Location"] == "/"


# --- a country ------------------------------------------------------------------------------


def test_country_page_gives_the_verdict_the_pending_banner_and_the_sources(client):
    response = client.get("/countries/VN")
    html = text(response)

    assert response.status_code == 200
    assert "Export restrictions apply" in html
    assert "Pending removal from D:1 (National Security) and D:3 (Chemical &amp; Biological)" in html
    assert 'Announced <strong><time datetime="2026-02-20">2026-02-20</time></strong>' in html
    assert "on a date not yet announced" in html
    d1 = row(html, "entry-us-ear-d1")
    assert "pending removal" in d1 and "restrictions apply" in d1
    assert 'href="https://vtcnews.vn/' in d1
    assert 'Answering for <strong><time datetime="2026-11-23">2026-11-23</time></strong> (today)' in html


def test_country_page_answers_for_as_of(client):
    html = text(client.get("/countries/VN?as_of=2016-11-03"))

    d5 = row(html, "entry-us-ear-d5")
    assert "s-listed" in d5 and "s-removed" not in d5
    assert 'value="2016-11-03"' in html  # the date picker shows the date answered for
    assert "s-removed" in row(text(client.get("/countries/VN?as_of=2016-11-05")), "entry-us-ear-d5")


def test_country_page_answers_as_known_at(client):
    html = text(client.get("/countries/VN", query_string={"known_at": "2020-01-01T00:00:00Z"}))

    assert "s-unknown" in row(html, "entry-us-ear-d1")  # no evidence on record yet: unknown, never not listed
    assert "as known at" in html and 'value="2020-01-01T00:00:00Z"' in html


def test_country_page_draws_a_timeline_lane_per_list(client):
    html = text(client.get("/countries/VN"))
    lists = client.get("/v1/lists?limit=500").get_json()["items"]

    svg = html[html.index("<svg viewBox") : html.index("</svg>")]
    assert svg.count('class="lane') == len(lists)
    assert "D:5: removed from 2016-11-04" in svg
    assert "D:1: pending removal from 2026-02-20" in svg
    assert 'fill="url(#p-pending-removal)"' in svg  # a pattern, not colour alone


def test_the_stylesheet_lines_lane_labels_up_with_the_svg_lanes():
    from service.pages import timeline

    css = (Path(__file__).parents[2] / "service" / "static" / "pages.css").read_text()
    assert f".lane-labels {{ padding-top: {timeline.AXIS_HEIGHT}px; }}" in css
    pitch, height = timeline.LANE_HEIGHT + timeline.LANE_GAP, timeline.LANE_HEIGHT
    assert f".lane-labels li {{ height: {pitch}px; line-height: {height}px;" in css


def test_pages_forbid_scripts_and_foreign_content(client):
    response = client.get("/countries/VN")

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_country_named_otherwise_redirects_to_its_code_keeping_the_date(client):
    response = client.get("/countries/vnm?as_of=2016-11-03")

    assert response.status_code == 301
    assert response.headers["Location"] == "/countries/VN?as_of=2016-11-03"


def test_country_page_links_to_its_json_and_csv(client):
    html = text(client.get("/countries/VN?as_of=2016-11-03"))

    assert 'href="/v1/countries/VN?as_of=2016-11-03"' in html
    assert 'href="/countries/VN/statuses.csv?as_of=2016-11-03"' in html
    assert client.get("/v1/countries/VN?as_of=2016-11-03").status_code == 200


def test_country_csv_holds_what_the_page_shows(client):
    response = client.get("/countries/VN/statuses.csv?as_of=2016-11-03")
    rows = {r["list_id"]: r for r in csv_rows(response)}

    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="exportctl-VN-2016-11-03.csv"'
    assert len(rows) == len(client.get("/v1/lists?limit=500").get_json()["items"])
    assert rows["us-ear-d5"]["status"] == "listed"
    assert rows["us-ear-d5"]["restrictions_apply"] == "True"
    assert rows["us-ear-d1"]["status"] == "unknown"  # no evidence of D:1 before 2025
    today = {r["list_id"]: r for r in csv_rows(client.get("/countries/VN/statuses.csv"))}
    assert today["us-ear-d1"]["status"] == "pending_removal"
    assert today["us-ear-d1"]["announced_on"] == "2026-02-20"
    assert "vtcnews.vn" in today["us-ear-d1"]["sources"]


# --- lists ----------------------------------------------------------------------------------


def test_list_page_shows_authority_basis_completeness_members_and_history(client):
    html = text(client.get("/lists/us-ear-d1"))

    assert "Bureau of Industry and Security" in html
    assert "15 CFR Part 740, Supplement No. 1, Country Group D, column D:1" in html
    assert "Complete from" in html
    members = html[html.index('id="members-title"') : html.index('id="history-title"')]
    assert 'href="/countries/VN">Vietnam</a>' in members
    assert 'href="/countries/CN">China</a>' in members
    assert 'href="/v1/lists/us-ear-d1/entries"' in html


def test_list_page_filters_members_by_status(client):
    html = text(client.get("/lists/us-ear-d1?status=pending_removal"))
    members = html[html.index('id="members-title"') : html.index('id="history-title"')]

    assert 'href="/countries/VN">Vietnam</a>' in members
    assert "/countries/CN" not in members
    assert '<option value="pending_removal" selected>' in html


def test_list_page_on_a_date_links_members_to_that_date(client):
    html = text(client.get("/lists/us-ear-d5?as_of=2016-11-03"))

    assert 'href="/countries/VN?as_of=2016-11-03">Vietnam</a>' in html
    assert 'href="/countries/VN">Vietnam</a>' in text(client.get("/lists/us-ear-d5"))  # today: no date


def test_list_csv_with_a_status_filter(client):
    response = client.get("/lists/us-ear-d1/members.csv?status=pending_removal")

    assert [r["country"] for r in csv_rows(response)] == ["VN"]
    assert len(csv_rows(client.get("/lists/us-ear-d1/members.csv"))) > 10


def test_lists_index_links_every_list(client):
    html = text(client.get("/lists"))

    assert html.count('href="/lists/us-ear-') == 14


# --- recent changes -------------------------------------------------------------------------


def test_recent_changes_come_from_the_feed_newest_first(client, editor):
    client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)
    html = text(client.get("/changes"))

    first = html[html.index("<tbody>") : html.index("</tr>", html.index("<tbody>"))]
    assert 'href="/countries/VN">Vietnam</a>' in first and "s-removed" in first
    assert 'href="/v1/events"' in html and 'href="/v1/events.atom"' in html


def test_recent_changes_filter_by_country_and_list(client):
    html = text(client.get("/changes?country=vietnam&list=us-ear-d5"))
    body = html[html.index("<tbody>") : html.index("</tbody>")]

    assert body.count("<tr>") == 1  # D:5 removed (the listing before it is an observation: no event)
    assert "/countries/VN" in body and "/countries/CN" not in body
    assert 'href="/v1/events?country=vietnam&amp;list=us-ear-d5"' in html


def test_recent_changes_csv(client):
    rows = csv_rows(client.get("/changes.csv?limit=5"))

    assert len(rows) == 5
    assert set(rows[0]) >= {"event", "occurred_at", "type", "country", "list_id", "status", "sources"}


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(client, editor):
    change = a_change(status="pending_removal", effective_on="2026-11-20", note='=HYPERLINK("http://x.test")')
    client.post("/v1/lists/us-ear-d1/entries/CN/changes", json=change, headers=editor)

    rows = {r["country"]: r for r in csv_rows(client.get("/lists/us-ear-d1/members.csv"))}
    assert rows["CN"]["note"] == '\'=HYPERLINK("http://x.test")'


# --- caching: the API's machinery -----------------------------------------------------------


def test_pages_have_strong_etags_and_answer_304_until_the_data_changes(client, editor):
    first = client.get("/countries/VN")
    etag = first.headers["ETag"]

    again = client.get("/countries/VN", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert first.headers["Cache-Control"] == "no-cache"

    client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)
    changed = client.get("/countries/VN", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert "s-removed" in row(text(changed), "entry-us-ear-d1")


# --- errors ---------------------------------------------------------------------------------


def test_an_unknown_country_is_a_404_page_with_suggestions(client):
    response = client.get("/countries/Vietnm")
    html = text(response)

    assert response.status_code == 404
    assert response.content_type == "text/html; charset=utf-8"
    assert "Unknown country" in html
    assert 'href="/countries/VN">Vietnam</a>' in html


def test_an_unknown_list_is_a_404_page(client):
    response = client.get("/lists/nope")

    assert response.status_code == 404
    assert "Unknown list" in text(response)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/countries/VN?as_of=2026-13-01", "as_of"),
        ("/countries/VN?as_of=yesterday", "as_of"),
        ("/countries/VN?known_at=2026-03-01", "known_at"),
        ("/countries/VN/statuses.csv?as_of=x", "as_of"),
        ("/lists/us-ear-d1?status=gone", "status"),
        ("/lists/us-ear-d1/members.csv?status=gone", "status"),
        ("/changes?limit=many", "limit"),
        ("/changes?limit=%EF%BC%92", "limit"),  # decimal digits only, as the API's (second probe)
        ("/changes.csv?limit=1_2", "limit"),
        ("/changes.csv?limit=%2B2", "limit"),
        ("/changes?country=Atlantis", "country"),
        ("/changes?list=nope", "list"),
    ],
)
def test_bad_parameters_are_a_422_page_naming_the_field(client, url, field):
    response = client.get(url)

    assert response.status_code == 422
    assert response.content_type == "text/html; charset=utf-8"
    assert f"<code>{field}</code>" in text(response)


@pytest.mark.parametrize(
    "url",
    [
        "/countries/VN?as_of=0001-01-01",
        "/countries/VN?as_of=9999-12-31",
        "/countries/VN?known_at=0001-01-01T00:00:00Z",
        "/lists/us-ear-d1?as_of=9999-12-31",
        "/changes?limit=-5",
        "/changes?limit=99999999999999999999",
        "/search?q=" + "x" * 5000,
        "/countries/" + "%C3%A9" * 50,
    ],
)
def test_no_input_produces_a_500(client, url):
    assert client.get(url).status_code < 500


def test_unknown_urls_are_pages_for_browsers_and_problems_for_api_clients(client):
    page = client.get("/no/such/page", headers=HTML)
    api = client.get("/no/such/page", headers={"Accept": "application/json"})
    under_v1 = client.get("/v1/no/such", headers=HTML)

    assert page.status_code == 404 and page.content_type == "text/html; charset=utf-8"
    assert api.status_code == 404 and api.content_type == PROBLEM
    assert under_v1.status_code == 404 and under_v1.content_type == PROBLEM
    assert client.get("/v1/countries/XX", headers=HTML).content_type == PROBLEM


# --- Swagger UI, from a package -------------------------------------------------------------


def test_swagger_ui_is_served_from_the_apps_own_assets(client):
    response = client.get("/docs/swagger/")
    html = text(response)

    assert response.status_code == 200
    scripts = re.findall(r'<script src="([^"]+)"', html) + re.findall(r'href="([^"]+\.css)"', html)
    assert scripts and all(src.startswith("/docs/swagger/") for src in scripts)
    assert '"url": "/openapi.yaml"' in html
    with client.get("/docs/swagger/swagger-ui-bundle.js") as bundle:
        assert bundle.status_code == 200 and len(bundle.data) > 100_000
