"""POST /v1/lists and PATCH /v1/lists/{id}: other jurisdictions' lists without code changes."""

import pytest
from sqlalchemy import func, select

from service.models import ControlList, Event
from tests.conftest import a_change, a_source

PROBLEM = "application/problem+json"

EU_LIST = {
    "id": "eu-dual-use-annex-iib",
    "code": "Annex IIb",
    "name": "Union General Export Authorisation EU001 destinations",
    "jurisdiction": "EU",
    "authority": "European Commission",
    "legal_basis": "Regulation (EU) 2021/821, Annex II, Section A (EU001)",
    "url": "https://eur-lex.europa.eu/eli/reg/2021/821/oj",
    "effect": "favourable",
    "membership_complete": True,
    "membership_complete_from": "2021-09-09",
    "description": "Destinations covered by Union General Export Authorisation EU001.",
    "sources": [
        a_source(
            title="Regulation (EU) 2021/821",
            publisher="EUR-Lex",
            url="https://eur-lex.europa.eu/eli/reg/2021/821/oj",
        )
    ],
}


def counts(session):
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(ControlList)),
        session.scalar(select(func.count()).select_from(Event)),
    )


def test_an_admin_adds_a_list_and_records_entries_on_it(client, admin, editor):
    response = client.post("/v1/lists", json=EU_LIST, headers=admin)

    assert response.status_code == 201
    assert response.headers["Location"] == "/v1/lists/eu-dual-use-annex-iib"
    created = response.get_json()
    assert created["effect"] == "favourable"
    assert created["membership_complete_from"] == "2021-09-09"
    assert client.get("/v1/lists/eu-dual-use-annex-iib").get_json()["name"] == EU_LIST["name"]

    change = client.post(
        "/v1/lists/eu-dual-use-annex-iib/entries/JP/changes",
        json=a_change(status="listed", effective_on="2021-09-09"),
        headers=editor,
    )
    assert change.status_code == 201
    japan = {e["list"]["id"]: e for e in client.get("/v1/countries/JP").get_json()["entries"]}
    assert japan["eu-dual-use-annex-iib"]["status"] == "listed"
    assert japan["eu-dual-use-annex-iib"]["restrictions_apply"] is False


def test_an_editor_may_not_add_a_list(client, editor, session):
    before = counts(session)

    response = client.post("/v1/lists", json=EU_LIST, headers=editor)

    assert response.status_code == 403
    assert counts(session) == before


def test_a_duplicate_list_id_is_a_409(client, admin):
    response = client.post("/v1/lists", json={**EU_LIST, "id": "us-ear-d1"}, headers=admin)

    assert response.status_code == 409
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(
    "body",
    [
        {"id": "wa", "code": "PW"},  # Wassenaar's code: ?list=wa would find the new list instead
        {"id": "ogel-eu", "code": "PW"},  # the code OGEL-EU, in another case
        {"id": "pw", "code": "us-ear-d1"},  # another list's id: ?list=us-ear-d1 could never name it
    ],
)
def test_an_id_or_code_that_would_shadow_another_lists_name_is_a_409(client, admin, session, body):
    before = counts(session)
    d5 = client.get("/v1/countries/FR?list=D:5").get_json()

    response = client.post("/v1/lists", json={**EU_LIST, **body}, headers=admin)

    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert counts(session) == before
    assert client.get("/v1/countries/FR?list=D:5").get_json() == d5


def test_patching_a_code_to_another_lists_id_is_a_409(client, admin):
    client.post("/v1/lists", json=EU_LIST, headers=admin)

    response = client.patch("/v1/lists/eu-dual-use-annex-iib", json={"code": "US-EAR-D1"}, headers=admin)

    assert response.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "Bad Id!"}, "id"),
        ({"id": "x"}, "id"),
        ({"effect": "neutral"}, "effect"),
        ({"url": "ftp://example.org"}, "url"),
        ({"membership_complete": "sometimes"}, "membership_complete"),
        ({"membership_complete_from": "2021"}, "membership_complete_from"),
        ({"unexpected": 1}, "unexpected"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_list_bodies_are_422s_naming_the_field(client, admin, session, change, field):
    before = counts(session)

    response = client.post("/v1/lists", json={**EU_LIST, **change}, headers=admin)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert counts(session) == before


def test_patch_changes_descriptive_fields_and_emits_an_event(client, admin, session):
    before = counts(session)

    response = client.patch(
        "/v1/lists/us-ear-d1", json={"description": "National security controls."}, headers=admin
    )

    assert response.status_code == 200
    assert response.get_json()["description"] == "National security controls."
    assert client.get("/v1/lists/us-ear-d1").get_json()["description"] == "National security controls."
    assert counts(session) == (before[0], before[1] + 1)
    event = session.scalars(select(Event).order_by(Event.id.desc())).first()
    assert (event.type, event.data["actor"]) == ("list.updated", "root")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"effect": "favourable"}, "effect"),
        ({"membership_complete": False}, "membership_complete"),
        ({}, "_body"),
    ],
)
def test_patch_refuses_what_a_list_means(client, admin, body, field):
    response = client.patch("/v1/lists/us-ear-d1", json=body, headers=admin)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_patch_an_unknown_list_is_404(client, admin):
    assert client.patch("/v1/lists/nope", json={"name": "x"}, headers=admin).status_code == 404


def test_creating_a_list_is_idempotent_with_a_key(client, admin, session):
    headers = {**admin, "Idempotency-Key": "eu-1"}
    first = client.post("/v1/lists", json=EU_LIST, headers=headers)
    after = counts(session)

    retry = client.post("/v1/lists", json=EU_LIST, headers=headers)

    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert counts(session) == after
