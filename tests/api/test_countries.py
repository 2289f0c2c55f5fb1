"""GET /v1/countries...: lookups by country, on a date, as known at a moment."""

from datetime import UTC, datetime, timedelta

import pytest

PROBLEM = "application/problem+json"


def entries_by_list(document):
    return {e["list"]["id"]: e for e in document["entries"]}


def test_vietnam_today_is_pending_removal_from_d1_and_d3_with_sources(client):
    response = client.get("/v1/countries/VN")

    assert response.status_code == 200
    document = response.get_json()
    assert document["country"]["alpha_2"] == "VN"
    assert document["restrictions_apply"] is True
    assert document["pending"] is True
    entries = entries_by_list(document)
    for list_id in ("us-ear-d1", "us-ear-d3"):
        entry = entries[list_id]
        assert entry["status"] == "pending_removal"
        assert entry["restrictions_apply"] is True
        assert entry["since"] == "2026-02-20"
        assert entry["pending"] == {"announced_on": "2026-02-20", "expected_effective_on": None}
        publishers = {s["publisher"] for s in entry["sources"]}
        assert {"VTC News", "RIA Novosti", "Caliber.az", "Kashmirie"} <= publishers
        titles = {s["title"] for s in entry["sources"]}
        assert "Trump signals easing of US tech curbs on Vietnam" in titles
        assert "No rule has been published" in entry["note"]
    assert entries["us-ear-d5"]["status"] == "removed"
    assert entries["us-ear-d5"]["restrictions_apply"] is False
    assert entries["us-ear-d2"]["status"] == "not_listed"
    assert entries["us-ear-e1"]["status"] == "not_listed"


def test_vietnam_before_the_announcement_is_listed(client):
    entries = entries_by_list(client.get("/v1/countries/VN?as_of=2026-02-19").get_json())

    assert entries["us-ear-d1"]["status"] == "listed"
    assert entries["us-ear-d1"]["since"] is None  # in force since an unrecorded date ...
    assert entries["us-ear-d1"]["observed_since"] == "2025-05-29"  # ... known from the PM's request
    assert entries["us-ear-d1"]["basis"] == "observation"
    assert entries["us-ear-d1"]["pending"] is None
    assert entries["us-ear-d3"]["status"] == "listed"


@pytest.mark.parametrize(
    ("as_of", "status", "restrictions"),
    [
        ("2016-11-03", "listed", True),
        ("2016-11-04", "removed", False),
        ("2016-11-05", "removed", False),
    ],
)
def test_vietnam_d5_around_its_2016_removal(client, as_of, status, restrictions):
    entry = entries_by_list(client.get(f"/v1/countries/VN?as_of={as_of}").get_json())["us-ear-d5"]

    assert entry["status"] == status
    assert entry["restrictions_apply"] is restrictions
    citations = {s["citation"] for s in entry["sources"]}
    assert "81 FR 76859 (FR Doc 2016-26535)" in citations


def test_an_unrecorded_start_is_unknown_before_the_first_observation(client):
    entry = entries_by_list(client.get("/v1/countries/VN?as_of=1990-01-01").get_json())["us-ear-d5"]

    assert entry["status"] == "unknown"  # never `listed` projected into the past
    assert entry["reason"] == "before_first_observation"
    assert entry["observed_since"] == "2016-11-03"
    assert entry["restrictions_apply"] is None
    assert "2016-11-03" in entry["note"]


@pytest.mark.parametrize(
    "ref", ["VN", "vn", "vnm", "VNM", "704", "Viet Nam", "Vietnam", "viet%20nam", "VIETNAM"]
)
def test_every_kind_of_reference_reaches_vietnam(client, ref):
    response = client.get(f"/v1/countries/{ref}")

    assert response.status_code == 200
    assert response.get_json()["country"]["alpha_2"] == "VN"


def test_france_has_no_restriction(client, frozen_clock):
    # ITAR 126.1 is complete from the reference's compilation date (2026-12-01): from then
    # on France is not_listed there too, and nothing restrictive is left unknown.
    frozen_clock.now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    document = client.get("/v1/countries/FR").get_json()

    assert document["restrictions_apply"] is False
    assert document["restricting_lists"] == []
    assert document["unknown_restrictive_lists"] == []
    assert entries_by_list(document)["us-itar-126-1"]["status"] == "not_listed"
    assert document["pending"] is False
    entries = entries_by_list(document)
    for list_id in ("us-ear-d1", "us-ear-d3", "us-ear-d5", "us-ear-e1", "us-ear-e2"):
        assert entries[list_id]["status"] == "not_listed"
        assert entries[list_id]["basis"] == "absent_from_complete_list"
        assert entries[list_id]["sources"], "not_listed cites the list's membership source"
    assert entries["us-ear-a1"]["status"] == "listed"


