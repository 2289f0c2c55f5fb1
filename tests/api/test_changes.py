"""POST /v1/lists/{id}/entries/{ref}/changes: recording status changes through the API."""

import pytest
from sqlalchemy import func, select

from service.models import Counter, Entry, Event, IdempotencyRecord, StatusChange
from tests.conftest import a_change, a_source, alternating_history

PROBLEM = "application/problem+json"
D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"


def table_counts(session):
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (StatusChange, Event, IdempotencyRecord)
    )


def entries_by_list(document):
    return {e["list"]["id"]: e for e in document["entries"]}


def test_recording_vietnams_removal_from_d1_end_to_end(client, editor):
    response = client.post(D1_VN, json=a_change(), headers={**editor, "X-Request-ID": "req-42"})

    assert response.status_code == 201
    created = response.get_json()
    assert created["change"]["status"] == "removed"
    assert created["change"]["from_status"] == "pending_removal"
    assert created["change"]["actor"] == "alice"
    assert created["change"]["request_id"] == "req-42"
    assert created["entry"]["status"] == "removed"
    assert created["entry"]["restrictions_apply"] is False
    # Vietnam's D:1 entry held three observations and the announcement: this is its fifth record.
    assert created["entry"]["version"] == 5
    assert response.headers["Location"] == created["change"]["links"]["self"]
    assert client.get(response.headers["Location"]).get_json()["id"] == created["change"]["id"]

    today = entries_by_list(client.get("/v1/countries/VN").get_json())
    before = entries_by_list(client.get("/v1/countries/VN?as_of=2026-11-19").get_json())
    history = client.get("/v1/countries/VN/history").get_json()["items"]

    assert today["us-ear-d1"]["status"] == "removed"
    assert today["us-ear-d1"]["since"] == "2026-11-20"
    assert today["us-ear-d1"]["sources"][0]["citation"] == "91 FR 99999"
    assert today["us-ear-d3"]["status"] == "pending_removal"  # only D:1 changed
    assert before["us-ear-d1"]["status"] == "pending_removal"
    assert history[0]["status"] == "removed"
    assert history[0]["actor"] == "alice"
    assert history[0]["request_id"] == "req-42"


def test_the_first_change_creates_the_entry(client, editor):
    response = client.post(
        "/v1/lists/us-ear-d1/entries/FR/changes",
        json=a_change(
            status="pending_addition", effective_on="2026-11-01", expected_effective_on="2027-01-01"
        ),
        headers=editor,
    )

    assert response.status_code == 201
    entry = client.get("/v1/lists/us-ear-d1/entries/FR").get_json()
    assert entry["status"] == "pending_addition"
    assert entry["restrictions_apply"] is False
    assert entry["pending"] == {"announced_on": "2026-11-01", "expected_effective_on": "2027-01-01"}
    assert entry["version"] == 1


def test_an_illegal_transition_is_a_409_listing_what_is_allowed(client, editor, session):
    client.post(D1_VN, json=a_change(), headers=editor)
    before = table_counts(session)

    response = client.post(
        D1_VN, json=a_change(status="pending_removal", effective_on="2026-11-21"), headers=editor
    )

    assert response.status_code == 409
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/illegal-transition"
    assert problem["current_status"] == "removed"
    assert problem["allowed"] == ["listed", "pending_addition"]
    assert table_counts(session) == before


def test_a_backdated_correction_and_how_as_of_and_known_at_answer_around_it(client, editor, frozen_clock):
    # 2026-11-23: recorded as removed from 2026-11-20 ...
    first = client.post(D1_VN, json=a_change(effective_on="2026-11-20"), headers=editor)
    recorded_first = first.get_json()["change"]["recorded_at"]
    # ... a day later, the rule turns out to have taken effect on 2026-11-10: a new, backdated change.
    frozen_clock.advance(days=1)
    correction = client.post(
        D1_VN,
        json=a_change(effective_on="2026-11-10", note="Correction: effective 2026-11-10."),
        headers=editor,
    )
    assert correction.status_code == 201
    assert correction.get_json()["change"]["from_status"] == "pending_removal"

    def d1(query):
        return entries_by_list(client.get(f"/v1/countries/VN?{query}").get_json())["us-ear-d1"]

    assert d1("as_of=2026-11-15")["status"] == "removed"
    assert d1("as_of=2026-11-15")["since"] == "2026-11-10"
    assert d1("as_of=2026-11-09")["status"] == "pending_removal"
    # As known before the correction, 2026-11-15 was still pending removal ...
    assert (
        d1(f"as_of=2026-11-15&known_at={recorded_first.replace('+', '%2B')}")["status"] == "pending_removal"
    )
    # ... and as known before either, 2026-11-21 was pending removal too.
    assert d1("as_of=2026-11-21&known_at=2026-11-22T00:00:00Z")["status"] == "pending_removal"
    assert d1("as_of=2026-11-21")["status"] == "removed"
    history = client.get("/v1/lists/us-ear-d1/entries/VN").get_json()["history"]
    assert [(h["kind"], h["status"], h["effective_on"]) for h in history[:4]] == [
        ("change", "removed", "2026-11-20"),
        ("change", "removed", "2026-11-10"),
        ("observation", "listed", "2026-07-23"),  # the eCFR table: evidence, not a change
        ("change", "pending_removal", "2026-02-20"),
    ]


