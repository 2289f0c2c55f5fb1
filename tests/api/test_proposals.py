"""GET/POST /v1/proposals: the editor's queue of what the importers read, decided through the API."""

import pytest
from sqlalchemy import select

from service.models import AuditEntry, Delivery, Event, Proposal, StatusChange
from tests.conftest import a_change
from tests.importers.helpers import ECFR_DECEMBER, FILED_JSON, RULE_XML, counts, import_ecfr, import_fr
from tests.webhooks.conftest import subscribe

PROBLEM = "application/problem+json"


@pytest.fixture
def proposed(app, session, frozen_clock):
    """Three proposals: VN off D:1 (eCFR), VN pending removal from D:1 (filing), a document to read."""
    frozen_clock.advance(days=9)
    assert import_ecfr(app, ECFR_DECEMBER, "2026-12-01").exit_code == 0
    assert import_fr(app, FILED_JSON, RULE_XML).exit_code == 0
    assert import_fr(app, FILED_JSON).exit_code == 0  # without its text: a review
    rows = session.scalars(select(Proposal).order_by(Proposal.id)).all()
    return {"ecfr": rows[0].id, "filed": rows[1].id, "review": rows[2].id}


def test_the_queue_newest_first_with_filters(client, editor, proposed):
    everything = client.get("/v1/proposals", headers=editor)

    assert everything.status_code == 200
    assert [p["id"] for p in everything.get_json()["items"]] == sorted(proposed.values(), reverse=True)

    def ids(query):
        response = client.get(f"/v1/proposals?{query}", headers=editor)
        assert response.status_code == 200, response.get_json()
        return [p["id"] for p in response.get_json()["items"]]

    assert ids("source=ecfr") == [proposed["ecfr"]]
    assert ids("source=federal-register") == [proposed["review"], proposed["filed"]]
    assert ids("list=us-ear-d1&country=Vietnam") == [proposed["filed"], proposed["ecfr"]]
    assert ids("country=FR") == []
    assert ids("status=approved") == []
    first = client.get("/v1/proposals?limit=2", headers=editor).get_json()
    rest = client.get(f"/v1/proposals?limit=2&cursor={first['next_cursor']}", headers=editor).get_json()
    assert [p["id"] for p in first["items"] + rest["items"]] == sorted(proposed.values(), reverse=True)
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=maybe", "status"),
        ("list=us-ear-zz", "list"),
        ("country=Atlantis", "country"),
        ("source=newspaper", "source"),
        ("cursor=!!", "cursor"),
        ("colour=red", "colour"),
    ],
)
def test_bad_filters_are_a_422_naming_the_parameter(client, editor, query, field):
    response = client.get(f"/v1/proposals?{query}", headers=editor)

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert field in response.get_json()["errors"]


def test_only_editors_see_and_decide_proposals(client, reader, proposed):
    assert client.get("/v1/proposals").status_code == 401
    assert client.get("/v1/proposals", headers=reader).status_code == 403
    assert client.get(f"/v1/proposals/{proposed['ecfr']}", headers=reader).status_code == 403
    assert client.post(f"/v1/proposals/{proposed['ecfr']}/approve", headers=reader).status_code == 403


def test_a_proposal_beside_the_entrys_current_state(client, editor, proposed):
    response = client.get(f"/v1/proposals/{proposed['ecfr']}", headers=editor)

    assert response.status_code == 200
    proposal = response.get_json()
    assert (proposal["status"], proposal["effective_on"], proposal["state"]) == (
        "removed",
        "2026-12-01",
        "pending",
    )
    assert proposal["list"]["id"] == "us-ear-d1" and proposal["country"]["alpha_2"] == "VN"
    assert proposal["current"]["status"] == "pending_removal"
    assert proposal["current"]["version"] == proposal["base_version"]
    assert proposal["overtaken"] is False
    assert proposal["document"]["key"] == "ecfr:15-740:2026-12-01"
    assert proposal["created_by"] == "importer-bot"
    review = client.get(f"/v1/proposals/{proposed['review']}", headers=editor).get_json()
    assert review["kind"] == "review" and review["current"] is None and review["list"] is None


@pytest.mark.parametrize("proposal_id", ["999", "0", "2147483647"])
def test_an_unknown_proposal_is_a_404(client, editor, proposal_id):
    for response in (
        client.get(f"/v1/proposals/{proposal_id}", headers=editor),
        client.post(f"/v1/proposals/{proposal_id}/approve", headers=editor),
        client.post(f"/v1/proposals/{proposal_id}/reject", json={"reason": "x"}, headers=editor),
    ):
        assert response.status_code == 404
        assert response.content_type == PROBLEM