def test_absence_before_the_table_date_is_unknown_not_not_listed(client):
    document = client.get("/v1/countries/FR?as_of=2020-01-01").get_json()

    entries = entries_by_list(document)
    assert entries["us-ear-d1"]["status"] == "unknown"
    assert entries["us-ear-d1"]["restrictions_apply"] is None
    assert entries["us-ear-d1"]["basis"] == "no_data"
    assert document["restrictions_apply"] is None


def test_an_incomplete_list_answers_unknown_for_absent_countries(client):
    entry = entries_by_list(client.get("/v1/countries/VN").get_json())["us-ear-b"]

    assert entry["status"] == "unknown"
    assert "not known to be complete" in entry["note"]


def test_known_at_answers_as_the_service_would_have_then(client):
    before = entries_by_list(client.get("/v1/countries/VN?known_at=2026-02-20T12:00:00Z").get_json())
    after = entries_by_list(client.get("/v1/countries/VN?known_at=2026-02-21T00:00:00Z").get_json())

    # The announcement was not on record yet; the 2025 requests were: listed, known from 2025.
    assert before["us-ear-d1"]["status"] == "listed"
    assert before["us-ear-d1"]["observed_since"] == "2025-05-29"
    assert after["us-ear-d1"]["status"] == "pending_removal"


def test_known_at_accepts_offsets(client):
    document = client.get("/v1/countries/VN?known_at=2026-02-21T07:00:00%2B07:00").get_json()

    assert document["known_at"] == "2026-02-21T00:00:00Z"
    assert entries_by_list(document)["us-ear-d1"]["status"] == "pending_removal"


def test_hong_kong_takes_chinas_ear_groups_since_2020_12_23(client):
    after = entries_by_list(client.get("/v1/countries/HK").get_json())
    before = entries_by_list(client.get("/v1/countries/HK?as_of=2020-12-22").get_json())

    assert after["us-ear-d1"]["status"] == "listed"
    assert after["us-ear-d1"]["restrictions_apply"] is True
    assert after["us-ear-d1"]["treated_as"]["treated_as"] == "CN"
    assert (
        after["us-ear-d1"]["treated_as"]["sources"][0]["url"]
        == "https://www.federalregister.gov/d/2020-28101"
    )
    assert before["us-ear-d1"]["status"] == "unknown"


def test_list_limits_the_answer_to_lists_named_by_id_or_code(client):
    full = client.get("/v1/countries/ET").json
    limited = client.get("/v1/countries/ET?list=D:1&list=us-ear-d3&list=us-ear-d1").json

    assert [e["list"]["id"] for e in limited["entries"]] == ["us-ear-d1", "us-ear-d3"]
    assert [c["list_id"] for c in limited["lists_checked"]] == ["us-ear-d1", "us-ear-d3"]
    # Ethiopia is restricted by ITAR 126.1, not by D:1 or D:3: the summaries speak for the lists named.
    assert (full["restrictions_apply"], full["restricting_lists"]) == (True, ["us-itar-126-1"])
    assert (limited["restrictions_apply"], limited["restricting_lists"]) == (False, [])


def test_an_unknown_or_ambiguous_list_is_a_422_naming_list(client, admin):
    unknown = client.get("/v1/countries/VN?list=us-ear-zz")
    assert unknown.status_code == 422
    assert list(unknown.json["errors"]) == ["list"]
    twin = {
        "id": "xx-d1",
        "code": "D:1",
        "name": "Another D:1",
        "jurisdiction": "XX",
        "authority": "Nobody",
        "legal_basis": "None",
        "url": "https://example.org/d1",
        "effect": "restrictive",
        "membership_complete": False,
    }
    assert client.post("/v1/lists", json=twin, headers=admin).status_code == 201
    ambiguous = client.get("/v1/countries/VN?list=d:1")
    assert ambiguous.status_code == 422
    assert (
        "us-ear-d1" in ambiguous.json["errors"]["list"][0] and "xx-d1" in ambiguous.json["errors"]["list"][0]
    )
    assert client.get("/v1/countries/VN?list=us-ear-d1").status_code == 200


