"""GET /v1/lists...: lists, their entries, one entry with its history, one change."""

import pytest

PROBLEM = "application/problem+json"
EAR_LISTS = [
    "us-ear-a1",
    "us-ear-a2",
    "us-ear-a3",
    "us-ear-a4",
    "us-ear-a5",
    "us-ear-a6",
    "us-ear-b",
    "us-ear-d1",
    "us-ear-d2",
    "us-ear-d3",
    "us-ear-d4",
    "us-ear-d5",
    "us-ear-e1",
    "us-ear-e2",
]
# The other lists seeded from the reference (seeds/reference_lists.yaml).
OTHER_LISTS = ["eu-eu001", "jp-group-a", "uk-ogel-eu", "us-itar-126-1", "wassenaar"]
ALL_LISTS = sorted(EAR_LISTS + OTHER_LISTS)


def test_every_ear_country_group_is_a_list(client):
    page = client.get("/v1/lists").get_json()

    assert [item["id"] for item in page["items"]] == ALL_LISTS
    assert page["next_cursor"] is None


def test_a_list_describes_itself(client):
    d1 = client.get("/v1/lists/us-ear-d1").get_json()

    assert d1["code"] == "D:1"
    assert d1["name"] == "National Security"
    assert d1["jurisdiction"] == "US"
    assert d1["effect"] == "restrictive"
    assert d1["restrictive"] is True
    assert d1["membership_complete"] is True
    assert d1["membership_complete_from"] == "2026-07-23"
    assert "Bureau of Industry and Security" in d1["authority"]
    assert "Supplement No. 1" in d1["legal_basis"]
    assert d1["url"].startswith("https://www.ecfr.gov/")
    assert {s["citation"] for s in d1["sources"]} >= {"15 CFR 740 Supp. No. 1"}
    assert [(t["country"], t["treated_as"]) for t in d1["treatments"]] == [("HK", "CN")]


def test_favourable_and_incomplete_lists_say_so(client):
    b = client.get("/v1/lists/us-ear-b").get_json()

    assert b["effect"] == "favourable"
    assert b["restrictive"] is False
    assert b["membership_complete"] is False


def test_lists_page_with_a_clamped_limit(client):
    first = client.get("/v1/lists?limit=5").get_json()
    second = client.get(f"/v1/lists?limit=5&cursor={first['next_cursor']}").get_json()

    assert [i["id"] for i in first["items"]] == ALL_LISTS[:5]
    assert [i["id"] for i in second["items"]] == ALL_LISTS[5:10]


def test_unknown_list_is_a_404_problem_listing_known_ids(client):
    response = client.get("/v1/lists/us-ear-z9")

    assert response.status_code == 404
    assert response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "/problems/unknown-list"
    assert problem["known_lists"] == ALL_LISTS


def test_entries_of_a_list_by_country_code(client):
    items = client.get("/v1/lists/us-ear-e1/entries").get_json()["items"]

    assert [i["country"]["alpha_2"] for i in items] == ["IR", "KP", "SY"]
    assert all(i["status"] == "listed" and i["restrictions_apply"] for i in items)


def test_entries_filtered_by_status(client):
    pending = client.get("/v1/lists/us-ear-d1/entries?status=pending_removal").get_json()["items"]
    removed = client.get("/v1/lists/us-ear-d5/entries?status=removed").get_json()["items"]

    assert [i["country"]["alpha_2"] for i in pending] == ["VN"]
    assert pending[0]["pending"]["announced_on"] == "2026-02-20"
    assert [i["country"]["alpha_2"] for i in removed] == ["KH", "VN"]  # KH: 2026-02-03


def test_entries_as_of_a_date(client):
    before = client.get("/v1/lists/us-ear-d5/entries?as_of=2016-11-03&status=listed").get_json()["items"]

    assert "VN" in [i["country"]["alpha_2"] for i in before]


def test_entries_page_through_a_long_list(client):
    seen, cursor = [], None
    while True:
        page = client.get(
            "/v1/lists/us-ear-b/entries?limit=50" + (f"&cursor={cursor}" if cursor else "")
        ).get_json()
        seen += [i["country"]["alpha_2"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert len(seen) == len(set(seen)) > 100


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=gone", "status"),
        ("status=not_listed", "status"),
        ("as_of=soon", "as_of"),
        ("limit=x", "limit"),
    ],
)
def test_entries_bad_parameters(client, query, parameter):
    response = client.get(f"/v1/lists/us-ear-d1/entries?{query}")

    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [parameter]


