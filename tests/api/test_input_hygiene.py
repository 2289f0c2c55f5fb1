"""Text that no record may hold, bodies that would drop a value, and other edges of input (issue 7)."""

import json
from datetime import date, timedelta
from xml.etree import ElementTree

import pytest
import yaml
from sqlalchemy import func, select

from service import db
from service.domain.audit import Actor
from service.domain.lists import create_list
from service.models import AuditEntry, ControlList, Event, StatusChange, Webhook
from tests.api.test_list_admin import EU_LIST
from tests.conftest import a_change, a_source

PROBLEM = "application/problem+json"
D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"
SURROGATE = "\ud800"


def counts(session):
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (StatusChange, Event, ControlList, Webhook, AuditEntry)
    )


def post_raw(client, url, document, headers):
    """POST a body exactly as written: json.dumps escapes a lone surrogate as \\ud800, as a client would."""
    return client.post(url, data=json.dumps(document), content_type="application/json", headers=headers)


def assert_refused(response, field):
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    assert field in response.get_json()["errors"], response.get_json()


@pytest.mark.parametrize(
    ("url_and_body", "field"),
    [
        (lambda: (D1_VN, a_change(note=f"bad {SURROGATE}")), "note"),
        (lambda: (D1_VN, a_change(sources=[a_source(title=f"t{SURROGATE}")])), "sources.0.title"),
        (lambda: (D1_VN, a_change(sources=[a_source(citation=SURROGATE)])), "sources.0.citation"),
        (lambda: (D1_VN, a_change(sources=[a_source(publisher=SURROGATE)])), "sources.0.publisher"),
        (lambda: ("/v1/lists", {**EU_LIST, "code": SURROGATE}), "code"),
        (lambda: ("/v1/lists", {**EU_LIST, "name": f"x{SURROGATE}"}), "name"),
        (lambda: ("/v1/lists", {**EU_LIST, "description": SURROGATE}), "description"),
        (lambda: ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "description": SURROGATE}), "description"),
    ],
)
def test_a_lone_surrogate_in_any_text_field_is_a_422_naming_it(client, admin, session, url_and_body, field):
    url, body = url_and_body()
    before = counts(session)

    assert_refused(post_raw(client, url, body, admin), field)
    assert counts(session) == before


@pytest.mark.parametrize(
    ("url_and_body", "field"),
    [
        (lambda: ("/v1/lists", {**EU_LIST, "code": "P\u0001"}), "code"),
        (lambda: ("/v1/lists", {**EU_LIST, "name": "EU\u007f"}), "name"),
        (lambda: ("/v1/lists", {**EU_LIST, "code": "P\n1"}), "code"),
        (lambda: ("/v1/lists", {**EU_LIST, "description": "ok\u001bescape"}), "description"),
        (lambda: (D1_VN, a_change(note="bell\u0007")), "note"),
        (lambda: (D1_VN, a_change(note="c1\u0085")), "note"),
        (lambda: (D1_VN, a_change(sources=[a_source(title="a\tb")])), "sources.0.title"),
        (lambda: ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "description": "x\u0002"}), "description"),
    ],
)
def test_control_characters_are_refused_naming_the_field(client, admin, session, url_and_body, field):
    url, body = url_and_body()
    before = counts(session)

    assert_refused(post_raw(client, url, body, admin), field)
    assert counts(session) == before


def test_tab_line_feed_and_carriage_return_stay_allowed_in_free_text(client, editor):
    note = "Line one.\r\n\tIndented line two."

    response = client.post(D1_VN, json=a_change(note=note), headers=editor)

    assert response.status_code == 201
    assert response.get_json()["change"]["note"] == note