def test_a_backdated_change_that_would_break_the_timeline_is_refused(client, editor):
    client.post(D1_VN, json=a_change(effective_on="2026-11-20"), headers=editor)

    # listed on 2026-11-15 would have to be followed by removed, which is fine; but
    # pending_addition on 2026-03-01 cannot follow pending_removal.
    response = client.post(
        D1_VN, json=a_change(status="pending_addition", effective_on="2026-03-01"), headers=editor
    )

    assert response.status_code == 409


def test_a_future_effective_date_takes_effect_on_its_day(client, editor):
    client.post(D1_VN, json=a_change(effective_on="2026-12-15"), headers=editor)

    def d1(query=""):
        return entries_by_list(client.get(f"/v1/countries/VN?{query}").get_json())["us-ear-d1"]

    assert d1()["status"] == "pending_removal"
    assert d1("as_of=2026-12-15")["status"] == "removed"


def test_same_idempotency_key_and_body_replays_without_recording_twice(client, editor, session):
    headers = {**editor, "Idempotency-Key": "vn-d1-removal-1"}
    first = client.post(D1_VN, json=a_change(), headers=headers)
    counts = table_counts(session)

    retry = client.post(D1_VN, json=a_change(), headers=headers)

    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert table_counts(session) == counts
    history = client.get("/v1/lists/us-ear-d1/entries/VN").get_json()["history"]
    assert [h["status"] for h in history].count("removed") == 1


def test_same_idempotency_key_with_another_body_is_a_422(client, editor, session):
    headers = {**editor, "Idempotency-Key": "vn-d1-removal-1"}
    client.post(D1_VN, json=a_change(), headers=headers)
    counts = table_counts(session)

    response = client.post(D1_VN, json=a_change(note="different"), headers=headers)

    assert response.status_code == 422
    assert response.get_json()["type"] == "/problems/idempotency-key-reused"
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert table_counts(session) == counts


def test_idempotency_keys_are_per_api_key(client, editor, app):
    from tests.conftest import create_key

    other = {"Authorization": f"Bearer {create_key(app, 'bob', 'editor')}", "Idempotency-Key": "k1"}
    client.post(D1_VN, json=a_change(), headers={**editor, "Idempotency-Key": "k1"})

    response = client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=other)

    assert response.status_code == 201
    assert response.get_json()["change"]["list"]["id"] == "us-ear-d3"


def test_idempotency_keys_are_kept_at_least_24_hours(client, editor, frozen_clock):
    headers = {**editor, "Idempotency-Key": "kept"}
    first = client.post(D1_VN, json=a_change(), headers=headers)
    frozen_clock.advance(hours=30)
    purging = {**editor, "Idempotency-Key": "another"}  # a keyed write purges expired records
    client.post("/v1/lists/us-ear-d3/entries/VN/changes", json=a_change(), headers=purging)

    retry = client.post(D1_VN, json=a_change(), headers=headers)

    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_stale_if_match_is_a_412_and_changes_nothing(client, editor, session):
    etag = client.get("/v1/lists/us-ear-d1/entries/VN").headers["ETag"]
    assert client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": etag}).status_code == 201
    counts = table_counts(session)

    stale = client.post(
        D1_VN, json=a_change(status="listed", effective_on="2026-11-22"), headers={**editor, "If-Match": etag}
    )

    assert stale.status_code == 412
    assert stale.content_type == PROBLEM
    assert stale.get_json()["current_version"] == 5
    assert table_counts(session) == counts