def test_unknown_country_is_a_404_problem(client):
    response = client.get("/v1/countries/XX")

    assert response.status_code == 404
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/unknown-country"
    assert problem["status"] == 404
    assert "XX" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/countries/R%C3%A8", None),  # "Rè": not Réunion's code RE
        ("/v1/countries/%2B704", None),  # "+704"
        ("/v1/countries/%E2%80%8BVN", None),  # a zero-width space, then VN
        ("/v1/countries/%F0%9F%87%BB%F0%9F%87%B3VN", None),  # a flag emoji, then VN
        ("/v1/changes", "country=%2B704"),
        ("/v1/events", "country=R%C3%A8"),
    ],
)
def test_a_stray_character_around_a_code_is_no_country(client, path, query):
    """Names fold case, accents and punctuation; codes do not: a character around a code that
    folding would drop could otherwise make any string land on some country."""
    response = client.get(f"{path}?{query}" if query else path)

    assert response.status_code == (422 if query else 404)
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(
    ("path", "alpha_2"), [("%2B704", "VN"), ("%C3%9AK", "GB"), ("%EF%BC%B5%EF%BC%B3%EF%BC%A1", "US")]
)
def test_a_code_with_stray_characters_is_a_404_that_suggests_it(client, path, alpha_2):
    problem = client.get(f"/v1/countries/{path}").get_json()

    assert problem["status"] == 404
    assert problem["suggestions"][0]["alpha_2"] == alpha_2


def test_a_misspelt_country_suggests_close_matches(client):
    problem = client.get("/v1/countries/Vietnm").get_json()

    assert [s["alpha_2"] for s in problem["suggestions"]] == ["VN"]
    assert problem["suggestions"][0]["href"] == "/v1/countries/VN"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("as_of=yesterday", "as_of"),
        ("as_of=2026-13-01", "as_of"),
        ("as_of=2026-2-1", "as_of"),
        ("as_of=2026-02-19T00:00:00Z", "as_of"),
        ("as_of=", "as_of"),
        ("known_at=2026-02-21", "known_at"),
        ("known_at=2026-02-21T00:00:00", "known_at"),
        ("known_at=now", "known_at"),
        ("asof=2026-01-01", "asof"),
    ],
)
def test_bad_query_parameters_are_422_problems_naming_the_parameter(client, query, parameter):
    response = client.get(f"/v1/countries/VN?{query}")

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert list(problem["errors"]) == [parameter]
    assert parameter in problem["detail"]


def test_lookup_sends_an_etag_and_answers_if_none_match_with_304(client):
    first = client.get("/v1/countries/VN")
    etag = first.headers["ETag"]

    again = client.get("/v1/countries/VN", headers={"If-None-Match": etag})
    other = client.get("/v1/countries/VN", headers={"If-None-Match": '"stale"'})

    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert other.status_code == 200


def test_different_dates_have_different_etags(client):
    today = client.get("/v1/countries/VN").headers["ETag"]
    earlier = client.get("/v1/countries/VN?as_of=2026-02-19").headers["ETag"]

    assert today != earlier