def test_the_atom_feed_cannot_fail_on_stored_data(app, client, admin):
    """Data written before input was checked (or by a tool) must not break the feed for every reader."""
    with app.app_context():
        session = db.session()
        create_list(
            session,
            {
                **EU_LIST,
                "id": "legacy-list",
                "code": "P\u0001",
                "name": "Odd\u0085name\u001b[31m",
                "membership_complete_from": date(2021, 9, 9),
            },
            actor=Actor(name="legacy\u0002", request_id=None),
        )
        session.commit()

    response = client.get("/v1/events.atom")

    assert response.status_code == 200
    feed = ElementTree.fromstring(response.data)  # well-formed XML 1.0
    assert feed.find("{http://www.w3.org/2005/Atom}entry") is not None


def test_duplicate_keys_in_a_body_are_a_422(client, editor, session):
    before = counts(session)
    body = json.dumps(a_change())[:-1] + ', "status": "listed"}'

    response = client.post(D1_VN, data=body, content_type="application/json", headers=editor)

    assert_refused(response, "status")
    assert counts(session) == before


def test_duplicate_keys_in_a_nested_object_are_a_422(client, editor, session):
    before = counts(session)
    source = json.dumps(a_source())[:-1] + ', "title": "second"}'
    body = json.dumps(a_change(sources=[])).replace('"sources": []', f'"sources": [{source}]')

    response = client.post(D1_VN, data=body, content_type="application/json", headers=editor)

    assert_refused(response, "sources.0.title")
    assert counts(session) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"effective_on": "1899-12-31"}, "effective_on"),
        ({"expected_effective_on": "0999-01-01", "status": "pending_removal"}, "expected_effective_on"),
        ({"sources": [a_source(published_on="1850-06-01")]}, "sources.0.published_on"),
    ],
)
def test_dates_before_1900_are_422s(client, editor, session, change, field):
    before = counts(session)

    assert_refused(client.post(D1_VN, json=a_change(**change), headers=editor), field)
    assert counts(session) == before


def test_as_of_before_1900_is_a_422(client):
    assert_refused(client.get("/v1/countries/VN?as_of=1899-12-31"), "as_of")


def test_a_source_published_after_the_day_it_is_recorded_is_a_422(client, editor, session, frozen_clock):
    published = (frozen_clock.now.date() + timedelta(days=1)).isoformat()
    before = counts(session)

    response = client.post(D1_VN, json=a_change(sources=[a_source(published_on=published)]), headers=editor)

    assert_refused(response, "sources.0.published_on")
    assert counts(session) == before
    today = frozen_clock.now.date().isoformat()
    ok = client.post(D1_VN, json=a_change(sources=[a_source(published_on=today)]), headers=editor)
    assert ok.status_code == 201


@pytest.mark.parametrize("tag", ['"abc"', 'W/"v1"', '"v999"', '"deadbeef", "v0"'])
def test_a_well_formed_if_match_that_matches_nothing_is_a_412(client, editor, session, tag):
    before = counts(session)

    response = client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": tag})

    assert response.status_code == 412, response.get_json()
    assert response.content_type == PROBLEM
    assert counts(session) == before


@pytest.mark.parametrize("tag", ["v1", '"unterminated', 'W/ "v1"', '"a" "b"'])
def test_a_malformed_if_match_is_a_422(client, editor, tag):
    assert_refused(client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": tag}), "If-Match")


@pytest.mark.parametrize(
    "url", ["/v1/lists", "/v1/countries", "/v1/countries/VN/history", "/v1/lists/us-ear-d1/entries"]
)
def test_an_empty_cursor_means_no_cursor(client, url):
    separator = "&" if "?" in url else "?"
    plain = client.get(f"{url}{separator}limit=2")
    empty = client.get(f"{url}{separator}limit=2&cursor=")

    assert empty.status_code == 200, empty.get_json()
    assert empty.get_json() == plain.get_json()


def test_the_spec_says_a_patch_needs_a_field(client):
    spec = client.get("/openapi.yaml").get_data(as_text=True)
    schemas = yaml.safe_load(spec)["components"]["schemas"]
    assert schemas["ListPatch"]["minProperties"] == 1
    assert schemas["WebhookPatch"]["minProperties"] == 1


def test_the_served_spec_claims_no_fixed_server(client):
    assert "servers" not in yaml.safe_load(client.get("/openapi.yaml").get_data(as_text=True))