def test_current_if_match_succeeds_and_star_needs_an_existing_entry(client, editor):
    assert client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": '"v4"'}).status_code == 201
    assert (
        client.post(
            "/v1/lists/us-ear-d1/entries/FR/changes",
            json=a_change(status="listed"),
            headers={**editor, "If-Match": "*"},
        ).status_code
        == 412
    )


BAD_BODIES = [
    ({**a_change(), "colour": "red"}, "colour"),
    ({**a_change(), "status": "gone"}, "status"),
    ({**a_change(), "status": 3}, "status"),
    ({**a_change(), "effective_on": "20-11-2026"}, "effective_on"),
    ({**a_change(), "effective_on": "2026-02-30"}, "effective_on"),
    ({**a_change(), "effective_on": None}, "effective_on"),
    ({k: v for k, v in a_change().items() if k != "effective_on"}, "effective_on"),
    ({k: v for k, v in a_change().items() if k != "status"}, "status"),
    ({**a_change(), "sources": []}, "sources"),
    ({k: v for k, v in a_change().items() if k != "sources"}, "sources"),
    ({**a_change(), "sources": "https://example.org"}, "sources"),
    ({**a_change(), "sources": [a_source(url="ftp://example.org/rule")]}, "sources.0.url"),
    ({**a_change(), "sources": [a_source(url="javascript:alert(1)")]}, "sources.0.url"),
    ({**a_change(), "sources": [a_source(url="http://[::1")]}, "sources.0.url"),
    ({**a_change(), "sources": [a_source(url="https://")]}, "sources.0.url"),
    ({**a_change(), "sources": [a_source(title="")]}, "sources.0.title"),
    (
        {**a_change(), "sources": [{k: v for k, v in a_source().items() if k != "publisher"}]},
        "sources.0.publisher",
    ),
    ({**a_change(), "sources": [a_source(published_on="yesterday")]}, "sources.0.published_on"),
    ({**a_change(), "sources": [a_source(extra=1)]}, "sources.0.extra"),
    ({**a_change(), "note": 12}, "note"),
    ({**a_change(), "note": "nul\x00byte"}, "note"),
    ({**a_change(), "sources": [a_source(title="a\x00b")]}, "sources.0.title"),
    ({**a_change(), "expected_effective_on": "2027-01-01"}, "expected_effective_on"),
    (
        {**a_change(status="pending_removal", effective_on="2026-11-01", expected_effective_on="2026-10-01")},
        "expected_effective_on",
    ),
    ({**a_change(status="pending_removal", effective_on="2027-01-01")}, "effective_on"),
    ([a_change()], "_schema"),
    ("a string", "_schema"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_each_bad_body_is_a_422_naming_the_field_and_changes_nothing(client, editor, session, body, field):
    before = table_counts(session)

    response = client.post(D1_VN, json=body, headers=editor)

    assert response.status_code == 422, response.get_json()
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert field in problem["errors"], problem["errors"]
    assert table_counts(session) == before


@pytest.mark.parametrize(
    ("path", "status", "type_"),
    [
        ("/v1/lists/us-ear-zz/entries/VN/changes", 404, "/problems/unknown-list"),
        ("/v1/lists/us-ear-d1/entries/Atlantis/changes", 404, "/problems/unknown-country"),
    ],
)
def test_unknown_list_or_country_is_a_404_and_changes_nothing(client, editor, session, path, status, type_):
    before = table_counts(session)

    response = client.post(path, json=a_change(), headers=editor)

    assert response.status_code == status
    assert response.get_json()["type"] == type_
    assert table_counts(session) == before


def test_malformed_json_is_a_400(client, editor, session):
    before = table_counts(session)

    response = client.post(
        D1_VN, data='{"status": "removed",', content_type="application/json", headers=editor
    )

    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/malformed-json"
    assert table_counts(session) == before


def test_json_nested_too_deeply_is_a_400_that_says_so(client, editor, session):
    """Well-formed, but deeper than the decoder follows: "not valid JSON" sent the client looking
    for a syntax error (outside probe)."""
    before = table_counts(session)
    body = '{"status": "removed", "note": ' + "[" * 5000 + "]" * 5000 + "}"

    response = client.post(D1_VN, data=body, content_type="application/json", headers=editor)

    assert response.status_code == 400
    assert response.get_json()["type"] == "/problems/malformed-json"
    assert "nested too deeply" in response.get_json()["detail"]
    assert table_counts(session) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_non_json_content_type_is_a_415(client, editor, session, content_type):
    before = table_counts(session)
    headers = dict(editor)
    kwargs = {"data": '{"status": "removed"}'}
    if content_type:
        kwargs["content_type"] = content_type

    response = client.post(D1_VN, headers=headers, **kwargs)

    assert response.status_code == 415
    assert response.content_type == PROBLEM
    assert table_counts(session) == before


def test_a_body_over_64_kib_is_a_413(client, editor, session):
    before = table_counts(session)

    response = client.post(D1_VN, json=a_change(note="x" * (65 * 1024)), headers=editor)

    assert response.status_code == 413
    assert response.content_type == PROBLEM
    assert table_counts(session) == before


# "a,b": two Idempotency-Key headers, as gunicorn joins them into one value (which one is meant?)
@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode", "a,b"])
def test_a_bad_idempotency_key_is_a_422_naming_the_header(client, editor, session, key):
    before = table_counts(session)

    response = client.post(D1_VN, json=a_change(), headers={**editor, "Idempotency-Key": key})

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert table_counts(session) == before


def test_a_malformed_if_match_is_a_422(client, editor):
    response = client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": "v2"})  # unquoted

    assert response.status_code == 422
    assert "If-Match" in response.get_json()["errors"]


def test_the_event_of_a_change_is_written_with_it(client, editor, session):
    created = client.post(D1_VN, json=a_change(), headers=editor).get_json()

    event = session.scalars(select(Event).order_by(Event.id.desc())).first()
    assert event.type == "entry.status_changed"
    assert event.change_id == created["change"]["id"]
    assert event.data["status"] == "removed"
    assert event.data["from_status"] == "pending_removal"
    assert event.data["restrictions_apply"] is False


def versions(session):
    """The data version, the last event number and VN's version on D:1."""
    session.expire_all()
    counters = {name: value for name, value in session.execute(select(Counter.name, Counter.value))}
    entry = select(Entry.version).where(Entry.list_id == "us-ear-d1", Entry.country_code == "VN")
    return counters["data"], counters["events"], session.scalar(entry)


def test_a_change_moves_the_data_version_event_number_and_entry_version_once_each(client, editor, session):
    data, sequence, version = versions(session)

    created = client.post(D1_VN, json=a_change(), headers=editor)

    assert created.status_code == 201
    assert versions(session) == (data + 1, sequence + 1, version + 1)
    assert created.get_json()["entry"]["version"] == version + 1
    event = session.get(Event, sequence + 1)
    assert event.change_id == created.get_json()["change"]["id"]


def test_a_refused_change_moves_no_version(client, editor, session):
    before = versions(session)

    stale = client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": '"v1"'})
    illegal = client.post(D1_VN, json=a_change(status="pending_addition"), headers=editor)

    assert (stale.status_code, illegal.status_code) == (412, 409)
    assert versions(session) == before


@pytest.mark.parametrize(
    "body",
    [b"[" * 9000 + b"]" * 9000, b'{"a":' * 900 + b"1" + b"}" * 900, b"[" * 900 + b"]" * 900],
    ids=["nested-9000", "objects-900", "lists-900"],
)
def test_deeply_nested_json_is_a_4xx_not_a_500(client, editor, session, body):
    before = table_counts(session)

    response = client.post(D1_VN, data=body, content_type="application/json", headers=editor)

    assert response.status_code in (400, 422)
    assert response.content_type == PROBLEM
    assert table_counts(session) == before


def test_a_chunked_body_over_the_limit_is_a_413_not_a_cut_one(client, editor, session):
    import io

    body = b'{"note": "' + b"x" * 70_000 + b'"}'
    before = table_counts(session)

    response = client.post(
        D1_VN,
        input_stream=io.BytesIO(body),
        headers={**editor, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn passes a chunked body
    )

    assert response.status_code == 413
    assert table_counts(session) == before


def test_a_weak_if_match_never_matches(client, editor, session):
    etag = client.get("/v1/lists/us-ear-d1/entries/VN").headers["ETag"]
    before = table_counts(session)

    response = client.post(D1_VN, json=a_change(), headers={**editor, "If-Match": f"W/{etag}"})

    assert response.status_code == 412
    assert table_counts(session) == before


def test_a_country_treated_as_another_has_no_entry_of_its_own_to_change(client, editor, session):
    before = table_counts(session)

    response = client.post(
        "/v1/lists/us-ear-d1/entries/HK/changes",
        json=a_change(status="listed", effective_on="2026-11-20"),
        headers=editor,
    )

    assert response.status_code == 409
    problem = response.get_json()
    assert problem["type"] == "/problems/treated-as-another-country"
    assert problem["treated_as"] == "CN"
    assert table_counts(session) == before


def test_hong_kong_history_before_the_treatment_can_still_be_recorded(client, editor):
    response = client.post(
        "/v1/lists/us-ear-d1/entries/HK/changes",
        json=a_change(status="listed", effective_on="2019-01-01"),
        headers=editor,
    )

    assert response.status_code == 201
    entries = client.get("/v1/lists/us-ear-d1/entries?as_of=2020-01-01").get_json()["items"]
    assert "HK" in [e["country"]["alpha_2"] for e in entries]
    today = client.get("/v1/lists/us-ear-d1/entries?limit=500").get_json()["items"]
    assert "HK" not in [e["country"]["alpha_2"] for e in today]  # it is CN's entry that answers now


def test_an_idempotency_key_past_its_time_is_a_new_request(client, editor, frozen_clock):
    headers = {**editor, "Idempotency-Key": "old"}
    first = client.post(D1_VN, json=a_change(), headers=headers)
    frozen_clock.advance(hours=49)  # IDEMPOTENCY_TTL is 48 h; nothing purged it yet

    again = client.post(D1_VN, json=a_change(), headers=headers)

    assert first.status_code == 201
    assert again.status_code == 409  # executed anew: removed cannot follow removed
    assert "Idempotent-Replayed" not in again.headers


def test_an_expired_idempotency_key_can_be_used_again(client, editor, frozen_clock):
    first = client.post(D1_VN, json=a_change(), headers={**editor, "Idempotency-Key": "reused"})
    frozen_clock.advance(hours=49)

    later = client.post(
        D1_VN,
        json=a_change(status="listed", effective_on="2026-11-22"),
        headers={**editor, "Idempotency-Key": "reused"},
    )

    assert first.status_code == later.status_code == 201
    assert later.get_json()["change"]["id"] != first.get_json()["change"]["id"]


def test_a_change_on_a_long_history_reads_its_neighbours_not_the_whole_timeline(client, editor, session):
    """Placing a change (and the entry state the answer carries) must not load every change:
    on 10,000 changes that cost about 1 s per write."""
    from contextlib import contextmanager
    from datetime import date

    from sqlalchemy import event

    alternating_history(session, "FR", date(2000, 1, 1), 200)
    loaded = []

    @contextmanager
    def counting():
        listener = lambda target, _context: loaded.append(target.id)  # noqa: E731
        event.listen(StatusChange, "load", listener)
        try:
            yield
        finally:
            event.remove(StatusChange, "load", listener)

    with counting():  # the last change is `removed` on 2000-07-18: append after it
        appended = client.post(
            "/v1/lists/us-ear-d1/entries/FR/changes",
            json=a_change(status="listed", effective_on="2001-01-01"),
            headers=editor,
        )
    assert appended.status_code == 201, appended.get_json()
    assert appended.get_json()["entry"]["status"] == "listed"
    assert appended.get_json()["entry"]["since"] == "2001-01-01"
    assert appended.get_json()["entry"]["version"] == 2
    assert len(loaded) <= 10, len(loaded)

    loaded.clear()
    with counting():  # a backdated change between two others, placed by its neighbours
        inserted = client.post(
            "/v1/lists/us-ear-d1/entries/FR/changes",
            json=a_change(status="pending_removal", effective_on="2000-03-01"),
            headers=editor,
        )
        refused = client.post(
            "/v1/lists/us-ear-d1/entries/FR/changes",
            json=a_change(status="pending_addition", effective_on="2000-01-03"),
            headers=editor,
        )
    assert inserted.status_code == 201, inserted.get_json()
    assert inserted.get_json()["change"]["from_status"] == "listed"  # 2000-03-01's own listing
    assert inserted.get_json()["entry"]["status"] == "listed"  # today: still the 2001 listing
    assert refused.status_code == 409
    assert refused.get_json()["current_status"] == "listed"
    assert len(loaded) <= 20, len(loaded)
