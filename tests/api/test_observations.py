"""Observations, the rule that a status is known only from its evidence, the other lists, and evidence kinds."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from service.models import Event, Observation, StatusChange
from tests.conftest import a_source

PROBLEM = "application/problem+json"


def entry(client, ref, list_id, query=""):
    document = client.get(f"/v1/countries/{ref}?{query}").get_json()
    return {e["list"]["id"]: e for e in document["entries"]}[list_id]


def counts(session):
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in (StatusChange, Observation, Event)
    }


# --- the exact checks of issue 8 ------------------------------------------------


def test_nicaragua_d1_is_unknown_in_2020_and_listed_from_2024_03_15(client):
    before = entry(client, "NI", "us-ear-d1", "as_of=2020-01-01")
    from_rule = entry(client, "NI", "us-ear-d1", "as_of=2024-03-15")

    assert (before["status"], before["reason"], before["restrictions_apply"]) == (
        "unknown",
        "before_first_observation",
        None,
    )
    assert from_rule["status"] == "listed"
    assert from_rule["since"] == "2024-03-15"
    assert {s["citation"] for s in from_rule["sources"]} == {"89 FR 18780; FR Doc 2024-05696"}
    assert from_rule["evidence"] == "regulation"
    assert entry(client, "NI", "us-ear-d1", "as_of=2024-03-14")["status"] == "unknown"


def test_cambodia_d5_listed_in_2023_and_removed_in_march_2026(client):
    assert entry(client, "KH", "us-ear-d5", "as_of=2023-01-01")["status"] == "listed"
    assert entry(client, "KH", "us-ear-d5", "as_of=2026-03-01")["status"] == "removed"


def test_the_uae_is_not_listed_on_a5_before_july_2026_and_rests_on_press_after(client):
    before = entry(client, "AE", "us-ear-a5", "as_of=2026-01-01")
    after = entry(client, "AE", "us-ear-a5")

    assert before["status"] != "listed"
    assert (after["status"], after["evidence"], after["confidence"]) == ("listed", "press", "low")


def test_vietnam_d1_listed_the_day_before_the_announcement_unknown_in_2020(client):
    assert entry(client, "VN", "us-ear-d1", "as_of=2026-02-19")["status"] == "listed"
    old = entry(client, "VN", "us-ear-d1", "as_of=2020-01-01")
    assert (old["status"], old["observed_since"]) == ("unknown", "2025-05-29")


def test_vietnam_d5_listed_on_2016_11_03(client):
    assert entry(client, "VN", "us-ear-d5", "as_of=2016-11-03")["status"] == "listed"


def test_vietnam_d1_as_known_on_2026_02_20_at_noon_is_listed_from_the_2025_request(client):
    d1 = entry(client, "VN", "us-ear-d1", "known_at=2026-02-20T12:00:00Z")

    assert (d1["status"], d1["basis"], d1["observed_since"]) == ("listed", "observation", "2025-05-29")


def test_south_korea_round_trip_on_japans_group_a(client):
    removed = entry(client, "KR", "jp-group-a", "as_of=2020-06-01")
    restored = entry(client, "KR", "jp-group-a", "as_of=2024-01-01")

    assert (removed["status"], removed["since"]) == ("removed", "2019-08-28")
    assert (restored["status"], restored["since"]) == ("listed", "2023-07-21")
    assert removed["list"]["jurisdiction"] == "JP"


def test_ethiopia_is_on_itar_126_1_and_restrictions_apply_but_d5_answers_from_the_table(client):
    document = client.get("/v1/countries/ET").get_json()
    entries = {e["list"]["id"]: e for e in document["entries"]}

    assert entries["us-itar-126-1"]["status"] == "listed"
    assert entries["us-itar-126-1"]["since"] == "2021-11-01"
    assert document["restrictions_apply"] is True
    assert document["restricting_lists"] == ["us-itar-126-1"]
    assert entries["us-ear-d5"]["status"] == "not_listed"  # the eCFR table has no X for Ethiopia


def test_france_has_no_restriction_once_itar_is_complete(client, frozen_clock):
    frozen_clock.now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    document = client.get("/v1/countries/FR").get_json()

    assert document["restrictions_apply"] is False
    # Before 2026-12-01 the 126.1 list cannot tell, and the answer says so (null, and which list).
    earlier = client.get("/v1/countries/FR?as_of=2026-11-30").get_json()
    assert earlier["restrictions_apply"] is None
    assert earlier["unknown_restrictive_lists"] == ["us-itar-126-1"]


def test_vietnam_pending_removal_rests_on_statements_and_press_not_a_rule(client):
    document = client.get("/v1/countries/VN").get_json()
    entries = {e["list"]["id"]: e for e in document["entries"]}

    for list_id in ("us-ear-d1", "us-ear-d3"):
        assert entries[list_id]["status"] == "pending_removal"
        assert entries[list_id]["evidence"] == "official_statement"


def test_entries_are_one_flat_list_ordered_by_jurisdiction(client):
    entries = client.get("/v1/countries/KR").get_json()["entries"]
    keys = [(e["list"]["jurisdiction"], e["list"]["id"]) for e in entries]

    assert keys == sorted(keys)
    assert {"EU", "GB", "INT", "JP", "US"} == {k[0] for k in keys}


# --- evidence kinds and min_evidence --------------------------------------------


def test_min_evidence_keeps_entries_resting_on_at_least_that_kind(client):
    def codes(query):
        items = client.get(f"/v1/lists/us-ear-d1/entries?limit=500&{query}").get_json()["items"]
        return {i["country"]["alpha_2"] for i in items}

    every = codes("")
    regulation = codes("min_evidence=regulation")
    press = codes("min_evidence=press")

    assert "VN" in every and "VN" not in regulation  # official statements and press only
    assert "VN" in press and "NI" in regulation
    assert regulation < every


def test_a_bad_min_evidence_is_a_422_naming_it(client):
    response = client.get("/v1/lists/us-ear-d1/entries?min_evidence=rumour")

    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["min_evidence"]


def test_a_source_kind_is_inferred_when_absent(client, editor):
    body = {
        "status": "removed",
        "effective_on": "2026-11-20",
        "sources": [a_source(), a_source(url="https://example.com/summary", kind=None)],
    }
    created = client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=body, headers=editor).get_json()

    assert [s["kind"] for s in created["change"]["sources"]] == ["regulation", "secondary"]
    assert created["change"]["evidence"] == "regulation"


# --- recording observations -----------------------------------------------------

OBSERVATIONS = "/v1/lists/us-ear-d1/entries/{}/observations"


def an_observation(**overrides):
    return {
        "status": "listed",
        "observed_on": "2019-06-01",
        "note": "A 2019 rule lists this country in D:1.",
        "sources": [a_source(published_on="2019-06-01")],
        "confidence": "high",
        **overrides,
    }


def test_recording_an_observation_makes_earlier_dates_known_and_emits_no_event(client, editor, session):
    events_before = counts(session)["events"]
    assert entry(client, "NI", "us-ear-d5", "as_of=2024-01-01")["status"] == "unknown"

    response = client.post(
        "/v1/lists/us-ear-d5/entries/NI/observations",
        json=an_observation(observed_on="2023-06-01"),
        headers={**editor, "X-Request-ID": "obs-1"},
    )

    assert response.status_code == 201
    created = response.get_json()
    observation = created["observation"]
    assert (observation["kind"], observation["status"], observation["observed_on"]) == (
        "observation",
        "listed",
        "2023-06-01",
    )
    assert (observation["actor"], observation["request_id"]) == ("alice", "obs-1")
    assert response.headers["Location"] == observation["links"]["self"]
    assert client.get(observation["links"]["self"]).get_json() == observation
    assert created["entry"]["version"] >= 1
    d5 = entry(client, "NI", "us-ear-d5", "as_of=2024-01-01")
    assert (d5["status"], d5["basis"], d5["observed_since"]) == ("listed", "observation", "2023-06-01")
    assert entry(client, "NI", "us-ear-d5", "as_of=2023-05-31")["status"] == "unknown"
    # Bitemporal: as known before it was recorded, 2024-01-01 was still unknown.
    assert (
        entry(client, "NI", "us-ear-d5", "as_of=2024-01-01&known_at=2026-11-23T11:00:00Z")["status"]
        == "unknown"
    )
    assert counts(session)["events"] == events_before  # no status-change event
    history = client.get("/v1/countries/NI/history").get_json()["items"]
    assert any(h["kind"] == "observation" and h["id"] == observation["id"] for h in history)


def test_an_observation_is_idempotent_and_honours_if_match(client, editor, session):
    headers = {**editor, "Idempotency-Key": "obs-key"}
    first = client.post(OBSERVATIONS.format("CU"), json=an_observation(), headers=headers)
    again = client.post(OBSERVATIONS.format("CU"), json=an_observation(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    version = first.get_json()["entry"]["version"]
    before = counts(session)
    stale = client.post(
        OBSERVATIONS.format("CU"),
        json=an_observation(observed_on="2019-07-01"),
        headers={**editor, "If-Match": f'"v{version - 1}"'},
    )
    assert stale.status_code == 412
    assert counts(session) == before
    fresh = client.post(
        OBSERVATIONS.format("CU"),
        json=an_observation(observed_on="2019-07-01"),
        headers={**editor, "If-Match": f'"v{version}"'},
    )
    assert fresh.status_code == 201


def test_observations_need_an_editor_key(client, reader):
    assert client.post(OBSERVATIONS.format("CU"), json=an_observation()).status_code == 401
    assert client.post(OBSERVATIONS.format("CU"), json=an_observation(), headers=reader).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (an_observation(status="unknown"), "status"),
        (an_observation(status="gone"), "status"),
        (an_observation(observed_on="2019-6-1"), "observed_on"),
        (an_observation(observed_on="2027-01-01"), "observed_on"),  # after the test clock's today
        (an_observation(sources=[]), "sources"),
        (an_observation(confidence="certain"), "confidence"),
        (an_observation(sources=[a_source(kind="rumour")]), "sources.0.kind"),
        ({**an_observation(), "effective_on": "2019-06-01"}, "effective_on"),
    ],
)
def test_bad_observations_are_422_naming_the_field_and_change_nothing(client, editor, session, body, field):
    before = counts(session)

    response = client.post(OBSERVATIONS.format("CU"), json=body, headers=editor)

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert field in response.get_json()["errors"]
    assert counts(session) == before


def test_an_observation_on_an_unknown_list_or_country_is_a_404(client, editor):
    assert (
        client.post(
            "/v1/lists/nope/entries/CU/observations", json=an_observation(), headers=editor
        ).status_code
        == 404
    )
    assert (
        client.post(OBSERVATIONS.format("Atlantis"), json=an_observation(), headers=editor).status_code == 404
    )


# --- relaxed transitions ---------------------------------------------------------


def test_a_removal_may_be_the_first_recorded_change_where_nothing_is_known(client, editor):
    body = {"status": "removed", "effective_on": "2020-01-01", "sources": [a_source()]}
    response = client.post("/v1/lists/us-ear-b/entries/KP/changes", json=body, headers=editor)

    assert response.status_code == 201
    assert response.get_json()["change"]["from_status"] is None


def test_illegal_moves_stay_409(client, editor):
    body = {"status": "pending_removal", "effective_on": "2020-06-01", "sources": [a_source()]}
    response = client.post("/v1/lists/jp-group-a/entries/KR/changes", json=body, headers=editor)

    assert response.status_code == 409  # removed (2019-08-28) -> pending_removal
    assert response.get_json()["current_status"] == "removed"
