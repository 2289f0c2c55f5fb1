"""`exportctl import ecfr|federal-register` on a seeded database, and what an editor does next."""

import pytest
from sqlalchemy import select

from service.models import AuditEntry, ListCheck, Proposal
from tests.importers.helpers import (
    ECFR_DECEMBER,
    ECFR_JULY,
    FILED_JSON,
    RULE_JSON,
    RULE_XML,
    counts,
    import_ecfr,
    import_fr,
)


def entry(client, ref, list_id):
    document = client.get(f"/v1/countries/{ref}").get_json()
    return next(e for e in document["entries"] if e["list"]["id"] == list_id)


def test_the_table_of_2026_07_23_agrees_with_the_seeds_and_is_recorded_as_checked(app, session):
    before = counts(session)

    result = import_ecfr(app, ECFR_JULY, "2026-07-23")

    assert result.exit_code == 0, result.output
    assert "0 new proposals" in result.output
    after = counts(session)
    assert after["Proposal"] == before["Proposal"] == 0
    assert after["StatusChange"] == before["StatusChange"]
    checks = session.scalars(select(ListCheck)).all()
    assert len(checks) == 14  # every column, A:1 ... E:2 and B
    assert {c.as_of.isoformat() for c in checks} == {"2026-07-23"}
    assert {c.source["citation"] for c in checks} == {"15 CFR part 740, Supplement No. 1"}
    [audited] = session.scalars(select(AuditEntry).where(AuditEntry.action == "import.ecfr")).all()
    assert (audited.actor, audited.subject) == ("importer-bot", "document:ecfr:15-740:2026-07-23")
    assert len(audited.details["checked_lists"]) == 14


def test_vietnam_gone_from_d1_is_one_proposal_an_editor_approves(app, client, editor, session, frozen_clock):
    frozen_clock.advance(days=9)  # the eCFR of 2026-12-01 has been published

    result = import_ecfr(app, ECFR_DECEMBER, "2026-12-01")

    assert result.exit_code == 0, result.output
    [proposal] = session.scalars(select(Proposal)).all()
    assert (proposal.list_id, proposal.country_code, proposal.status) == ("us-ear-d1", "VN", "removed")
    assert proposal.effective_on.isoformat() == "2026-12-01"
    assert proposal.observed_status == "pending_removal"
    assert len(session.scalars(select(ListCheck)).all()) == 13  # D:1 differs: not checked

    approved = client.post(f"/v1/proposals/{proposal.id}/approve", headers=editor)

    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["proposal"]["state"] == "approved"
    assert approved.get_json()["change"]["actor"] == "alice"
    d1 = entry(client, "VN", "us-ear-d1")
    assert d1["status"] == "removed"
    assert d1["since"] == "2026-12-01"
    assert d1["sources"][0]["citation"] == "15 CFR part 740, Supplement No. 1"
    assert "eCFR" in d1["sources"][0]["publisher"]
    assert entry(client, "VN", "us-ear-d3")["status"] == "pending_removal"  # untouched
    history = client.get("/v1/countries/VN/history").get_json()["items"]
    assert (history[0]["status"], history[0]["actor"]) == ("removed", "alice")


def test_importing_the_same_document_twice_proposes_nothing_new(app, session, frozen_clock):
    frozen_clock.advance(days=9)
    assert import_ecfr(app, ECFR_DECEMBER, "2026-12-01").exit_code == 0
    before = counts(session)

    again = import_ecfr(app, ECFR_DECEMBER, "2026-12-01")

    assert again.exit_code == 0
    assert "0 new proposals, 1 already proposed" in again.output
    assert counts(session)["Proposal"] == before["Proposal"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-07-23"], "Missing option '--file'"),
        (["--file", "/nonexistent.xml", "--date", "2026-07-23"], "does not exist"),
        (["--file", str(ECFR_JULY), "--date", "23/07/2026"], "--date"),
        (["--file", str(ECFR_JULY), "--date", "2027-01-01"], "future"),
        (["--file", str(ECFR_JULY)], "Missing option '--date'"),
    ],
)
def test_bad_command_lines_change_nothing(app, session, args, message):
    before = counts(session)

    result = app.test_cli_runner().invoke(args=["import", "ecfr", *args])

    assert result.exit_code == 2
    assert message in result.output
    assert counts(session) == before