def test_overview_pages_through_every_country_once(client):
    seen, cursor = [], None
    while True:
        query = "limit=60" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/countries?{query}").get_json()
        seen.extend(item["country"]["alpha_2"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 250
    assert seen == sorted(seen)


@pytest.mark.parametrize(("limit", "expected"), [("0", 1), ("-5", 1), ("3", 3), ("100000", 250)])
def test_overview_limit_is_clamped(client, limit, expected):
    page = client.get(f"/v1/countries?limit={limit}").get_json()

    assert len(page["items"]) == expected


def test_overview_summarises_restrictions_and_pending_changes(client, frozen_clock):
    frozen_clock.now = datetime(2026, 12, 2, 12, tzinfo=UTC)  # ITAR 126.1 complete from 2026-12-01
    items = {i["country"]["alpha_2"]: i for i in client.get("/v1/countries?limit=500").get_json()["items"]}

    assert items["VN"]["restrictions_apply"] is True
    assert items["VN"]["restricting_lists"] == ["us-ear-d1", "us-ear-d3"]
    assert {p["list_id"] for p in items["VN"]["pending"]} == {"us-ear-d1", "us-ear-d3"}
    assert items["FR"]["restrictions_apply"] is False
    assert items["FR"]["pending"] == []


def test_overview_filters_restricted_and_pending(client):
    restricted = client.get("/v1/countries?restricted=true&limit=500").get_json()["items"]
    pending = client.get("/v1/countries?pending=true").get_json()["items"]

    codes = {i["country"]["alpha_2"] for i in restricted}
    assert {"VN", "CN", "RU", "IR", "KP", "HK"} <= codes
    assert "FR" not in codes
    assert [i["country"]["alpha_2"] for i in pending] == ["VN"]


@pytest.mark.parametrize("cursor", ["garbage!", "eyJhIjoxfQ", "W1tdXQ", "bnVsbA"])
def test_a_bad_cursor_is_a_422_naming_cursor(client, cursor):
    response = client.get(f"/v1/countries?cursor={cursor}")

    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]


@pytest.mark.parametrize(("query", "parameter"), [("limit=ten", "limit"), ("restricted=maybe", "restricted")])
def test_overview_bad_parameters(client, query, parameter):
    response = client.get(f"/v1/countries?{query}")

    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [parameter]


def test_history_is_newest_first_with_sources(client):
    history = client.get("/v1/countries/VN/history").get_json()["items"]

    keys = [(h["effective_on"], h["kind"], h["list"]["id"], h["status"]) for h in history]
    assert set(keys[:2]) == {  # the eCFR table: evidence of D:1 and D:3 on its date
        ("2026-07-23", "observation", "us-ear-d1", "listed"),
        ("2026-07-23", "observation", "us-ear-d3", "listed"),
    }
    assert set(keys[2:4]) == {
        ("2026-02-20", "change", "us-ear-d1", "pending_removal"),
        ("2026-02-20", "change", "us-ear-d3", "pending_removal"),
    }
    assert [k[0] for k in keys[4:8]] == ["2025-11-14", "2025-11-14", "2025-05-29", "2025-05-29"]
    assert keys[8:] == [
        ("2016-11-04", "change", "us-ear-d5", "removed"),
        ("2016-11-03", "observation", "us-ear-d5", "listed"),
        ("2016-09-29", "change", "us-itar-126-1", "removed"),
    ]
    assert all(h["sources"] and h["evidence"] for h in history)
    assert history[8]["from_status"] == "listed"  # shown by the observation of the day before
    assert history[10]["from_status"] is None  # a first change: what came before is unknown


def test_history_pages_and_respects_known_at(client):
    first = client.get("/v1/countries/VN/history?limit=2").get_json()
    rest = client.get(f"/v1/countries/VN/history?cursor={first['next_cursor']}").get_json()
    known_then = client.get("/v1/countries/VN/history?known_at=2020-01-01T00:00:00Z").get_json()

    assert len(first["items"]) == 2
    assert len(first["items"]) + len(rest["items"]) == 11
    assert len({(h["kind"], h["id"]) for h in first["items"] + rest["items"]}) == 11
    assert rest["next_cursor"] is None
    assert [h["status"] for h in known_then["items"]] == ["removed", "listed", "removed"]


def test_history_of_an_unknown_country_is_a_404_problem(client):
    response = client.get("/v1/countries/Narnia/history")

    assert response.status_code == 404
    assert response.content_type == PROBLEM


def test_wrong_method_is_a_405_problem_with_allow(client):
    response = client.delete("/v1/countries/VN")

    assert response.status_code == 405
    assert response.content_type == PROBLEM
    assert "GET" in response.headers["Allow"]


def test_unknown_path_is_a_404_problem(client):
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.content_type == PROBLEM
    assert response.get_json()["type"] == "/problems/not-found"


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/v1/countries/VN", headers={"X-Request-ID": "trace-123"})
    generated = client.get("/v1/countries/VN")

    assert given.headers["X-Request-ID"] == "trace-123"
    assert len(generated.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/lists/us-ear-d1%00", 404),
        ("/v1/countries/V%00N", 404),
        ("/v1/countries/VN?as_of=2026%00", 422),
        ("/v1/events?list=us%00", 422),
        ("/v1/lists/us-ear-d1/entries?status=%00", 422),
    ],
)
def test_nul_characters_are_refused_before_any_database_sees_them(client, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/v1/countries/VN?known_at=0001-01-01T00:00:00%2B01:00", "known_at"),
        ("/v1/countries/VN?known_at=9999-12-31T23:59:59-01:00", "known_at"),
        ("/v1/events?after=9223372036854775808", "after"),
        ("/v1/events.atom?after=99999999999999999999999", "after"),
        ("/v1/events?since=0001-01-01T00:00:00%2B05:00", "since"),
    ],
)
def test_values_out_of_range_are_422s_not_500s(client, path, parameter):
    response = client.get(path)

    assert response.status_code == 422
    assert parameter in response.get_json()["errors"]