def test_approving_records_the_change_as_the_approver_once(client, editor, admin, proposed, session):
    url = f"/v1/proposals/{proposed['ecfr']}/approve"
    headers = {**editor, "Idempotency-Key": "approve-vn-d1", "X-Request-ID": "req-approve"}

    first = client.post(url, headers=headers)
    replay = client.post(url, headers=headers)
    again = client.post(url, headers=editor)

    assert first.status_code == 200
    body = first.get_json()
    assert body["proposal"]["state"] == "approved" and body["proposal"]["decided_by"] == "alice"
    assert body["change"]["request_id"] == "req-approve"
    assert body["change"]["sources"][0]["citation"] == "15 CFR part 740, Supplement No. 1"
    assert body["entry"]["status"] == "removed"
    assert body["proposal"]["links"]["change"] == body["change"]["links"]["self"]
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.get_json() == body
    assert again.status_code == 409 and again.get_json()["state"] == "approved"
    changes = session.scalars(select(StatusChange).where(StatusChange.actor == "alice")).all()
    assert len(changes) == 1
    audit = client.get("/v1/audit?subject=proposal:" + str(proposed["ecfr"]), headers=admin).get_json()
    assert [(a["action"], a["actor"]) for a in audit["items"]] == [("proposal.approved", "alice")]


def test_a_proposal_overtaken_by_a_change_is_marked_stale_not_applied(client, editor, proposed, session):
    recorded = client.post(
        "/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(effective_on="2026-11-30"), headers=editor
    )
    assert recorded.status_code == 201
    assert client.get(f"/v1/proposals/{proposed['ecfr']}", headers=editor).get_json()["overtaken"] is True
    before = counts(session)

    response = client.post(f"/v1/proposals/{proposed['ecfr']}/approve", headers=editor)

    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert response.get_json()["type"] == "/problems/proposal-stale"
    assert response.get_json()["proposal"]["state"] == "stale"
    after = counts(session)
    assert after["StatusChange"] == before["StatusChange"]  # nothing applied
    assert client.get(f"/v1/proposals/{proposed['ecfr']}", headers=editor).get_json()["state"] == "stale"
    assert client.post(f"/v1/proposals/{proposed['ecfr']}/approve", headers=editor).status_code == 409


def test_a_stale_proposal_can_be_proposed_again_by_a_new_import(app, client, editor, proposed, session):
    client.post(f"/v1/proposals/{proposed['filed']}/approve", headers=editor)  # moves the entry
    assert client.post(f"/v1/proposals/{proposed['ecfr']}/approve", headers=editor).status_code == 409

    result = import_ecfr(app, ECFR_DECEMBER, "2026-12-01")

    assert "1 new proposals" in result.output
    fresh = client.get("/v1/proposals?status=pending&source=ecfr", headers=editor).get_json()["items"]
    assert [p["status"] for p in fresh] == ["removed"]
    assert client.post(f"/v1/proposals/{fresh[0]['id']}/approve", headers=editor).status_code == 200


def test_rejecting_needs_a_reason_and_records_nothing(client, editor, admin, proposed, session):
    url = f"/v1/proposals/{proposed['filed']}/reject"
    before = counts(session)

    for body in ({}, {"reason": ""}, {"reason": "x", "extra": 1}, {"reason": 5}):
        response = client.post(url, json=body, headers=editor)
        assert response.status_code == 422, body
        assert response.content_type == PROBLEM
    assert client.post(url, data="reason", headers=editor).status_code == 415
    assert counts(session) == before

    rejected = client.post(url, json={"reason": "The rule was withdrawn before publication."}, headers=editor)

    assert rejected.status_code == 200
    assert rejected.get_json()["state"] == "rejected"
    assert rejected.get_json()["reason"] == "The rule was withdrawn before publication."
    assert counts(session)["StatusChange"] == before["StatusChange"]
    assert client.post(f"/v1/proposals/{proposed['filed']}/approve", headers=editor).status_code == 409
    audit = client.get(f"/v1/audit?subject=proposal:{proposed['filed']}", headers=admin).get_json()["items"]
    assert audit[0]["action"] == "proposal.rejected" and audit[0]["details"]["reason"].startswith("The rule")


def test_proposal_created_reaches_only_subscriptions_that_ask_for_it(
    app, client, editor, httpserver, session
):
    catch_all, _ = subscribe(client, editor, httpserver.url_for("/all"))
    asking, _ = subscribe(client, editor, httpserver.url_for("/editors"), event_types=["proposal.created"])
    feed_before = client.get("/v1/events?after=0&limit=500").get_json()

    assert import_fr(app, FILED_JSON, RULE_XML).exit_code == 0

    deliveries = session.scalars(select(Delivery)).all()
    assert [(d.webhook_id, d.event.type) for d in deliveries] == [(asking, "proposal.created")]
    assert deliveries[0].event.data["country"]["alpha_2"] == "VN"
    assert deliveries[0].event.public is False
    feed_after = client.get("/v1/events?after=0&limit=500").get_json()
    assert feed_after["items"] == feed_before["items"]  # not in the public feed
    assert client.get("/v1/events?type=proposal.created").status_code == 422
    assert catch_all != asking
    assert session.scalars(select(Event).where(Event.type == "proposal.created")).all()


def test_importing_is_audited_with_the_document(app, admin, client, session):
    assert import_fr(app, FILED_JSON, RULE_XML).exit_code == 0

    [audited] = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "import.federal-register")
    ).all()
    assert audited.actor == "importer-bot"
    assert audited.subject == "document:fr-pi:2026-23871"
    assert audited.details["document"]["document_number"] == "2026-23871"
    shown = client.get("/v1/audit?subject=document:fr-pi:2026-23871", headers=admin).get_json()["items"]
    assert [a["action"] for a in shown] == ["import.federal-register"]
