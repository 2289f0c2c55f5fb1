"""Freshness: GET /v1/status, POST /v1/lists/{id}/checks, list.stale once, checks on country answers."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.models import ListCheck, StatusChange
from tests.conftest import a_change, a_source, make_app

CHECKS = "/v1/lists/us-ear-d1/checks"


def status_of(client, list_id):
    body = client.get("/v1/status").get_json()
    [found] = [s for s in body["lists"] if s["list"]["id"] == list_id]
    return found


def a_check(**overrides):
    return {
        "source": a_source(
            title="15 CFR 740 Supplement No. 1",
            publisher="eCFR",
            url="https://www.ecfr.gov/current/title-15/part-740",
            citation=None,
            published_on=None,
        ),
        "found": "unchanged",
        **overrides,
    }


def test_seeded_lists_carry_their_reference_date_and_say_they_are_stale(client):
    body = client.get("/v1/status").get_json()
    assert body["lists"] and body["stale_count"] == sum(s["stale"] for s in body["lists"])
    d1 = status_of(client, "us-ear-d1")
    assert d1["checked_at"] == "2026-07-23T00:00:00Z"
    assert d1["check_origin"] == "reference"
    assert d1["publishes_amendments"] is True
    assert d1["max_age_days"] == 35
    assert d1["age_days"] == 123
    assert d1["stale"] is True
    assert d1["changed_at"] is not None


def test_an_editor_records_a_check_without_inventing_a_change(client, editor, session, frozen_clock):
    changes_before = session.scalar(select(func.count()).select_from(StatusChange))
    response = client.post(CHECKS, json=a_check(note="Compared row by row."), headers=editor)
    assert response.status_code == 201, response.get_json()
    check = response.get_json()
    assert check["found"] == "unchanged" and check["origin"] == "manual" and check["actor"] == "alice"
    assert check["as_of"] == "2026-11-23"
    assert session.scalar(select(func.count()).select_from(StatusChange)) == changes_before
    d1 = status_of(client, "us-ear-d1")
    assert d1["checked_at"] == check["checked_at"]
    assert d1["check_origin"] == "manual"
    assert d1["check_source"]["url"] == "https://www.ecfr.gov/current/title-15/part-740"
    assert (d1["age_days"], d1["stale"]) == (0, False)
    frozen_clock.advance(days=36)
    assert status_of(client, "us-ear-d1")["stale"] is True


def test_a_country_answer_says_when_each_list_was_checked(client, editor):
    client.post(CHECKS, json=a_check(), headers=editor)
    body = client.get("/v1/countries/VN").get_json()
    checked = {c["list_id"]: c for c in body["lists_checked"]}
    assert {e["list"]["id"] for e in body["entries"]} <= set(checked)
    assert checked["us-ear-d1"]["stale"] is False
    assert checked["us-ear-d3"]["checked_at"] == "2026-07-23T00:00:00Z"


def test_an_answer_as_known_at_a_moment_shows_only_the_checks_known_then(client, editor, frozen_clock):
    """`known_at` answers as the service would have then: a check recorded later, or a
    reference published later, was not known; staleness is judged on that moment's day."""
    first = client.post(CHECKS, json=a_check(), headers=editor).get_json()["checked_at"]
    frozen_clock.advance(days=40)
    second = client.post(CHECKS, json=a_check(), headers=editor).get_json()["checked_at"]
    frozen_clock.advance(days=1)

    def checked(query=""):
        body = client.get(f"/v1/countries/VN{query}").get_json()
        return {c["list_id"]: (c["checked_at"], c["stale"]) for c in body["lists_checked"]}

    moment = frozen_clock.now - timedelta(days=41)  # the first check's moment
    at = lambda when: when.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    assert checked()["us-ear-d1"] == (second, False)
    assert checked(f"?known_at={at(moment + timedelta(hours=1))}")["us-ear-d1"] == (first, False)
    # Before it, only the reference (published 2026-07-23) was known, and it was stale then.
    assert checked(f"?known_at={at(moment - timedelta(seconds=1))}")["us-ear-d1"] == (
        "2026-07-23T00:00:00Z",
        True,
    )
    # 38 days after the first check, before the second: stale on that day.
    assert checked(f"?known_at={at(moment + timedelta(days=38))}")["us-ear-d1"] == (first, True)
    # In 2020 only references published by then were known (Japan's Group A, 2019-08-28); the
    # lists whose reference came later had not been checked, as far as anyone knew.
    early = checked("?known_at=2020-01-01T00:00:00Z")
    assert early["jp-group-a"] == ("2019-08-28T00:00:00Z", False)
    assert early["us-ear-d1"] == (None, True)
    assert all(at is None or at <= "2020-01-01T00:00:00Z" for at, _stale in early.values())
    assert checked("?known_at=2020-01-01T00:00:00Z&list=us-ear-d1") == {"us-ear-d1": (None, True)}