def test_a_document_the_parser_does_not_know_changes_nothing(app, session, tmp_path):
    broken = tmp_path / "part740.xml"
    broken.write_text(ECFR_JULY.read_text(encoding="utf-8").replace("[D:3]", "[D:9]"), encoding="utf-8")
    before = counts(session)

    result = import_ecfr(app, broken, "2026-07-23")

    assert result.exit_code == 1
    assert "columns" in result.output
    assert counts(session) == before  # not even the lists that parsed are "checked"


def test_a_federal_register_rule_proposes_its_entries_with_its_citation(
    app, client, editor, session, frozen_clock
):
    frozen_clock.advance(days=5)  # the rule is published (2026-11-27)

    result = import_fr(app, RULE_JSON, RULE_XML)

    assert result.exit_code == 0, result.output
    [proposal] = session.scalars(select(Proposal)).all()
    assert (proposal.list_id, proposal.country_code, proposal.status) == ("us-ear-d1", "VN", "removed")
    assert proposal.effective_on.isoformat() == "2026-11-27"
    assert proposal.sources[0]["citation"] == "91 FR 88412; FR Doc. 2026-23871"
    assert proposal.origin == "federal-register"
    assert client.post(f"/v1/proposals/{proposal.id}/approve", headers=editor).status_code == 200
    d1 = entry(client, "VN", "us-ear-d1")
    assert (d1["status"], d1["since"]) == ("removed", "2026-11-27")
    assert d1["sources"][0]["citation"] == "91 FR 88412; FR Doc. 2026-23871"
    # The eCFR of 2026-12-01 then agrees: nothing left to propose, D:1 checked too.
    frozen_clock.advance(days=4)
    assert "0 new proposals" in import_ecfr(app, ECFR_DECEMBER, "2026-12-01").output


def test_a_filing_for_public_inspection_proposes_a_pending_status(app, session):
    result = import_fr(app, FILED_JSON, RULE_XML)

    assert result.exit_code == 0, result.output
    [proposal] = session.scalars(select(Proposal)).all()
    assert (proposal.list_id, proposal.status) == ("us-ear-d1", "pending_removal")
    assert proposal.effective_on.isoformat() == "2026-11-20"  # filed for inspection
    assert proposal.sources[0]["published_on"] == "2026-11-20"
    assert "scheduled for publication in the Federal Register on 2026-11-27" in proposal.note


def test_a_document_whose_text_was_not_read_is_carried_for_a_person_to_read(app, client, editor, session):
    result = import_fr(app, FILED_JSON)

    assert result.exit_code == 0, result.output
    [proposal] = session.scalars(select(Proposal)).all()
    assert proposal.kind == "review" and proposal.list_id is None
    assert proposal.document["title"] == "Revision of Country Group Designations for Vietnam"
    refused = client.post(f"/v1/proposals/{proposal.id}/approve", headers=editor)
    assert refused.status_code == 409
    assert "names no entry" in refused.get_json()["detail"]
    rejected = client.post(f"/v1/proposals/{proposal.id}/reject", json={"reason": "read"}, headers=editor)
    assert rejected.status_code == 200


def test_a_federal_register_document_out_of_scope_is_refused(app, session, tmp_path):
    other = tmp_path / "doc.json"
    other.write_text(
        RULE_JSON.read_text(encoding="utf-8").replace("industry-and-security-bureau", "census-bureau")
    )
    before = counts(session)

    result = import_fr(app, other)

    assert result.exit_code == 1
    assert "not from the Bureau of Industry and Security" in result.output
    assert counts(session) == before