def test_a_lookup_reads_the_data_version_once(app, client, monkeypatch):
    """The cached view reads it to key the document; the view builds at that same version (on
    PostgreSQL each read is a round trip)."""
    reader = app.extensions["exportctl.version"]
    reads = []
    read = reader.read
    monkeypatch.setattr(reader, "read", lambda: reads.append(1) or read())

    answer = client.get("/v1/countries/VN?as_of=2026-03-01")

    assert answer.status_code == 200
    assert entries_by_list(answer.get_json())["us-ear-d1"]["status"] == "pending_removal"
    assert len(reads) == 1


@pytest.mark.parametrize(
    "moment",
    [
        "2026-02-21T00:00Z",  # ISO 8601 forms RFC 3339 does not have: no seconds,
        "2026-02-21T00Z",
        "20260221T000000Z",  # basic format,
        "2026-W08-6T00:00:00Z",  # a week date,
        "2026-02-21T00:00:00+0700",  # an offset without its colon,
        "2026-02-21T00:00:00+07",
        "2026-02-21T00:00:00,5Z",  # a decimal comma
        "2026-02-21T00:00:00-00:60",  # an offset's minutes are 00-59, its hours 00-23
        "2026-02-21T00:00:00+24:00",
    ],
)
def test_known_at_is_rfc_3339_and_nothing_looser(client, moment):
    response = client.get("/v1/countries/VN", query_string={"known_at": moment})

    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert list(response.get_json()["errors"]) == ["known_at"]


@pytest.mark.parametrize(
    ("moment", "read"),
    [
        ("2026-02-21t07:00:00+07:00", "2026-02-21T00:00:00Z"),  # RFC 3339 5.6: t and z in any case
        ("2026-02-21T00:00:00.5z", "2026-02-21T00:00:00.500000Z"),
        ("2026-02-21T00:00:00.123456789Z", "2026-02-21T00:00:00.123456Z"),  # to the microsecond
        ("2026-02-21T00:00:00-00:00", "2026-02-21T00:00:00Z"),
    ],
)
def test_known_at_takes_every_rfc_3339_form(client, moment, read):
    response = client.get("/v1/countries/VN", query_string={"known_at": moment})

    assert response.status_code == 200
    assert response.get_json()["known_at"] == read


@pytest.mark.parametrize(
    "path",
    ["/v1/countries/VN", "/v1/countries", "/v1/countries/VN/history", "/v1/lists/us-ear-d1/entries/VN"],
)
def test_known_at_a_moment_still_to_come_is_a_422(client, frozen_clock, path):
    """What the service will know then is not known yet: answered with today's knowledge, the
    answer would change with the next write, and a known_at answer must stay as it was given."""
    ahead = frozen_clock.now + timedelta(seconds=1)

    refused = client.get(path, query_string={"known_at": ahead.isoformat().replace("+00:00", "Z")})
    frozen_clock.advance(seconds=1)  # that moment has come: it is answered
    answered = client.get(path, query_string={"known_at": ahead.isoformat().replace("+00:00", "Z")})

    assert refused.status_code == 422
    assert refused.content_type == PROBLEM
    assert list(refused.get_json()["errors"]) == ["known_at"]
    assert answered.status_code == 200


@pytest.mark.parametrize(
    ("path", "instance"),
    [
        ("/v1/countries/C%C3%B4te%20d'Nowhere", "/v1/countries/C%C3%B4te%20d'Nowhere"),
        ("/v1/countries/100%25%3Fx%23y", "/v1/countries/100%25%3Fx%23y"),  # %, ?, # stay in the path
    ],
)
def test_a_problems_instance_is_a_uri_reference(client, path, instance):
    """RFC 9457 3.1.5: `instance` is a URI reference; the request's path, decoded, was copied as it
    was (spaces, a lone %, ? and #)."""
    response = client.get(path)

    assert response.status_code == 404
    assert response.get_json()["instance"] == instance