def test_entries_of_an_unknown_list_is_404(client):
    assert client.get("/v1/lists/nope/entries").status_code == 404


def test_entry_with_its_history_newest_first(client):
    response = client.get("/v1/lists/us-ear-d5/entries/vietnam")

    assert response.status_code == 200
    entry = response.get_json()
    assert entry["country"]["alpha_2"] == "VN"
    assert entry["status"] == "removed"
    assert entry["version"] == 2
    assert [(h["kind"], h["status"]) for h in entry["history"]] == [
        ("change", "removed"),
        ("observation", "listed"),
    ]
    assert entry["history"][0]["from_status"] == "listed"
    assert entry["history"][0]["effective_on"] == "2016-11-04"
    assert entry["history"][0]["recorded_at"] == "2016-11-04T00:00:00Z"
    # The rule of 2016-11-04 shows Vietnam in D:5 the day before; when it entered is not recorded.
    assert entry["history"][1]["observed_on"] == entry["history"][1]["effective_on"] == "2016-11-03"
    assert entry["history"][1]["links"]["self"].startswith("/v1/lists/us-ear-d5/entries/VN/observations/")
    assert response.headers["ETag"].startswith('"v2-')


def test_entry_history_comes_a_page_at_a_time_with_the_status_on_every_page(client):
    whole = client.get("/v1/lists/us-ear-d5/entries/VN").get_json()
    first = client.get("/v1/lists/us-ear-d5/entries/VN?limit=1")
    page = first.get_json()

    assert whole["next_cursor"] is None
    assert page["history"] == whole["history"][:1]
    assert page["next_cursor"] is not None
    link = first.headers["Link"]
    assert 'rel="next"' in link and "limit=1" in link and f"cursor={page['next_cursor']}" in link
    second = client.get(f"/v1/lists/us-ear-d5/entries/VN?limit=1&cursor={page['next_cursor']}").get_json()
    assert second["history"] == whole["history"][1:2]
    assert second["next_cursor"] is None
    for each in (page, second):
        assert (each["status"], each["since"], each["version"]) == (whole["status"], whole["since"], 2)


@pytest.mark.parametrize("cursor", ["bm9wZQ", "WzEsMiwzXQ", "WyIyMDI2LTAxLTAxIiwwLDBd"])
def test_entry_history_refuses_a_cursor_it_did_not_issue(client, cursor):
    response = client.get(f"/v1/lists/us-ear-d5/entries/VN?cursor={cursor}")

    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]


def test_entry_for_a_country_never_on_the_list(client):
    entry = client.get("/v1/lists/us-ear-d1/entries/FR").get_json()

    assert entry["status"] == "not_listed"
    assert entry["version"] == 0
    assert entry["history"] == []


def test_entry_for_hong_kong_follows_china(client):
    entry = client.get("/v1/lists/us-ear-d5/entries/HK").get_json()

    assert entry["status"] == "listed"
    assert entry["treated_as"]["treated_as"] == "CN"


def test_entry_etag_and_304(client):
    etag = client.get("/v1/lists/us-ear-d1/entries/VN").headers["ETag"]

    assert client.get("/v1/lists/us-ear-d1/entries/VN", headers={"If-None-Match": etag}).status_code == 304


def test_entry_of_unknown_country_or_list(client):
    assert client.get("/v1/lists/us-ear-d1/entries/XX").status_code == 404
    assert client.get("/v1/lists/nope/entries/VN").status_code == 404


def test_one_change_by_its_link(client):
    entry = client.get("/v1/lists/us-ear-d5/entries/VN").get_json()
    link = entry["history"][0]["links"]["self"]

    change = client.get(link).get_json()

    assert change["status"] == "removed"
    assert change["list"]["id"] == "us-ear-d5"
    assert change["sources"][0]["citation"] == "81 FR 76859 (FR Doc 2016-26535)"


@pytest.mark.parametrize(
    "path",
    [
        "us-ear-d1/entries/VN/changes/1",
        "us-ear-d5/entries/FR/changes/1",
        "us-ear-d5/entries/VN/changes/99999999999",
    ],
)
def test_a_change_under_the_wrong_entry_is_404(client, path):
    response = client.get(f"/v1/lists/{path}")

    assert response.status_code == 404
    assert response.content_type == PROBLEM