def test_a_receipts_lookup_reproduces_its_checks_after_a_later_one(client, editor, reader, frozen_clock):
    """A receipt's `reproduce` link (its lookup at the issue moment) gives the same answer later,
    the lists' checks included, whatever is checked since."""
    receipt = client.post("/v1/receipts", json={"country": "VN"}, headers=reader).get_json()
    frozen_clock.advance(hours=1)
    client.post(CHECKS, json=a_check(), headers=editor)

    again = client.get(receipt["links"]["reproduce"]).get_json()

    assert again["lists_checked"] == receipt["answer"]["lists_checked"]
    assert again == receipt["answer"]


def test_max_age_is_configurable_per_list(database_url):
    from service import close_app

    app = make_app(database_url, FRESHNESS_MAX_AGE_BY_LIST="us-ear-d1=200d")
    try:
        body = app.test_client().get("/v1/status").get_json()
        [d1] = [s for s in body["lists"] if s["list"]["id"] == "us-ear-d1"]
        assert (d1["max_age_days"], d1["stale"]) == (200, False)
    finally:
        close_app(app)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"found": "maybe"}, "found"),
        ({"found": None}, "found"),
        ({"source": {"title": "x"}}, "source.publisher"),
        ({"as_of": "2999-01-01"}, "as_of"),
        ({"as_of": "01/02/2026"}, "as_of"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_checks_are_problems_naming_the_field(client, editor, session, change, field):
    response = client.post(CHECKS, json={**a_check(), **change}, headers=editor)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]
    assert session.scalar(select(func.count()).select_from(ListCheck)) == 0


def test_a_check_needs_an_editor_and_a_known_list(client, reader, editor):
    assert client.post(CHECKS, json=a_check()).status_code == 401
    assert client.post(CHECKS, json=a_check(), headers=reader).status_code == 403
    assert client.post("/v1/lists/nope/checks", json=a_check(), headers=editor).status_code == 404


def test_status_age_moves_with_the_clock(client, frozen_clock):
    before = status_of(client, "us-ear-d1")["age_days"]
    frozen_clock.advance(days=2)
    assert status_of(client, "us-ear-d1")["age_days"] == before + 2
    assert timedelta(days=before)  # the age is whole days


def test_every_seeded_list_has_a_check_date(client):
    lists = client.get("/v1/status").get_json()["lists"]
    assert all(s["checked_at"] and s["check_source"] for s in lists), [
        s["list"]["id"] for s in lists if not s["checked_at"]
    ]


def test_staleness_is_judged_by_the_day_so_every_answer_agrees_all_day(client, editor, frozen_clock):
    """A check more than 35 days old by the calendar (the limit of a list that publishes amendments)
    is stale for that whole day, in /v1/status and in country answers alike, however early or late
    in the day each was first asked; /v1/status says when it was asked."""

    def d1_now():
        status = client.get("/v1/status").get_json()
        [listed] = [s for s in status["lists"] if s["list"]["id"] == "us-ear-d1"]
        country = {c["list_id"]: c for c in client.get("/v1/countries/VN").get_json()["lists_checked"]}
        return status["now"], listed["age_days"], listed["stale"], country["us-ear-d1"]["stale"]

    assert client.post(CHECKS, json=a_check(), headers=editor).status_code == 201  # 2026-11-23 12:00
    frozen_clock.advance(days=35, hours=-2)  # 2026-12-28 10:00: 35 days on, by the calendar
    assert d1_now() == ("2026-12-28T10:00:00Z", 35, False, False)
    frozen_clock.advance(hours=4)  # 14:00, past the check's time of day
    assert d1_now() == ("2026-12-28T14:00:00Z", 35, False, False)
    frozen_clock.advance(hours=12)  # 2026-12-29 02:00: 36 days
    assert d1_now() == ("2026-12-29T02:00:00Z", 36, True, True)


def test_the_evidence_timeline_finds_what_the_evidence_query_finds_at_any_moment(
    session, editor, client, frozen_clock
):
    """`lists_checked` with `known_at` searches each list's evidence in memory: for lists with no
    reference of their own, and at any moment, it finds the day `latest_evidence` finds with
    that moment's cut (recorded by then, its day begun by then)."""
    from datetime import UTC, datetime

    from service.domain import freshness, lookups

    # Evidence recorded now for a date still to come counts only once that day begins.
    later = (frozen_clock.now + timedelta(days=10)).date().isoformat()
    response = client.post(
        "/v1/lists/jp-group-a/entries/AQ/changes",
        json=a_change(status="listed", effective_on=later, note=None),
        headers=editor,
    )
    assert response.status_code == 201, response.get_json()
    session.expire_all()
    lists = [cl.id for cl in lookups.all_lists(session) if freshness.reference_at(cl) is None]
    assert lists, "the seeds have lists read from their evidence alone"
    timelines = freshness.evidence_timelines(session, lists)
    rng = random.Random(7)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randrange(27 * 365 * 86400)) for _ in range(40)]
    recorded = [moment for timeline in timelines.values() for moment in timeline.since]
    moments += recorded + [moment - timedelta(microseconds=1) for moment in recorded]
    for moment in moments:
        queried = freshness.latest_evidence(session, lists, moment.date(), moment)
        for list_id in lists:
            timeline = timelines.get(list_id)
            found = timeline.at(moment) if timeline is not None else None
            assert found == (queried[list_id][0] if list_id in queried else None), (list_id, moment)
